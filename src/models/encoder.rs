//! The transformer encoder RoBERTa, XLM-RoBERTa and BERT share (transformers' `modeling_bert.py`,
//! of which `modeling_roberta.py` is a copy): config, packed batches, embeddings, attention,
//! layers, the base model with its pooler, and the parts heads have in common.
//!
//! A family (`roberta::Roberta`, ...) supplies what sets it apart: config defaults, the prefix of
//! its task checkpoints, and how position ids are counted. Module names follow the checkpoint
//! keys: `embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, ...

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::attention::flash_attn_varlen_unfused;
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use serde::{Deserialize, Serialize};

pub use super::outputs::{HeadOutput, Intermediates, OutputOptions};
use crate::device::lowest_finite;
use crate::error::{invalid_file, invalid_input, Error, Result};
use crate::kernels::activation::HiddenAct;
use crate::linear::{Linear, PackedRows};
use crate::weights::{open_checkpoint, read_config, MappedSafetensors, MappedTable};

/// What sets one encoder family apart.
pub trait Family: Debug + Clone + PartialEq + Send + Sync + 'static {
    /// The family's name in error messages ("RoBERTa").
    const NAME: &'static str;
    /// The `model_type`s its config.json may name.
    const MODEL_TYPES: &'static [&'static str];
    /// Where task checkpoints keep the base model (`roberta.embeddings...`).
    const BASE_MODEL_PREFIX: &'static str;
    /// transformers' config defaults that differ between families.
    const DEFAULT_VOCAB_SIZE: usize;
    const DEFAULT_PAD_TOKEN_ID: u32;

    /// The position ids of one row of input ids (padding included).
    fn position_ids(ids: &[u32], pad_token_id: u32) -> Vec<u32>;

    /// Rows of the position table no token can use (RoBERTa: `pad_token_id + 1`).
    fn reserved_positions(pad_token_id: u32) -> usize;
}

/// transformers' `RobertaConfig` / `XLMRobertaConfig` / `BertConfig` (the same fields), with
/// the family's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig<F: Family> {
    #[serde(default = "defaults::vocab_size::<F>")]
    pub vocab_size: usize,
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: HiddenAct,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "defaults::type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "defaults::pad_token_id::<F>")]
    pub pad_token_id: u32,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default = "defaults::position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub is_decoder: bool,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    /// Label names by class index; keys are strings in config.json, as transformers writes them.
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub num_labels: Option<usize>,
    #[serde(default)]
    pub problem_type: Option<String>,
    #[serde(skip)]
    family: PhantomData<F>,
}

