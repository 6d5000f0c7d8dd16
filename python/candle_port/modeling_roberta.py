"""RoBERTa and XLM-RoBERTa classes, named and called as in transformers."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from . import _core
from ._inputs import as_id_matrix, optional_id_matrix
from .config import Config
from .hub import resolve_model_dir
from .outputs import ModelOutput

PathLike = Union[str, "os.PathLike[str]"]


class RobertaPreTrainedModel:
    """Shared loading and calling for every RoBERTa-family head.

    Subclasses set ``_head`` (which head of the checkpoint to build).
    """

    _head: str = "base"

    def __init__(self, core: "_core.EncoderModel", device: str, dtype: str) -> None:
        self._core = core
        self.config = Config.from_json(core.config_json)
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: PathLike,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        revision: Optional[str] = None,
        cache_dir: Optional[PathLike] = None,
        token: Optional[str] = None,
        local_files_only: bool = False,
    ):
        """Loads a checkpoint directory holding ``config.json`` and ``model.safetensors``,
        ``model.safetensors.index.json`` (shards) or ``pytorch_model.bin``.

        Args:
            pretrained_model_name_or_path: a local model directory, or a hub repo id
                (``"name"`` or ``"org/name"``), downloaded as by ``candle_port.hub.snapshot_download``.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"metal"``.
            dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
            revision, cache_dir, token, local_files_only: hub options, see ``candle_port.hub``.

        Raises:
            FileNotFoundError: the directory, config.json or the weights are missing (locally or
                on the hub).
            PermissionError, ConnectionError: the hub refused access or could not be reached.
            KeyError: a tensor the model needs is not in the checkpoint.
            ValueError: an unsupported config or a corrupt / misshaped checkpoint.
            RuntimeError: the device is not available in this build or on this machine.
        """
        path = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        core = _core.EncoderModel.from_pretrained(path, cls._head, device, dtype)
        return cls(core, device, dtype)

    def __call__(self, input_ids: Any, attention_mask: Optional[Any] = None, token_type_ids: Optional[Any] = None) -> ModelOutput:
        """Runs the model.

        Args:
            input_ids: ints shaped (batch, seq) (a 1-D sequence is a batch of one); numpy array
                or nested lists.
            attention_mask: 1 for tokens, 0 for padding; same shape. Defaults to all ones.
            token_type_ids: segment ids; same shape. Defaults to zeros.

        Returns:
            A ``ModelOutput`` of float32 numpy arrays: ``last_hidden_state`` and
            ``pooler_output`` for the base model, ``logits`` for the heads.
        """
        outputs = self._core.forward(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            optional_id_matrix("token_type_ids", token_type_ids),
        )
        return ModelOutput(outputs)

    forward = __call__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"


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


class XLMRobertaModel(RobertaModel):
    """XLM-RoBERTa encoder (same network as RoBERTa)."""


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    """XLM-RoBERTa sequence classification."""


class XLMRobertaForMaskedLM(RobertaForMaskedLM):
    """XLM-RoBERTa masked language model."""


class XLMRobertaForTokenClassification(RobertaForTokenClassification):
    """XLM-RoBERTa token classification."""
