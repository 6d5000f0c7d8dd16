//! RoBERTa and XLM-RoBERTa (transformers' `modeling_roberta.py`; XLM-R is the same network):
//! the family's config defaults and padding-offset positions, and its task heads, on the shared
//! encoder (`encoder.rs`).
//!
//! Module names follow the checkpoint keys: `embeddings.word_embeddings`, `encoder.layer.N.
//! attention.self.query`, ..., with the base model under `roberta.` in task checkpoints.

use candle_core::{Module, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

use super::encoder::{
    base_model_vb, load_masked_lm_decoder, BaseModel, Encoded, EncoderConfig, Family,
    ForQuestionAnswering, HeadOutput, OutputOptions,
};
use crate::error::Result;
use crate::linear::Linear;
use crate::weights::MappedSafetensors;

/// The RoBERTa family (XLM-RoBERTa included).
#[derive(Debug, Clone, PartialEq)]
pub struct Roberta;

impl Family for Roberta {
    const NAME: &'static str = "RoBERTa";
    const MODEL_TYPES: &'static [&'static str] = &["roberta", "xlm-roberta"];
    const BASE_MODEL_PREFIX: &'static str = "roberta";
    const DEFAULT_VOCAB_SIZE: usize = 50265;
    const DEFAULT_PAD_TOKEN_ID: u32 = 1;

    fn position_ids(ids: &[u32], pad_token_id: u32) -> Vec<u32> {
        position_ids(ids, pad_token_id)
    }

    /// Positions start after `pad_token_id` (514 positions → 512 tokens).
    fn reserved_positions(pad_token_id: u32) -> usize {
        pad_token_id as usize + 1
    }
}

/// transformers' `RobertaConfig` (and `XLMRobertaConfig`), with the same defaults.
pub type RobertaConfig = EncoderConfig<Roberta>;

/// transformers' `create_position_ids_from_input_ids` for one row: pad_token_id + 1 + running
/// count of non-padding tokens, and pad_token_id on padding. Integers, so exact in any dtype.
fn position_ids(ids: &[u32], pad_token_id: u32) -> Vec<u32> {
    ids.iter()
        .scan(0u32, |count, &id| {
            if id == pad_token_id {
                Some(pad_token_id)
            } else {
                *count += 1;
                Some(pad_token_id + *count)
            }
        })
        .collect()
}

/// `RobertaModel`: embeddings, encoder and, when the checkpoint has one, the pooler.
pub type RobertaModel = BaseModel<Roberta>;

/// `RobertaForSequenceClassification`: `RobertaClassificationHead` (dense → tanh → out_proj) on
/// the first token. With one label it is a regression head and returns the raw score.
pub struct RobertaForSequenceClassification {
    roberta: RobertaModel,
    dense: Linear,
    out_proj: Linear,
}

impl RobertaForSequenceClassification {
    /// `mapped`: as for `RobertaModel::load`.
    pub fn load(
        vb: VarBuilder,
        cfg: &RobertaConfig,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            roberta: RobertaModel::load_from_checkpoint(&vb, cfg, false, mapped)?,
            dense: Linear::load(h, h, vb.pp("classifier.dense"))?,
            out_proj: Linear::load(h, cfg.num_labels(), vb.pp("classifier.out_proj"))?,
        })
    }

    pub fn config(&self) -> &RobertaConfig {
        self.roberta.config()
    }

    /// Logits shaped (batch, num_labels).
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<HeadOutput> {
        let Encoded {
            batch,
            hidden,
            intermediates,
        } = self
            .roberta
            .encode_inputs(input_ids, attention_mask, token_type_ids, options)?;
        let pooled = self.dense.forward(&batch.first_tokens(&hidden)?)?.tanh()?;
        Ok(HeadOutput {
            logits: self.out_proj.forward(&pooled)?,
            intermediates,
        })
    }
}

/// `RobertaForMaskedLM`: `RobertaLMHead` (dense → gelu → layer_norm → decoder), the decoder
/// weight tied to the word embeddings when the checkpoint does not store it.
pub struct RobertaForMaskedLM {
    roberta: RobertaModel,
    dense: Linear,
    layer_norm: LayerNorm,
    decoder: Linear,
}

