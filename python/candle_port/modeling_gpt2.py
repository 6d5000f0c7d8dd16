"""GPT-2 classes, named and called as in transformers."""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Union

import numpy as np

from . import _core
from ._inputs import as_id_matrix, optional_id_matrix
from .config import Config
from .hub import resolve_model_dir
from .outputs import ModelOutput

PathLike = Union[str, "os.PathLike[str]"]


class GPT2PreTrainedModel:
    """Shared loading and calling for the GPT-2 classes.

    Subclasses set ``_head`` (``"base"`` or ``"causal-lm"``).
    """

    _head: str = "base"

    def __init__(self, core: "_core.GPT2", device: str, dtype: str) -> None:
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
        """Loads a checkpoint holding ``config.json`` and ``model.safetensors``,
        ``model.safetensors.index.json`` (shards) or ``pytorch_model.bin``, in the layout of
        ``save_pretrained`` (``transformer.`` prefix) or of the hub's original GPT-2 files.

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
        core = _core.GPT2.from_pretrained(path, cls._head, device, dtype)
        return cls(core, device, dtype)

    def __call__(self, input_ids: Any, attention_mask: Optional[Any] = None) -> ModelOutput:
        """Runs the model on a whole sequence, with positions ``0..seq`` like transformers.

        Args:
            input_ids: ints shaped (batch, seq) (a 1-D sequence is a batch of one).
            attention_mask: 1 for tokens, 0 for padding; same shape. Defaults to all ones.

        Returns:
            A ``ModelOutput`` of float32 numpy arrays: ``last_hidden_state`` (batch, seq,
            n_embd) for ``GPT2Model``, ``logits`` (batch, seq, vocab_size) for
            ``GPT2LMHeadModel``.
        """
        outputs = self._core.forward(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
        )
        return ModelOutput(outputs)

    forward = __call__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"


class GPT2Model(GPT2PreTrainedModel):
    """The bare GPT-2 transformer: ``last_hidden_state``."""

    _head = "base"


class GPT2LMHeadModel(GPT2PreTrainedModel):
    """GPT-2 with its language model head: ``logits``, ``generate`` and ``stream``."""

    _head = "causal-lm"

    def generate(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        *,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        eos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
    ) -> np.ndarray:
        """Generates tokens like transformers' ``generate`` (greedy, or sampling with
        ``do_sample=True``), with a KV cache.

        Batches are padded on the left, with ``attention_mask`` marking the padding: every row
        then gives the tokens it would give alone. Logits go through the repetition penalty,
        then (when sampling) temperature, top-k and top-p, in transformers' order.

        Args:
            input_ids: prompt ids shaped (batch, seq) (a 1-D prompt is a batch of one).
            attention_mask: 1 for tokens, 0 for padding. Defaults to all ones.
            max_new_tokens: how many tokens to add at most.
            do_sample: sample instead of taking the most likely token.
            temperature, top_k, top_p: sampling filters (``top_k=1`` is greedy).
            repetition_penalty: transformers' CTRL-style penalty; 1.0 is none.
            seed: makes sampling reproducible.
            eos_token_id: stops a row; defaults to ``config.eos_token_id``.
            pad_token_id: fills rows that stopped early; defaults to ``config.pad_token_id``,
                then to the eos token.

        Returns:
            int64 array (batch, prompt + new tokens). Generation stops early once every row has
            produced eos.

        Raises:
            ValueError: an empty prompt, ids outside the vocabulary, a prompt plus
                ``max_new_tokens`` longer than ``n_positions``, or invalid sampling arguments.
        """
        return self._start(input_ids, attention_mask, locals()).finish()

    def stream(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        *,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        eos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
    ) -> Iterator[np.ndarray]:
        """Like ``generate``, but yields the new tokens step by step: an int64 array with one
        id per row (the pad token for rows that have finished). The GIL is released while each
        step runs. Arguments are checked when this is called, not on the first ``next``."""
        return self._start(input_ids, attention_mask, locals())

    def _start(self, input_ids: Any, attention_mask: Optional[Any], arguments: dict) -> "_core.GenerationStream":
        options = {k: v for k, v in arguments.items() if k not in ("self", "input_ids", "attention_mask")}
        return self._core.stream(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            **options,
        )
