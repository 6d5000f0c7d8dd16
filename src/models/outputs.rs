//! What every model can return besides its own output: transformers' `output_hidden_states`
//! and `output_attentions`.

use candle_core::Tensor;

/// Which intermediate outputs a forward pass returns besides its own. Asking for neither costs
/// nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputOptions {
    pub hidden_states: bool,
    pub attentions: bool,
}

/// The intermediate outputs asked for, in the input's (batch, seq) layout: `hidden_states`, the
/// embeddings' output then each layer's, (batch, seq, hidden) each (`layers + 1` tensors);
/// `attentions`, each layer's attention probabilities, (batch, heads, seq, keys). Each model
/// says what they hold at padding positions.
#[derive(Default)]
pub struct Intermediates {
    pub hidden_states: Option<Vec<Tensor>>,
    pub attentions: Option<Vec<Tensor>>,
}

/// Outputs of a head with one output (`SequenceClassifierOutput`, `MaskedLMOutput`,
/// `CausalLMOutput`, ...).
pub struct HeadOutput {
    pub logits: Tensor,
    pub intermediates: Intermediates,
}
