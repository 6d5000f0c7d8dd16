//! GPT-2 (transformers' `modeling_gpt2.py`).
//!
//! Module names follow the checkpoint keys: `wte`, `wpe`, `h.N.attn.c_attn`, `h.N.mlp.c_fc`,
//! `ln_f`, with the base model under `transformer.` in files written by `save_pretrained` and at
//! the root in the hub's original `openai-community/gpt2` files. The `attn.bias` /
//! `attn.masked_bias` buffers of old checkpoints are never read.

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use serde::{Deserialize, Serialize};

use super::outputs::{HeadOutput, Intermediates, OutputOptions};
use crate::device::lowest_finite;
use crate::error::{invalid_file, invalid_input, Error, Result};
use crate::kernels::activation::HiddenAct;
use crate::linear::{Linear, PackedRows};
use crate::weights::{open_checkpoint, read_config};

/// transformers' `GPT2Config`, with the same defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GPT2Config {
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::n_positions")]
    pub n_positions: usize,
    #[serde(default = "defaults::n_embd")]
    pub n_embd: usize,
    #[serde(default = "defaults::n_layer")]
    pub n_layer: usize,
    #[serde(default = "defaults::n_head")]
    pub n_head: usize,
    /// The MLP width; `None` means `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "defaults::activation_function")]
    pub activation_function: HiddenAct,
    #[serde(default = "defaults::layer_norm_epsilon")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "defaults::yes")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    #[serde(default)]
    pub add_cross_attention: bool,
    #[serde(default = "defaults::special_token_id")]
    pub bos_token_id: Option<u32>,
    #[serde(default = "defaults::special_token_id")]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
}

mod defaults {
    use crate::kernels::activation::HiddenAct;
    pub fn vocab_size() -> usize {
        50257
    }
    pub fn n_positions() -> usize {
        1024
    }
    pub fn n_embd() -> usize {
        768
    }
    pub fn n_layer() -> usize {
        12
    }
    pub fn n_head() -> usize {
        12
    }
    pub fn activation_function() -> HiddenAct {
        HiddenAct::GeluNew
    }
    pub fn layer_norm_epsilon() -> f64 {
        1e-5
    }
    pub fn yes() -> bool {
        true
    }
    pub fn special_token_id() -> Option<u32> {
        Some(50256)
    }
}