mod defaults {
    use super::Family;
    use crate::kernels::activation::HiddenAct;
    pub fn vocab_size<F: Family>() -> usize {
        F::DEFAULT_VOCAB_SIZE
    }
    pub fn hidden_size() -> usize {
        768
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn hidden_act() -> HiddenAct {
        HiddenAct::Gelu
    }
    pub fn max_position_embeddings() -> usize {
        512
    }
    pub fn type_vocab_size() -> usize {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn pad_token_id<F: Family>() -> u32 {
        F::DEFAULT_PAD_TOKEN_ID
    }
    pub fn position_embedding_type() -> String {
        "absolute".into()
    }
}

impl<F: Family> EncoderConfig<F> {
    /// Reads and checks `config.json` from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config: Self = read_config(dir)?;
        config.validate()?;
        Ok(config)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(model_type) = self.model_type.as_deref() {
            if !F::MODEL_TYPES.contains(&model_type) {
                let expected = F::MODEL_TYPES
                    .iter()
                    .map(|t| format!("{t:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ");
                return invalid_file!(
                    "model_type {model_type:?} is not a {}-family model (expected {expected})",
                    F::NAME
                );
            }
        }
        if self.position_embedding_type != "absolute" {
            return invalid_file!(
                "position_embedding_type {:?} is not supported; only \"absolute\" is implemented",
                self.position_embedding_type
            );
        }
        if self.is_decoder {
            return invalid_file!(
                "is_decoder=true ({} as a causal LM) is not supported",
                F::NAME
            );
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return invalid_file!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if let (Some(n), Some(labels)) = (self.num_labels, &self.id2label) {
            if n != labels.len() {
                return invalid_file!(
                    "num_labels {n} disagrees with id2label ({} labels)",
                    labels.len()
                );
            }
        }
        Ok(())
    }

    /// Number of classes of classification heads: `len(id2label)`, else `num_labels`, else 2.
    pub fn num_labels(&self) -> usize {
        self.id2label
            .as_ref()
            .map(BTreeMap::len)
            .or(self.num_labels)
            .unwrap_or(2)
    }

    /// The longest input the position embeddings allow (RoBERTa: 514 positions → 512 tokens).
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings
            .saturating_sub(F::reserved_positions(self.pad_token_id))
    }
}

/// The real tokens (attention_mask = 1) of a batch, packed row after row, so the encoder never
/// computes on padding. Built on the host, where ids are checked.
pub(crate) struct PackedBatch {
    ids: Tensor,
    positions: Tensor,
    token_types: Tensor,
    /// For each position `row * seq_len + column` of the padded batch, its packed token, or
    /// `total` (a zero row) on padding; `None` when nothing is padded, so that the packed
    /// layout is the padded one.
    slots: Option<Tensor>,
    /// Real tokens per row.
    lengths: Vec<u32>,
    /// Every row starts with a real token, so first-token outputs (pooler, classifier) are
    /// defined.
    first_is_token: bool,
    dims: (usize, usize),
}

fn host_matrix(name: &str, tensor: &Tensor, dims: &[usize]) -> Result<Vec<Vec<u32>>> {
    if tensor.dims() != dims {
        return invalid_input!("{name} has shape {:?}, input_ids {:?}", tensor.dims(), dims);
    }
    Ok(tensor.to_dtype(DType::U32)?.to_vec2::<u32>()?)
}

impl PackedBatch {
    fn new<F: Family>(
        cfg: &EncoderConfig<F>,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
    ) -> Result<Self> {
        let (batch, seq_len) = input_ids
            .dims2()
            .map_err(|_| Error::InvalidInput("input_ids must be 2-D (batch, sequence)".into()))?;
        if batch == 0 || seq_len == 0 {
            return invalid_input!("input_ids is empty (shape [{batch}, {seq_len}])");
        }
        if seq_len > cfg.max_sequence_length() {
            return invalid_input!(
                "sequence length {seq_len} exceeds the model's maximum of {} tokens",
                cfg.max_sequence_length()
            );
        }
        let ids = host_matrix("input_ids", input_ids, &[batch, seq_len])?;
        let mask = match attention_mask {
            Some(mask) => host_matrix("attention_mask", mask, &[batch, seq_len])?,
            None => vec![vec![1; seq_len]; batch],
        };
        let types = match token_type_ids {
            Some(types) => host_matrix("token_type_ids", types, &[batch, seq_len])?,
            None => vec![vec![0; seq_len]; batch],
        };
        let (mut packed_ids, mut positions, mut packed_types, mut slots, mut lengths) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (row, ((ids, mask), types)) in ids.iter().zip(&mask).zip(&types).enumerate() {
            let row_positions = F::position_ids(ids, cfg.pad_token_id);
            let mut length = 0u32;
            for column in (0..seq_len).filter(|&c| mask[c] != 0) {
                let (id, token_type) = (ids[column], types[column]);
                if id as usize >= cfg.vocab_size {
                    return invalid_input!(
                        "input id {id} is out of range for vocab_size {}",
                        cfg.vocab_size
                    );
                }
                if token_type as usize >= cfg.type_vocab_size {
                    return invalid_input!(
                        "token type id {token_type} is out of range for type_vocab_size {}",
                        cfg.type_vocab_size
                    );
                }
                packed_ids.push(id);
                positions.push(row_positions[column]);
                packed_types.push(token_type);
                length += 1;
            }
            slots.extend(mask.iter().map(|&m| m != 0).scan(
                packed_ids.len() as u32 - length,
                |next, real| {
                    Some(if real {
                        post_increment(next)
                    } else {
                        PADDING_SLOT
                    })
                },
            ));
            if length == 0 {
                return invalid_input!("row {row} of attention_mask has no tokens");
            }
            lengths.push(length);
        }
        let device = input_ids.device();
        let total = packed_ids.len();
        let slots = if total == batch * seq_len {
            None
        } else {
            let slots = slots.into_iter().map(|slot| slot.min(total as u32));
            Some(Tensor::from_iter(slots, device)?)
        };
        Ok(Self {
            ids: Tensor::from_vec(packed_ids, total, device)?,
            positions: Tensor::from_vec(positions, total, device)?,
            token_types: Tensor::from_vec(packed_types, total, device)?,
            slots,
            lengths,
            first_is_token: mask.iter().all(|row| row[0] != 0),
            dims: (batch, seq_len),
        })
    }

    /// Packed rows (total, n) back to the padded layout (batch, seq, n), zeros on padding (as
    /// PyTorch's nested-tensor fast path returns). A gather, not a scatter: on a GPU candle's
    /// `index_add` costs tens of times a gather's time.
    pub(crate) fn unpack(&self, packed: &Tensor) -> candle_core::Result<Tensor> {
        let (batch, seq_len) = self.dims;
        let width = packed.dim(1)?;
        match &self.slots {
            None => packed.reshape((batch, seq_len, width)),
            Some(slots) => {
                let zero = Tensor::zeros((1, width), packed.dtype(), packed.device())?;
                Tensor::cat(&[packed, &zero], 0)?
                    .index_select(slots, 0)?
                    .reshape((batch, seq_len, width))
            }
        }
    }

    /// Attention probabilities of the padded attention layout, (batch, heads, width, width) with
    /// each row's tokens first, to the input's layout (batch, heads, seq, seq): zeros on padding
    /// (queries and keys), as the other per-token outputs.
    fn unpack_attention(&self, probabilities: &Tensor) -> candle_core::Result<Tensor> {
        let (_, seq_len) = self.dims;
        let heads = probabilities.dim(1)?;
        let (dtype, device) = (probabilities.dtype(), probabilities.device());
        // The columns of each row's real tokens, in order.
        let slots = match &self.slots {
            Some(slots) => Some(slots.to_vec1::<u32>()?),
            None => None,
        };
        let total: u32 = self.lengths.iter().sum();
        let mut rows = Vec::with_capacity(self.lengths.len());
        for (row, &length) in self.lengths.iter().enumerate() {
            let n = length as usize;
            let columns: Vec<u32> = match &slots {
                Some(slots) => (0..seq_len as u32)
                    .filter(|&c| slots[row * seq_len + c as usize] < total)
                    .collect(),
                None => (0..n as u32).collect(),
            };
            let columns = Tensor::from_vec(columns, n, device)?;
            let real = probabilities
                .get(row)?
                .narrow(1, 0, n)?
                .narrow(2, 0, n)?
                .contiguous()?;
            let queries =
                Tensor::zeros((heads, seq_len, n), dtype, device)?.index_add(&columns, &real, 1)?;
            rows.push(
                Tensor::zeros((heads, seq_len, seq_len), dtype, device)?
                    .index_add(&columns, &queries, 2)?,
            );
        }
        Tensor::stack(&rows, 0)
    }

    /// The packed rows of each sequence's first token (`<s>`, `[CLS]`), shaped (batch, n).
    pub(crate) fn first_tokens(&self, packed: &Tensor) -> Result<Tensor> {
        if !self.first_is_token {
            return invalid_input!(
                "the first token of every row must be a real token (<s>, [CLS]): the pooler and \
                 classifier read its output there, so left-padded batches are not supported; pad \
                 on the right"
            );
        }
        let starts: Vec<u32> = self
            .lengths
            .iter()
            .scan(0u32, |start, &n| Some(std::mem::replace(start, *start + n)))
            .collect();
        let starts = Tensor::from_vec(starts, self.lengths.len(), packed.device())?;
        Ok(packed.index_select(&starts, 0)?)
    }
}

/// How the encoder's attention reaches each sequence's tokens.
enum SequenceAttention {
    /// Per-sequence products over the packed tokens: on the CPU they skip all padding, and
    /// their batched matmuls beat candle's fused varlen kernel.
    Packed { lengths: Tensor, max_len: usize },
    /// One batched product over the sequences laid out `width` wide, each row's tokens first:
    /// on a GPU that is a dozen kernels per layer, where per-sequence products cost a dozen per
    /// sequence. `layout` is `None` when every sequence is `width` long (no padding: the packed
    /// layout is the padded one, and nothing is masked).
    Padded {
        batch: usize,
        width: usize,
        layout: Option<PaddedLayout>,
    },
}

/// How packed tokens map onto a padded (batch, width) layout and back, by gathers only.
struct PaddedLayout {
    /// For each padded slot, its packed token; padding slots read token 0, whose key the mask
    /// hides and whose query output is dropped.
    gather: Tensor,
    /// For each packed token, its padded slot `row * width + k`.
    gather_back: Tensor,
    /// (batch, 1, 1, width): 0 on tokens, the dtype's lowest finite value on padding.
    key_bias: Tensor,
}

/// A padding position's slot before the zero row's index (`total`) is known.
const PADDING_SLOT: u32 = u32::MAX;

/// `*n`, then increments it.
fn post_increment(n: &mut u32) -> u32 {
    *n += 1;
    *n - 1
}

impl SequenceAttention {
    /// For `batch`'s sequences on `device`, the model computing in `dtype`. `probabilities`:
    /// the attention probabilities will be asked for, which only the padded layout computes.
    fn new(
        batch: &PackedBatch,
        dtype: DType,
        device: &Device,
        probabilities: bool,
    ) -> candle_core::Result<Self> {
        if device.is_cpu() && !probabilities {
            Self::packed(&batch.lengths, device)
        } else {
            Self::padded(&batch.lengths, dtype, device)
        }
    }

    fn packed(lengths: &[u32], device: &Device) -> candle_core::Result<Self> {
        Ok(Self::Packed {
            lengths: Tensor::new(lengths, device)?,
            max_len: lengths.iter().copied().max().unwrap_or(0) as usize,
        })
    }

    fn padded(lengths: &[u32], dtype: DType, device: &Device) -> candle_core::Result<Self> {
        let width = lengths.iter().copied().max().unwrap_or(0);
        let batch = lengths.len();
        let layout = if lengths.iter().all(|&n| n == width) {
            None
        } else {
            Some(PaddedLayout::new(lengths, width, dtype, device)?)
        };
        Ok(Self::Padded {
            batch,
            width: width as usize,
            layout,
        })
    }

    /// Scaled dot-product attention of each sequence over itself. `qkv`: (total, 3 × hidden)
    /// packed tokens, query, key and value side by side; returns the context (total, hidden)
    /// and, with `keep_probabilities` (padded layout only), the attention probabilities
    /// (batch, heads, width, width), each row's tokens first.
    fn attend(
        &self,
        qkv: &Tensor,
        num_heads: usize,
        keep_probabilities: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (total, width3) = qkv.dims2()?;
        let hidden = width3 / 3;
        let head_dim = hidden / num_heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        match self {
            Self::Packed { lengths, max_len } => {
                // Strided views: the attention makes each sequence's heads contiguous itself.
                let qkv = qkv.reshape((total, 3, num_heads, head_dim))?;
                let part = |i: usize| qkv.narrow(1, i, 1)?.squeeze(1);
                let (q, k, v) = (part(0)?, part(1)?, part(2)?);
                if keep_probabilities {
                    candle_core::bail!("the per-sequence attention keeps no probabilities");
                }
                let (s, n, scale) = (lengths, *max_len, scale as f32);
                let context = flash_attn_varlen_unfused(
                    &q, &k, &v, None, s, s, n, n, scale, false, None, None,
                )?
                .reshape((total, hidden))?;
                Ok((context, None))
            }
            Self::Padded {
                batch,
                width,
                layout,
            } => {
                let (batch, width) = (*batch, *width);
                let padded = match layout {
                    Some(layout) => qkv.index_select(&layout.gather, 0)?,
                    None => qkv.clone(),
                };
                let padded = padded
                    .reshape((batch, width, 3, num_heads, head_dim))?
                    .permute((2, 0, 3, 1, 4))?;
                let q = padded.get(0)?.contiguous()?;
                let k = padded.get(1)?.contiguous()?;
                let v = padded.get(2)?.contiguous()?;
                let mut scores = (q.matmul(&k.t()?)? * scale)?;
                if let Some(layout) = layout {
                    scores = scores.broadcast_add(&layout.key_bias)?;
                }
                let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
                let context = probabilities
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .reshape((batch * width, hidden))?;
                let context = match layout {
                    Some(layout) => context.index_select(&layout.gather_back, 0)?,
                    None => context,
                };
                Ok((context, keep_probabilities.then_some(probabilities)))
            }
        }
    }
}

impl PaddedLayout {
    fn new(
        lengths: &[u32],
        width: u32,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let starts = lengths.iter().scan(0u32, |start, &n| {
            *start += n;
            Some(*start - n)
        });
        let gather: Vec<u32> = starts
            .zip(lengths)
            .flat_map(|(start, &n)| (0..width).map(move |k| if k < n { start + k } else { 0 }))
            .collect();
        let gather_back: Vec<u32> = (0u32..)
            .zip(lengths)
            .flat_map(|(row, &n)| (0..n).map(move |k| row * width + k))
            .collect();
        // The dtype's lowest finite value, as transformers masks: no `-inf * 0`, no NaN.
        let lowest = lowest_finite(dtype);
        let key_bias: Vec<f32> = lengths
            .iter()
            .flat_map(|&n| (0..width).map(move |k| if k < n { 0.0 } else { lowest }))
            .collect();
        let (batch, width) = (lengths.len(), width as usize);
        Ok(Self {
            gather: Tensor::from_vec(gather, batch * width, device)?,
            gather_back: Tensor::new(gather_back, device)?,
            key_bias: Tensor::from_vec(key_bias, (batch, 1, 1, width), device)?.to_dtype(dtype)?,
        })
    }
}

/// `word_embeddings`: the largest tensor (a fifth of roberta-base, two thirds of XLM-R), of
/// which a batch reads a few rows. Left in a mapped safetensors file, only those rows' pages
/// become resident.
pub(crate) enum WordEmbeddings {
    Loaded(Embedding),
    Mapped(MappedTable),
    /// The rows of the packed masked-LM decoder tied to them.
    Packed(PackedRows),
}

impl WordEmbeddings {
    /// From the base model's `vb`: mapped when `mapped` is given, else loaded.
    fn load<F: Family>(
        vb: &VarBuilder,
        cfg: &EncoderConfig<F>,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        let shape = (cfg.vocab_size, cfg.hidden_size);
        let vb = vb.pp("embeddings.word_embeddings");
        Ok(match mapped {
            Some(files) => Self::Mapped(files.table(&format!("{}.weight", vb.prefix()), shape)?),
            None => Self::Loaded(embedding(shape.0, shape.1, vb)?),
        })
    }

    fn forward(&self, ids: &Tensor, dtype: DType) -> candle_core::Result<Tensor> {
        match self {
            Self::Loaded(embedding) => embedding.forward(ids),
            Self::Mapped(table) => table.rows(&ids.to_vec1::<u32>()?, dtype),
            Self::Packed(rows) => rows.forward(ids),
        }
    }
}

/// `RobertaEmbeddings` / `BertEmbeddings`: word + position + token type embeddings, then
/// LayerNorm (the family counts the positions).
struct Embeddings {
    word_embeddings: WordEmbeddings,
    position_embeddings: Embedding,
    token_type_embeddings: Embedding,
    layer_norm: LayerNorm,
}

impl Embeddings {
    fn load<F: Family>(
        vb: VarBuilder,
        cfg: &EncoderConfig<F>,
        word_embeddings: WordEmbeddings,
    ) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            word_embeddings,
            position_embeddings: embedding(
                cfg.max_position_embeddings,
                h,
                vb.pp("position_embeddings"),
            )?,
            token_type_embeddings: embedding(
                cfg.type_vocab_size,
                h,
                vb.pp("token_type_embeddings"),
            )?,
            layer_norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// (total, hidden) embeddings of the packed tokens.
    fn forward(&self, batch: &PackedBatch) -> candle_core::Result<Tensor> {
        let positions = self.position_embeddings.forward(&batch.positions)?;
        let words = self
            .word_embeddings
            .forward(&batch.ids, positions.dtype())?;
        let token_types = self.token_type_embeddings.forward(&batch.token_types)?;
        let embeddings = ((words + positions)? + token_types)?;
        self.layer_norm.forward(&embeddings)
    }
}

/// `RobertaSelfAttention` + `RobertaSelfOutput` over packed sequences, with query/key/value
/// fused into one matmul.
struct Attention {
    qkv: Linear,
    output: Linear,
    layer_norm: LayerNorm,
    num_heads: usize,
}

impl Attention {
    fn load<F: Family>(vb: VarBuilder, cfg: &EncoderConfig<F>) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let attn = vb.pp("self");
        let qkv = ["query", "key", "value"].map(|name| attn.pp(name));
        let weights = qkv
            .iter()
            .map(|vb| vb.get((h, h), "weight"))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let biases = qkv
            .iter()
            .map(|vb| vb.get(h, "bias"))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let weight = Tensor::cat(&weights, 0)?;
        Ok(Self {
            qkv: Linear::from_out_in(&weight, Some(Tensor::cat(&biases, 0)?))?,
            output: Linear::load(h, h, vb.pp("output.dense"))?,
            layer_norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("output.LayerNorm"))?,
            num_heads: cfg.num_attention_heads,
        })
    }

