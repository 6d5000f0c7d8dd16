"""GPT-2 classes, named and called as in transformers."""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from . import _core
from ._inputs import as_id_matrix, optional_id_matrix
from .modeling_utils import PreTrainedModel
from .outputs import ModelOutput


class GPT2PreTrainedModel(PreTrainedModel):
    """Shared loading and calling for the GPT-2 classes.

    Subclasses set ``_head`` (``"base"`` or ``"causal-lm"``).
    """

    _head: str = "base"
    _core_class = _core.GPT2

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