impl GPT2Config {
    /// Reads and checks `config.json` from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config: Self = read_config(dir)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.add_cross_attention {
            return invalid_file!("add_cross_attention=true (GPT-2 as a decoder of an encoder-decoder) is not supported");
        }
        if self.reorder_and_upcast_attn {
            return invalid_file!("reorder_and_upcast_attn=true is not supported");
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return invalid_file!(
                "n_embd {} is not a multiple of n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        Ok(())
    }

    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

/// transformers' `Conv1D`: a linear layer whose weight is stored `[in, out]`.
fn conv1d(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let weight = vb.get((in_dim, out_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Linear::from_in_out(&weight, Some(bias))
}

/// `GPT2Attention` (self-attention only).
struct Attention {
    c_attn: Linear,
    c_proj: Linear,
    num_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Attention {
    fn load(vb: VarBuilder, cfg: &GPT2Config, layer_idx: usize) -> candle_core::Result<Self> {
        let e = cfg.n_embd;
        let head_dim = e / cfg.n_head;
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (head_dim as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer_idx + 1) as f64;
        }
        Ok(Self {
            c_attn: conv1d(e, 3 * e, vb.pp("c_attn"))?,
            c_proj: conv1d(e, e, vb.pp("c_proj"))?,
            num_heads: cfg.n_head,
            head_dim,
            scale,
        })
    }

    /// `bias` is additive, shaped (batch, 1, seq, keys); `cache` holds the earlier keys/values.
    /// With `keep_probabilities`, also the attention probabilities (batch, heads, seq, keys).
    fn forward(
        &self,
        xs: &Tensor,
        bias: &Tensor,
        cache: Option<&mut KvCache>,
        keep_probabilities: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (b, s, e) = xs.dims3()?;
        // (b, s, 3, heads, head_dim) → q, k, v shaped (b, heads, s, head_dim)
        let qkv = self
            .c_attn
            .forward(xs)?
            .reshape((b, s, 3, self.num_heads, self.head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let (k, v) = match cache {
            Some(cache) => cache.append(&k, &v)?,
            None => (k, v),
        };
        let scores = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, e))?;
        Ok((
            self.c_proj.forward(&context)?,
            keep_probabilities.then_some(probs),
        ))
    }
}

/// `GPT2MLP`.
struct Mlp {
    /// `c_fc`, then `act`.
    c_fc: Linear,
    c_proj: Linear,
}

impl Mlp {
    fn load(vb: VarBuilder, cfg: &GPT2Config) -> candle_core::Result<Self> {
        let (e, i) = (cfg.n_embd, cfg.inner_dim());
        Ok(Self {
            c_fc: conv1d(e, i, vb.pp("c_fc"))?.with_activation(cfg.activation_function),
            c_proj: conv1d(i, e, vb.pp("c_proj"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.c_proj.forward(&self.c_fc.forward(xs)?)
    }
}

/// `GPT2Block`: pre-norm attention and MLP, each with a residual.
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &GPT2Config, layer_idx: usize) -> candle_core::Result<Self> {
        let (e, eps) = (cfg.n_embd, cfg.layer_norm_epsilon);
        Ok(Self {
            ln_1: layer_norm(e, eps, vb.pp("ln_1"))?,
            attn: Attention::load(vb.pp("attn"), cfg, layer_idx)?,
            ln_2: layer_norm(e, eps, vb.pp("ln_2"))?,
            mlp: Mlp::load(vb.pp("mlp"), cfg)?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        bias: &Tensor,
        cache: Option<&mut KvCache>,
        keep_probabilities: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let (attended, probabilities) =
            self.attn
                .forward(&self.ln_1.forward(xs)?, bias, cache, keep_probabilities)?;
        let xs = (attended + xs)?;
        Ok((
            (self.mlp.forward(&self.ln_2.forward(&xs)?)? + xs)?,
            probabilities,
        ))
    }
}

/// The keys and values of every layer, preallocated for `max_len` positions (candle-nn's
/// `KvCache`), so that a generation step costs the same at any position.
pub struct Gpt2Cache {
    layers: Vec<KvCache>,
}

impl Gpt2Cache {
    /// Keeps the cached keys and values of `rows`, in that order (beam search continues some
    /// beams more than once and drops others).
    pub fn select_rows(&mut self, rows: &[u32]) -> candle_core::Result<()> {
        for layer in &mut self.layers {
            let (Some(keys), Some(values)) = (layer.k()?, layer.v()?) else {
                continue;
            };
            let index = Tensor::from_slice(rows, rows.len(), keys.device())?;
            let keys = keys.contiguous()?.index_select(&index, 0)?;
            let values = values.contiguous()?.index_select(&index, 0)?;
            layer.reset();
            layer.append(&keys, &values)?;
        }
        Ok(())
    }
}

/// The additive attention bias, row-major (batch, queries, keys): 0 where query `i` (at absolute
/// index `offset + i`) may see key `j` — `j <= offset + i` and `attention_mask[j] == 1` — and
/// `lowest` elsewhere. One finite value for both reasons, so no sum ever overflows to `-inf`.
pub fn causal_bias_values(attention_mask: &[Vec<u32>], queries: usize, lowest: f32) -> Vec<f32> {
    let mut values = Vec::new();
    for row in attention_mask {
        let offset = row.len() - queries;
        for i in 0..queries {
            values.extend(row.iter().enumerate().map(|(j, &m)| {
                if j <= offset + i && m != 0 {
                    0.0
                } else {
                    lowest
                }
            }));
        }
    }
    values
}

/// transformers' generation position ids: `attention_mask.cumsum(-1) - 1`, 0 on padding.
pub fn position_ids_from_mask(attention_mask: &[u32]) -> Vec<u32> {
    attention_mask
        .iter()
        .scan(0u32, |count, &m| {
            *count += m;
            Some(if m == 0 { 0 } else { *count - 1 })
        })
        .collect()
}

/// `wte`: a table, or, when the tied `lm_head` is packed, its rows read back from the packed
/// weight (one copy serves both).
enum TokenEmbeddings {
    Table(Embedding),
    Packed(PackedRows),
}

impl TokenEmbeddings {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::Table(table) => table.forward(ids),
            Self::Packed(rows) => rows.forward(ids),
        }
    }
}

/// `GPT2Model`: token + learned position embeddings, the blocks, and the final LayerNorm.
pub struct GPT2Model {
    wte: TokenEmbeddings,
    wpe: Embedding,
    h: Vec<Block>,
    ln_f: LayerNorm,
    config: GPT2Config,
    dtype: DType,
}

/// `save_pretrained` files keep the base model under `transformer.`; the hub's originals at the
/// root.
fn base_model_vb<'a>(vb: &VarBuilder<'a>) -> VarBuilder<'a> {
    // Probe a small tensor: with pytorch_model.bin, asking for one reads it.
    if vb.contains_tensor("transformer.ln_f.weight") {
        vb.pp("transformer")
    } else {
        vb.clone()
    }
}

impl GPT2Model {
    fn load_base(vb: VarBuilder, cfg: &GPT2Config) -> candle_core::Result<Self> {
        let h = (0..cfg.n_layer)
            .map(|i| Block::load(vb.pp(format!("h.{i}")), cfg, i))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            wte: TokenEmbeddings::Table(embedding(cfg.vocab_size, cfg.n_embd, vb.pp("wte"))?),
            wpe: embedding(cfg.n_positions, cfg.n_embd, vb.pp("wpe"))?,
            h,
            ln_f: layer_norm(cfg.n_embd, cfg.layer_norm_epsilon, vb.pp("ln_f"))?,
            config: cfg.clone(),
            dtype: vb.dtype(),
        })
    }

    pub fn load(vb: VarBuilder, cfg: &GPT2Config) -> candle_core::Result<Self> {
        Self::load_base(base_model_vb(&vb), cfg)
    }

    pub fn config(&self) -> &GPT2Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.wpe.embeddings().device()
    }

    /// An `lm_head` tied to `wte`; where it is packed, `wte` then reads its rows from it.
    fn tied_lm_head(&mut self) -> candle_core::Result<Linear> {
        let TokenEmbeddings::Table(table) = &self.wte else {
            candle_core::bail!("wte is already tied to an lm_head")
        };
        let lm_head = Linear::tied(table.embeddings(), None)?;
        if let Some(rows) = lm_head.packed_rows() {
            self.wte = TokenEmbeddings::Packed(rows);
        }
        Ok(lm_head)
    }

    /// An empty cache for sequences of up to `max_len` tokens.
    pub fn new_cache(&self, max_len: usize) -> Gpt2Cache {
        Gpt2Cache {
            layers: (0..self.h.len())
                .map(|_| KvCache::new(2, max_len))
                .collect(),
        }
    }

    /// `input_ids` (u32, batch × seq) with transformers' default positions `0..seq`;
    /// `attention_mask` is 1 for tokens and 0 for padding. Returns `last_hidden_state` and the
    /// intermediate outputs `options` asks for: `hidden_states` are the embeddings, each
    /// block's output but the last, and `last_hidden_state`, as in transformers. Every position
    /// is computed, padding included, with transformers' masks.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<(Tensor, Intermediates)> {
        let (batch, seq_len) = validate_inputs(&self.config, input_ids, attention_mask)?;
        let mask = match attention_mask {
            Some(mask) => mask.to_vec2::<u32>()?,
            None => vec![vec![1; seq_len]; batch],
        };
        let positions = Tensor::arange(0u32, seq_len as u32, self.device())?
            .unsqueeze(0)?
            .repeat((batch, 1))?;
        Ok(self.run(input_ids, &positions, &mask, None, options)?)
    }

    /// Runs the blocks on `input_ids` at `positions`. `attention_mask` covers the cached
    /// positions and the new ones, one host row per sequence.
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attention_mask: &[Vec<u32>],
        cache: Option<&mut Gpt2Cache>,
    ) -> candle_core::Result<Tensor> {
        let options = OutputOptions::default();
        Ok(self
            .run(input_ids, positions, attention_mask, cache, options)?
            .0)
    }

    /// `hidden_states`, and the intermediate outputs `options` asks for.
    fn run(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attention_mask: &[Vec<u32>],
        mut cache: Option<&mut Gpt2Cache>,
        options: OutputOptions,
    ) -> candle_core::Result<(Tensor, Intermediates)> {
        let (batch, seq_len) = input_ids.dims2()?;
        let keys = attention_mask.first().map_or(0, Vec::len);
        let bias = causal_bias_values(attention_mask, seq_len, lowest_finite(self.dtype));
        let bias = Tensor::from_vec(bias, (batch, 1, seq_len, keys), self.device())?
            .to_dtype(self.dtype)?;
        let mut xs = (self.wte.forward(input_ids)? + self.wpe.forward(positions)?)?;
        let mut hidden_states = options.hidden_states.then(Vec::new);
        let mut attentions = options.attentions.then(Vec::new);
        for (i, block) in self.h.iter().enumerate() {
            if let Some(states) = hidden_states.as_mut() {
                states.push(xs.clone());
            }
            let layer_cache = cache.as_mut().map(|cache| &mut cache.layers[i]);
            let probabilities;
            (xs, probabilities) = block.forward(&xs, &bias, layer_cache, options.attentions)?;
            if let (Some(attentions), Some(probabilities)) = (attentions.as_mut(), probabilities) {
                attentions.push(probabilities);
            }
        }
        let xs = self.ln_f.forward(&xs)?;
        if let Some(states) = hidden_states.as_mut() {
            states.push(xs.clone());
        }
        let intermediates = Intermediates {
            hidden_states,
            attentions,
        };
        Ok((xs, intermediates))
    }
}