    /// `xs`: (total, hidden) packed tokens; each sequence attends to itself only. With
    /// `keep_probabilities`, also the attention probabilities (see `SequenceAttention`).
    fn forward(
        &self,
        xs: &Tensor,
        attention: &SequenceAttention,
        keep_probabilities: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (context, probabilities) =
            attention.attend(&self.qkv.forward(xs)?, self.num_heads, keep_probabilities)?;
        let xs = self
            .layer_norm
            .forward(&(self.output.forward(&context)? + xs)?)?;
        Ok((xs, probabilities))
    }
}

/// `RobertaLayer`: attention, then `RobertaIntermediate` + `RobertaOutput`.
struct Layer {
    attention: Attention,
    /// `RobertaIntermediate`: dense, then `hidden_act`.
    intermediate: Linear,
    output: Linear,
    layer_norm: LayerNorm,
}

impl Layer {
    fn load<F: Family>(vb: VarBuilder, cfg: &EncoderConfig<F>) -> candle_core::Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: Attention::load(vb.pp("attention"), cfg)?,
            intermediate: Linear::load(h, i, vb.pp("intermediate.dense"))?
                .with_activation(cfg.hidden_act),
            output: Linear::load(i, h, vb.pp("output.dense"))?,
            layer_norm: layer_norm(h, cfg.layer_norm_eps, vb.pp("output.LayerNorm"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        attention: &SequenceAttention,
        keep_probabilities: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (xs, probabilities) = self.attention.forward(xs, attention, keep_probabilities)?;
        let hidden = self.intermediate.forward(&xs)?;
        let xs = self
            .layer_norm
            .forward(&(self.output.forward(&hidden)? + xs)?)?;
        Ok((xs, probabilities))
    }
}

/// Outputs of the base model, named as in transformers' `BaseModelOutputWithPooling`.
pub struct EncoderOutput {
    pub last_hidden_state: Tensor,
    pub pooler_output: Option<Tensor>,
    pub intermediates: Intermediates,
}

/// The encoder's output for a packed batch: the last layer's packed tokens (total, hidden), and
/// the intermediate outputs asked for.
pub(crate) struct Encoded {
    pub batch: PackedBatch,
    pub hidden: Tensor,
    pub intermediates: Intermediates,
}

/// The base model (`RobertaModel`, ...): embeddings, encoder and, when the checkpoint has one,
/// the pooler.
///
/// Inputs of every head are u32 tensors shaped (batch, seq) on the model's device:
/// `input_ids`, `attention_mask` (1 = token, 0 = padding; default all ones) and
/// `token_type_ids` (default zeros). Only real tokens are computed; per-token outputs are zero
/// on padding.
pub struct BaseModel<F: Family> {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
    config: EncoderConfig<F>,
}

/// Task checkpoints keep the base model under the family's prefix (`roberta.`); base
/// checkpoints at the root.
pub(crate) fn base_model_vb<'a, F: Family>(vb: &VarBuilder<'a>) -> VarBuilder<'a> {
    // Probe a small tensor: with pytorch_model.bin, asking for one reads it.
    let prefix = F::BASE_MODEL_PREFIX;
    if vb.contains_tensor(&format!("{prefix}.embeddings.LayerNorm.weight")) {
        vb.pp(prefix)
    } else {
        vb.clone()
    }
}

