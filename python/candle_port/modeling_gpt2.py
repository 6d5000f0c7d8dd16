"""GPT-2 classes, named and called as in transformers."""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional, Union

import numpy as np

from . import _core
from ._inputs import as_id_matrix, optional_id_matrix
from .generation import (
    GenerateDecoderOnlyOutput,
    GenerationConfig,
    generate_output,
    model_generation_config,
    resolve_generation_config,
)
from .modeling_utils import PreTrainedModel
from .outputs import ModelOutput


class GPT2PreTrainedModel(PreTrainedModel):
    """Shared loading and calling for the GPT-2 classes.

    Subclasses set ``_head`` (``"base"`` or ``"causal-lm"``).
    """

    _head: str = "base"
    _core_class = _core.GPT2

    def __call__(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
    ) -> ModelOutput:
        """Runs the model on a whole sequence, with positions ``0..seq`` like transformers.

        Args:
            input_ids: ints shaped (batch, seq) (a 1-D sequence is a batch of one).
            attention_mask: 1 for tokens, 0 for padding; same shape. Defaults to all ones.
            output_hidden_states: also return ``hidden_states``: the embeddings, each block's
                output but the last, and ``last_hidden_state`` (after ``ln_f``), as
                transformers does: a tuple of ``n_layer + 1`` (batch, seq, n_embd) arrays.
            output_attentions: also return ``attentions``: each block's attention
                probabilities, a tuple of (batch, heads, seq, seq) arrays.

        Returns:
            A ``ModelOutput`` of float32 numpy arrays: ``last_hidden_state`` (batch, seq,
            n_embd) for ``GPT2Model``, ``logits`` (batch, seq, vocab_size) for
            ``GPT2LMHeadModel``; then ``hidden_states`` and ``attentions`` when asked for.
            Padding positions are computed as transformers computes them (their values carry
            no meaning).
        """
        outputs = self._core.forward(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            output_hidden_states=bool(output_hidden_states),
            output_attentions=bool(output_attentions),
        )
        return ModelOutput(outputs)

    forward = __call__



class GPT2Model(GPT2PreTrainedModel):
    """The bare GPT-2 transformer: ``last_hidden_state``."""

    _head = "base"


class GPT2LMHeadModel(GPT2PreTrainedModel):
    """GPT-2 with its language model head: ``logits``, ``generate`` and ``stream``."""

    _head = "causal-lm"

    def __init__(self, core: Any, device: str, dtype: str, name_or_path: str) -> None:
        super().__init__(core, device, dtype, name_or_path)
        self.generation_config = model_generation_config(name_or_path, self.config)

    def generate(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        generation_config: Optional[GenerationConfig] = None,
        tokenizer: Optional[Any] = None,
        **kwargs: Any,
    ) -> Union[np.ndarray, GenerateDecoderOnlyOutput]:
        """Generates tokens like transformers' ``generate``: greedy decoding, sampling
        (``do_sample=True``) or beam search (``num_beams > 1``), with a KV cache.

        Batches are padded on the left, with ``attention_mask`` marking the padding: every row
        then gives the tokens it would give alone. Logits go through transformers' processors in
        its order: repetition penalty, no-repeat n-grams, bad words, minimum length, then (when
        sampling) temperature, top-k, top-p, min-p and typical-p.

        Args:
            input_ids: prompt ids shaped (batch, seq) (a 1-D prompt is a batch of one).
            attention_mask: 1 for tokens, 0 for padding. Defaults to all ones.
            generation_config: the options; defaults to ``self.generation_config`` (the
                model's ``generation_config.json``, else its config's special tokens).
            tokenizer: the model's ``Tokenizer``, needed for ``stop_strings``.
            **kwargs: options overriding ``generation_config``'s, named as in
                ``GenerationConfig``: ``max_new_tokens`` (default: 20), ``max_length``,
                ``min_new_tokens``, ``min_length``, ``do_sample``, ``temperature``, ``top_k``
                (50 when sampling; 0 = off), ``top_p``, ``min_p``, ``typical_p``,
                ``repetition_penalty``, ``no_repeat_ngram_size``, ``bad_words_ids``,
                ``num_beams``, ``length_penalty``, ``early_stopping``,
                ``num_return_sequences``, ``stop_strings``, ``output_scores``,
                ``return_dict_in_generate``, ``seed`` (reproducible sampling),
                ``eos_token_id`` (stops a row), ``pad_token_id`` (fills rows that stopped
                early; defaults to the config's, then to the eos token).

        Returns:
            int64 array (batch × num_return_sequences, prompt + new tokens); with
            ``return_dict_in_generate=True``, a ``GenerateDecoderOnlyOutput`` (beam search:
            ``GenerateBeamDecoderOnlyOutput``) with ``sequences`` and, with
            ``output_scores=True``, the per-step ``scores``. Generation stops early once every
            row has finished (eos or a stop string).

        Raises:
            ValueError: an empty prompt, ids outside the vocabulary, a prompt plus new tokens
                longer than ``n_positions``, invalid values (``num_beams < 1``...),
                ``stop_strings`` without a tokenizer, or an option candle_port does not
                implement.
        """
        config = resolve_generation_config(self.generation_config, generation_config, kwargs)
        outputs = self._core.generate(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            config,
            _core_tokenizer(tokenizer),
        )
        options = json.loads(config)
        if not options.get("return_dict_in_generate"):
            return outputs["sequences"]
        return generate_output(outputs, beam_search=options.get("num_beams", 1) > 1)

    def stream(
        self,
        input_ids: Any,
        attention_mask: Optional[Any] = None,
        generation_config: Optional[GenerationConfig] = None,
        tokenizer: Optional[Any] = None,
        **kwargs: Any,
    ) -> Iterator[np.ndarray]:
        """Like ``generate`` (greedy or sampling; not beam search), but yields the new tokens
        step by step: an int64 array with one id per row (the pad token for rows that have
        finished). The GIL is released while each step runs. Arguments are checked when this
        is called, not on the first ``next``."""
        config = resolve_generation_config(self.generation_config, generation_config, kwargs)
        if json.loads(config).get("return_dict_in_generate"):
            raise ValueError("stream() yields tokens; use generate() for return_dict_in_generate / output_scores")
        return self._core.stream(
            as_id_matrix("input_ids", input_ids),
            optional_id_matrix("attention_mask", attention_mask),
            config,
            _core_tokenizer(tokenizer),
        )


def _core_tokenizer(tokenizer: Optional[Any]) -> Optional["_core.Tokenizer"]:
    """The Rust tokenizer behind a ``candle_port.Tokenizer``."""
    if tokenizer is None:
        return None
    core = getattr(tokenizer, "_core", None)
    if not isinstance(core, _core.Tokenizer):
        raise TypeError(f"tokenizer must be a candle_port Tokenizer, not {type(tokenizer).__name__}")
    return core