/// `GPT2LMHeadModel`: the base model and `lm_head`, tied to `wte` unless the file stores it.
pub struct GPT2LMHeadModel {
    transformer: GPT2Model,
    lm_head: Linear,
}

impl GPT2LMHeadModel {
    pub fn load(vb: VarBuilder, cfg: &GPT2Config) -> candle_core::Result<Self> {
        let mut transformer = GPT2Model::load(vb.clone(), cfg)?;
        let lm_head = if vb.contains_tensor("lm_head.weight") {
            Linear::tied(
                &vb.get((cfg.vocab_size, cfg.n_embd), "lm_head.weight")?,
                None,
            )?
        } else {
            transformer.tied_lm_head()?
        };
        Ok(Self {
            transformer,
            lm_head,
        })
    }

    pub fn config(&self) -> &GPT2Config {
        &self.transformer.config
    }

    pub fn base(&self) -> &GPT2Model {
        &self.transformer
    }

    /// Logits shaped (batch, seq, vocab_size); see `GPT2Model::forward`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<HeadOutput> {
        let (hidden, intermediates) =
            self.transformer
                .forward(input_ids, attention_mask, options)?;
        Ok(HeadOutput {
            logits: self.lm_head.forward(&hidden)?,
            intermediates,
        })
    }

    /// One decoding step: runs the new `input_ids` (batch × new) at `positions` through the
    /// cache and returns the logits of the last position only, shaped (batch, vocab_size).
    pub fn next_token_logits(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        attention_mask: &[Vec<u32>],
        cache: &mut Gpt2Cache,
    ) -> candle_core::Result<Tensor> {
        let hidden =
            self.transformer
                .hidden_states(input_ids, positions, attention_mask, Some(cache))?;
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?.squeeze(1)?;
        self.lm_head.forward(&last)?.to_dtype(DType::F32)
    }
}