impl<F: Family> BaseModel<F> {
    /// Loads the base model from the root of `vb` (use `base_model_vb` for task checkpoints).
    /// `with_pooler`: load `pooler.dense` if the checkpoint has it.
    pub(crate) fn load_base(
        vb: VarBuilder,
        cfg: &EncoderConfig<F>,
        with_pooler: bool,
        word_embeddings: WordEmbeddings,
    ) -> candle_core::Result<Self> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let pooler = if with_pooler && vb.contains_tensor("pooler.dense.weight") {
            Some(Linear::load(
                cfg.hidden_size,
                cfg.hidden_size,
                vb.pp("pooler.dense"),
            )?)
        } else {
            None
        };
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), cfg, word_embeddings)?,
            layers,
            pooler,
            config: cfg.clone(),
        })
    }

    /// `mapped`: the checkpoint's mapped safetensors files, to read the word embeddings from
    /// them row by row instead of loading them (CPU only); `None` loads every tensor.
    pub fn load(
        vb: VarBuilder,
        cfg: &EncoderConfig<F>,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        Self::load_from_checkpoint(&vb, cfg, true, mapped)
    }

    /// The base model of a base or task checkpoint, its word embeddings mapped if `mapped`.
    pub(crate) fn load_from_checkpoint(
        vb: &VarBuilder,
        cfg: &EncoderConfig<F>,
        with_pooler: bool,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        let vb = base_model_vb::<F>(vb);
        let word_embeddings = WordEmbeddings::load(&vb, cfg, mapped)?;
        Self::load_base(vb, cfg, with_pooler, word_embeddings)
    }

    pub fn config(&self) -> &EncoderConfig<F> {
        &self.config
    }

    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<EncoderOutput> {
        let Encoded {
            batch,
            hidden,
            intermediates,
        } = self.encode_inputs(input_ids, attention_mask, token_type_ids, options)?;
        let pooler_output = match &self.pooler {
            Some(pooler) => Some(pooler.forward(&batch.first_tokens(&hidden)?)?.tanh()?),
            None => None,
        };
        Ok(EncoderOutput {
            last_hidden_state: batch.unpack(&hidden)?,
            pooler_output,
            intermediates,
        })
    }

    /// The encoder's output for the packed tokens, (total, hidden), and the intermediate
    /// outputs `options` asks for.
    fn encode(
        &self,
        batch: &PackedBatch,
        options: OutputOptions,
    ) -> candle_core::Result<(Tensor, Intermediates)> {
        let mut xs = self.embeddings.forward(batch)?;
        let attention = SequenceAttention::new(batch, xs.dtype(), xs.device(), options.attentions)?;
        let mut hidden_states = options.hidden_states.then(Vec::new);
        let mut attentions = options.attentions.then(Vec::new);
        for layer in &self.layers {
            if let Some(states) = hidden_states.as_mut() {
                states.push(batch.unpack(&xs)?);
            }
            let probabilities;
            (xs, probabilities) = layer.forward(&xs, &attention, options.attentions)?;
            if let (Some(attentions), Some(probabilities)) = (attentions.as_mut(), probabilities) {
                attentions.push(batch.unpack_attention(&probabilities)?);
            }
        }
        if let Some(states) = hidden_states.as_mut() {
            states.push(batch.unpack(&xs)?);
        }
        Ok((
            xs,
            Intermediates {
                hidden_states,
                attentions,
            },
        ))
    }

    /// Packs the inputs and runs the encoder; heads use this.
    pub(crate) fn encode_inputs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<Encoded> {
        let batch = PackedBatch::new(&self.config, input_ids, attention_mask, token_type_ids)?;
        let (hidden, intermediates) = self.encode(&batch, options)?;
        Ok(Encoded {
            batch,
            hidden,
            intermediates,
        })
    }
}