impl RobertaForMaskedLM {
    /// Loads every tensor: the decoder reads all rows of the (tied) word embeddings.
    pub fn load(vb: VarBuilder, cfg: &RobertaConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let base_vb = base_model_vb::<Roberta>(&vb);
        let head = vb.pp("lm_head");
        let (decoder, word_embeddings) = load_masked_lm_decoder(&base_vb, &head, cfg)?;
        Ok(Self {
            roberta: RobertaModel::load_base(base_vb, cfg, false, word_embeddings)?,
            dense: Linear::load(h, h, head.pp("dense"))?,
            layer_norm: layer_norm(h, cfg.layer_norm_eps, head.pp("layer_norm"))?,
            decoder,
        })
    }

    pub fn config(&self) -> &RobertaConfig {
        self.roberta.config()
    }

    /// Logits shaped (batch, seq, vocab_size); zero on padding.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<HeadOutput> {
        let Encoded {
            batch,
            hidden,
            intermediates,
        } = self
            .roberta
            .encode_inputs(input_ids, attention_mask, token_type_ids, options)?;
        let xs = self.dense.forward(&hidden)?.gelu_erf()?;
        let xs = self.layer_norm.forward(&xs)?;
        Ok(HeadOutput {
            logits: batch.unpack(&self.decoder.forward(&xs)?)?,
            intermediates,
        })
    }
}

/// `RobertaForTokenClassification`: one linear classifier over every token.
pub struct RobertaForTokenClassification {
    roberta: RobertaModel,
    classifier: Linear,
}

impl RobertaForTokenClassification {
    /// `mapped`: as for `RobertaModel::load`.
    pub fn load(
        vb: VarBuilder,
        cfg: &RobertaConfig,
        mapped: Option<&MappedSafetensors>,
    ) -> candle_core::Result<Self> {
        Ok(Self {
            roberta: RobertaModel::load_from_checkpoint(&vb, cfg, false, mapped)?,
            classifier: Linear::load(cfg.hidden_size, cfg.num_labels(), vb.pp("classifier"))?,
        })
    }

    pub fn config(&self) -> &RobertaConfig {
        self.roberta.config()
    }

    /// Logits shaped (batch, seq, num_labels); zero on padding.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        options: OutputOptions,
    ) -> Result<HeadOutput> {
        let Encoded {
            batch,
            hidden,
            intermediates,
        } = self
            .roberta
            .encode_inputs(input_ids, attention_mask, token_type_ids, options)?;
        Ok(HeadOutput {
            logits: batch.unpack(&self.classifier.forward(&hidden)?)?,
            intermediates,
        })
    }
}

/// `RobertaForQuestionAnswering`: start and end logits per token (`qa_outputs`).
pub type RobertaForQuestionAnswering = ForQuestionAnswering<Roberta>;

/// XLM-RoBERTa is RoBERTa with another vocabulary; transformers' classes are copies.
pub type XLMRobertaModel = RobertaModel;
pub type XLMRobertaForSequenceClassification = RobertaForSequenceClassification;
pub type XLMRobertaForMaskedLM = RobertaForMaskedLM;
pub type XLMRobertaForTokenClassification = RobertaForTokenClassification;
pub type XLMRobertaForQuestionAnswering = RobertaForQuestionAnswering;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::HiddenAct;

    #[test]
    fn position_ids_count_non_padding_tokens_after_pad_id() {
        assert_eq!(position_ids(&[0, 7, 8, 2, 1, 1], 1), vec![2, 3, 4, 5, 1, 1]);
        assert_eq!(position_ids(&[0, 1, 9, 2, 1, 1], 1), vec![2, 1, 3, 4, 1, 1]);
    }

    #[test]
    fn config_defaults_are_transformers_defaults() {
        let config: RobertaConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(
            (
                config.vocab_size,
                config.hidden_size,
                config.max_position_embeddings
            ),
            (50265, 768, 512)
        );
        assert_eq!(
            (
                config.layer_norm_eps,
                config.pad_token_id,
                config.type_vocab_size
            ),
            (1e-12, 1, 2)
        );
        assert_eq!(config.hidden_act, HiddenAct::Gelu);
        assert_eq!(config.num_labels(), 2);
        assert_eq!(config.max_sequence_length(), 510);
    }

    #[test]
    fn unsupported_options_are_rejected() {
        let relative: RobertaConfig =
            serde_json::from_str(r#"{"position_embedding_type": "relative_key"}"#).unwrap();
        assert!(relative.validate().is_err());
        let uneven: RobertaConfig =
            serde_json::from_str(r#"{"hidden_size": 10, "num_attention_heads": 3}"#).unwrap();
        assert!(uneven.validate().is_err());
        assert!(serde_json::from_str::<RobertaConfig>(r#"{"hidden_act": "gelu_10"}"#).is_err());
    }
}