/// Checks ids, shapes and length; returns (batch, seq).
fn validate_inputs(
    cfg: &GPT2Config,
    input_ids: &Tensor,
    attention_mask: Option<&Tensor>,
) -> Result<(usize, usize)> {
    let (batch, seq_len) = input_ids
        .dims2()
        .map_err(|_| Error::InvalidInput("input_ids must be 2-D (batch, sequence)".into()))?;
    if batch == 0 || seq_len == 0 {
        return invalid_input!("input_ids is empty (shape [{batch}, {seq_len}])");
    }
    if seq_len > cfg.n_positions {
        return invalid_input!(
            "sequence length {seq_len} exceeds the model's maximum of {} positions",
            cfg.n_positions
        );
    }
    let max_id = input_ids.max_all()?.to_scalar::<u32>()?;
    if max_id as usize >= cfg.vocab_size {
        return invalid_input!(
            "input id {max_id} is out of range for vocab_size {}",
            cfg.vocab_size
        );
    }
    if let Some(mask) = attention_mask {
        if mask.dims() != input_ids.dims() {
            return invalid_input!(
                "attention_mask has shape {:?}, input_ids {:?}",
                mask.dims(),
                input_ids.dims()
            );
        }
        if mask.max_all()?.to_scalar::<u32>()? > 1 {
            return invalid_input!("attention_mask must contain only 0 and 1");
        }
    }
    Ok((batch, seq_len))
}