/// The masked-LM decoder of the head at `head` (`lm_head`, ...) and the base model's word
/// embeddings: the decoder weight is tied to the embeddings when the checkpoint does not store
/// `decoder.weight`, and then, where the decoder is packed, the embeddings read their rows from
/// it (one copy of the table). Loads every tensor: the decoder reads all rows.
pub(crate) fn load_masked_lm_decoder<F: Family>(
    base_vb: &VarBuilder,
    head: &VarBuilder,
    cfg: &EncoderConfig<F>,
) -> candle_core::Result<(Linear, WordEmbeddings)> {
    let (h, v) = (cfg.hidden_size, cfg.vocab_size);
    let table = embedding(v, h, base_vb.pp("embeddings.word_embeddings"))?;
    // transformers ties `decoder.bias` to the head's `bias`; files may hold either.
    let bias_name = if head.contains_tensor("bias") {
        "bias"
    } else {
        "decoder.bias"
    };
    let bias = Some(head.get(v, bias_name)?);
    if head.contains_tensor("decoder.weight") {
        let weight = head.get((v, h), "decoder.weight")?;
        return Ok((Linear::tied(&weight, bias)?, WordEmbeddings::Loaded(table)));
    }
    let decoder = Linear::tied(table.embeddings(), bias)?;
    let word_embeddings = match decoder.packed_rows() {
        Some(rows) => WordEmbeddings::Packed(rows),
        None => WordEmbeddings::Loaded(table),
    };
    Ok((decoder, word_embeddings))
}

