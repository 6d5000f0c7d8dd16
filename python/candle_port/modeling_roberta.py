"""RoBERTa and XLM-RoBERTa classes, named and called as in transformers."""

from __future__ import annotations

from typing import Any, Optional

from . import _core
from ._inputs import as_id_matrix, optional_id_matrix
from .modeling_utils import PreTrainedModel
from .outputs import ModelOutput


class RobertaPreTrainedModel(PreTrainedModel):
    """Shared loading and calling for every RoBERTa-family head.

    Subclasses set ``_head`` (which head of the checkpoint to build).
    """

    _head: str = "base"
    _core_class = _core.EncoderModel

    def __call__(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        token_type_ids: Optional[Any] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
    ) -> ModelOutput:
        """Runs the model.

        Args:
            input_ids: ints shaped (batch, seq) (a 1-D sequence is a batch of one); numpy array
                or nested lists.
            attention_mask: 1 for tokens, 0 for padding; same shape. Defaults to all ones.
            token_type_ids: segment ids; same shape. Defaults to zeros.
            output_hidden_states: also return ``hidden_states``: the embeddings' output and
                each layer's, a tuple of ``num_hidden_layers + 1`` (batch, seq, hidden) arrays.
            output_attentions: also return ``attentions``: each layer's attention
                probabilities, a tuple of (batch, heads, seq, seq) arrays.

        Returns:
            A ``ModelOutput`` of float32 numpy arrays: ``last_hidden_state`` and
            ``pooler_output`` for the base model, ``logits`` for the heads, ``start_logits``
            and ``end_logits`` for question answering; then ``hidden_states`` and
            ``attentions`` when asked for. Per-token values are 0 at padding positions (queries
            and keys of ``attentions`` alike).
        """
        outputs = self._core.forward(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            optional_id_matrix("token_type_ids", token_type_ids),
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
        )
        return ModelOutput(outputs)

    forward = __call__



class RobertaModel(RobertaPreTrainedModel):
    """The bare encoder: ``last_hidden_state`` and, when the checkpoint has a pooler,
    ``pooler_output``."""

    _head = "base"


class RobertaForSequenceClassification(RobertaPreTrainedModel):
    """Classification (or, with ``num_labels == 1``, regression) on the ``<s>`` token:
    ``logits`` shaped (batch, num_labels); label names in ``config.id2label``."""

    _head = "sequence-classification"


class RobertaForMaskedLM(RobertaPreTrainedModel):
    """Masked language model: ``logits`` shaped (batch, seq, vocab_size)."""

    _head = "masked-lm"


class RobertaForTokenClassification(RobertaPreTrainedModel):
    """Per-token classification: ``logits`` shaped (batch, seq, num_labels)."""

    _head = "token-classification"


class RobertaForQuestionAnswering(RobertaPreTrainedModel):
    """Extractive question answering (``qa_outputs``): ``start_logits`` and ``end_logits``,
    each shaped (batch, seq)."""

    _head = "question-answering"


class XLMRobertaModel(RobertaModel):
    """XLM-RoBERTa encoder (same network as RoBERTa)."""


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    """XLM-RoBERTa sequence classification."""


class XLMRobertaForMaskedLM(RobertaForMaskedLM):
    """XLM-RoBERTa masked language model."""


class XLMRobertaForTokenClassification(RobertaForTokenClassification):
    """XLM-RoBERTa token classification."""


class XLMRobertaForQuestionAnswering(RobertaForQuestionAnswering):
    """XLM-RoBERTa question answering."""