/// Loads a model from a directory: config, weights, and errors that name the file.
pub fn from_dir<M>(
    dir: &Path,
    dtype: DType,
    device: &Device,
    load: impl FnOnce(VarBuilder, &GPT2Config) -> candle_core::Result<M>,
) -> Result<M> {
    let config = GPT2Config::from_dir(dir)?;
    let checkpoint = open_checkpoint(dir, dtype, device)?;
    load(checkpoint.vb.clone(), &config).map_err(|e| checkpoint.load_error(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_transformers_defaults() {
        let cfg: GPT2Config = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (
                cfg.vocab_size,
                cfg.n_positions,
                cfg.n_embd,
                cfg.n_layer,
                cfg.n_head
            ),
            (50257, 1024, 768, 12, 12)
        );
        assert_eq!(cfg.inner_dim(), 3072);
        assert_eq!(cfg.activation_function, HiddenAct::GeluNew);
        assert_eq!(
            (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id),
            (Some(50256), Some(50256), None)
        );
        assert!(cfg.scale_attn_weights && !cfg.scale_attn_by_inverse_layer_idx);
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn unsupported_options_are_invalid_files() {
        for json in [
            r#"{"add_cross_attention": true}"#,
            r#"{"reorder_and_upcast_attn": true}"#,
            r#"{"n_embd": 10, "n_head": 3}"#,
        ] {
            let cfg: GPT2Config = serde_json::from_str(json).unwrap();
            assert!(
                matches!(cfg.validate(), Err(crate::error::Error::InvalidFile(_))),
                "{json}"
            );
        }
    }

    #[test]
    fn position_ids_skip_left_padding() {
        assert_eq!(position_ids_from_mask(&[0, 0, 1, 1, 1]), [0, 0, 0, 1, 2]);
        assert_eq!(position_ids_from_mask(&[1, 1, 0]), [0, 1, 0]);
    }

    #[test]
    fn bias_is_causal_and_masks_padding() {
        let low = -1.0;
        // Two queries after one cached position; the first key is padding.
        let bias = causal_bias_values(&[vec![0, 1, 1]], 2, low);
        assert_eq!(bias, [low, 0.0, low, low, 0.0, 0.0]);
    }
}