/// `…ForQuestionAnswering` (extractive QA, as trained on SQuAD): `qa_outputs`, a linear layer
/// that gives every token a start and an end logit.
pub struct ForQuestionAnswering<F: Family> {
    base: BaseModel<F>,
    qa_outputs: Linear,
}

/// Outputs of a question-answering head, named as in transformers'
/// `QuestionAnsweringModelOutput`.
pub struct QuestionAnsweringOutput {
    /// (batch, seq), zero on padding.
    pub start_logits: Tensor,
    /// (batch, seq), zero on padding.
    pub end_logits: Tensor,
    pub intermediates: Intermediates,
}

impl<F: Family> ForQuestionAnswering<F> {
    /// `mapped`: as for `BaseModel::load`. `qa_outputs` must have two outputs (start, end), as
    /// transformers' heads need.
    pub fn load(
        vb: VarBuilder,
        cfg: &EncoderConfig<F>,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            base: BaseModel::load_from_checkpoint(&vb, cfg, false, mapped)?,
            qa_outputs: Linear::load(cfg.hidden_size, 2, vb.pp("qa_outputs"))?,
        })
    }

    pub fn config(&self) -> &EncoderConfig<F> {
        self.base.config()
    }

    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<QuestionAnsweringOutput> {
        let Encoded {
            batch,
            hidden,
            intermediates,
        } = self
            .base
            .encode_inputs(input_ids, attention_mask, token_type_ids, options)?;
        let logits = batch.unpack(&self.qa_outputs.forward(&hidden)?)?;
        Ok(QuestionAnsweringOutput {
            start_logits: logits.get_on_dim(2, 0)?,
            end_logits: logits.get_on_dim(2, 1)?,
            intermediates,
        })
    }
}

/// Loads a head from a model directory: config, weights, and errors that name the file. On the
/// CPU, `load` is given the mapped safetensors files (see `BaseModel::load`).
pub fn from_dir<F: Family, M>(
    dir: &Path,
    dtype: DType,
    device: &Device,
    load: impl FnOnce(
        VarBuilder,
        &EncoderConfig<F>,
        Option<&MappedSafetensors>,
    ) -> candle_core::Result<M>,
) -> Result<M> {
    let config = EncoderConfig::<F>::from_dir(dir)?;
    let checkpoint = open_checkpoint(dir, dtype, device)?;
    let mapped = checkpoint.mapped.as_ref().filter(|_| device.is_cpu());
    load(checkpoint.vb.clone(), &config, mapped).map_err(|e| checkpoint.load_error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GPU layout (padded, masked, one batched product) against the CPU's per-sequence
    /// products, on the CPU: odd lengths, a one-token row, heads of width 5.
    #[test]
    fn padded_attention_matches_per_sequence_attention() -> candle_core::Result<()> {
        padded_attention_matches(&[5, 1, 7, 3])?;
        // Equal lengths: no gathers, no mask.
        padded_attention_matches(&[4, 4, 4])
    }

    fn padded_attention_matches(lengths: &[u32]) -> candle_core::Result<()> {
        let (heads, head_dim) = (3, 5);
        let total = lengths.iter().sum::<u32>() as usize;
        let qkv = Tensor::randn(0f32, 1.0, (total, 3 * heads * head_dim), &Device::Cpu)?;
        let expected = SequenceAttention::packed(lengths, &Device::Cpu)?
            .attend(&qkv, heads, false)?
            .0;
        let padded = SequenceAttention::padded(lengths, DType::F32, &Device::Cpu)?;
        let diff = (padded.attend(&qkv, heads, false)?.0 - &expected)?
            .abs()?
            .max_all()?;
        assert!(diff.to_scalar::<f32>()? < 1e-5);
        // Half precision: the mask stays finite, so no row turns to NaN.
        for (dtype, tolerance) in [(DType::F16, 1e-2), (DType::BF16, 5e-2)] {
            let padded = SequenceAttention::padded(lengths, dtype, &Device::Cpu)?;
            let context = padded
                .attend(&qkv.to_dtype(dtype)?, heads, false)?
                .0
                .to_dtype(DType::F32)?;
            let diff = (context - &expected)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(diff < tolerance, "{dtype:?}: {diff}");
        }
        Ok(())
    }
}
