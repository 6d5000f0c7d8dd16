"""What every pipeline shares: input checks, tokenization, length-sorted batching, padding,
progress, and the score functions."""

from __future__ import annotations

import inspect
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ..tokenization import Tokenizer

TextInput = Union[str, Sequence[str]]

# Marks a parameter the caller did not give (``top_k=None`` means "all labels").
_UNSET: Any = object()


class _Progress:
    """A one-line progress bar on stderr.

    ``enabled=None`` shows it only once the job has run ``delay`` seconds; ``True`` from the
    start; ``False`` never.
    """

    def __init__(self, total: int, description: str, enabled: Optional[bool], delay: float = 2.0) -> None:
        self.total = total
        self.description = description
        self.enabled = enabled
        self.delay = 0.0 if enabled else delay
        self.done = 0
        self.started = time.monotonic()
        self.shown = False

    def update(self, count: int) -> None:
        self.done += count
        elapsed = time.monotonic() - self.started
        if self.enabled is False or elapsed < self.delay:
            return
        filled = int(30 * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (30 - filled)
        sys.stderr.write(f"\r{self.description} [{bar}] {self.done}/{self.total} {elapsed:.1f}s")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


class Pipeline:
    """A model and its tokenizer, called on a text or a list of texts.

    Subclasses implement ``_run(texts, **parameters)`` returning one result per text, in order,
    and ``_shape`` when a single text's result is not simply the first of the list.
    """

    task = ""

    def __init__(self, model: Any, tokenizer: Tokenizer, batch_size: int = 8, progress: Optional[bool] = None, **defaults: Any) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self._check_parameters(defaults)
        self.defaults = defaults

    def __call__(self, inputs: TextInput, **parameters: Any) -> Any:
        """Runs the task on a text (one result) or a list of texts (a list of results)."""
        single = isinstance(inputs, str)
        texts = [inputs] if single else list(inputs)
        if not all(isinstance(text, str) for text in texts):
            raise TypeError(f"{self.task} takes a string or a list of strings")
        self._check_parameters(parameters)
        parameters = {**self.defaults, **parameters}
        results = self._run(texts, **parameters) if texts else []
        return self._shape(results, single, parameters)

    def _check_parameters(self, parameters: Dict[str, Any]) -> None:
        accepted = inspect.signature(self._run).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            return  # the rest goes on to a callee that checks it (e.g. generation options)
        unknown = sorted(set(parameters) - set(accepted))
        if unknown:
            names = ", ".join(name for name in accepted if name != "texts")
            raise TypeError(f"{self.task} got unexpected parameter(s) {', '.join(unknown)}; it takes: {names}")

    def _run(self, texts: List[str], **parameters: Any) -> List[Any]:
        raise NotImplementedError

    def _shape(self, results: List[Any], single: bool, parameters: Dict[str, Any]) -> Any:
        return results[0] if single else results

    # Shared steps -------------------------------------------------------------------------

    @property
    def max_input_length(self) -> int:
        """The most tokens an input may have: the tokenizer's ``model_max_length`` or the
        model's position limit, whichever is smaller."""
        config = self.model.config
        if config.model_type == "gpt2":
            positions = config.n_positions
        else:  # RoBERTa positions start after the padding index
            positions = config.max_position_embeddings - config.pad_token_id - 1
        return min(self.tokenizer.model_max_length, positions)

    def _encode(self, texts: List[str], truncation: bool, **options: Any) -> List[Dict[str, list]]:
        """Tokenizes each text (lists, no padding), truncated to ``max_input_length`` when
        ``truncation``; an over-long text without truncation is a ValueError."""
        limit = self.max_input_length
        if truncation:
            encoded = self.tokenizer(texts, truncation=True, max_length=limit, **options)
        else:
            encoded = self.tokenizer(texts, **options)
            for index, ids in enumerate(encoded["input_ids"]):
                if len(ids) > limit:
                    raise ValueError(
                        f"input {index} has {len(ids)} tokens, more than the model's limit of {limit}; "
                        "pass truncation=True to cut it"
                    )
        return [{name: values[i] for name, values in encoded.items()} for i in range(len(texts))]

    def _batches(self, encodings: List[Dict[str, list]]) -> Iterator[List[int]]:
        """Indices of the encodings, sorted by length, in chunks of ``batch_size``; advances the
        progress bar as chunks are consumed."""
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]["input_ids"]))
        progress = _Progress(len(order), self.task, self.progress)
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                yield chunk
                progress.update(len(chunk))
        finally:
            progress.close()

    def _pad(self, rows: List[List[int]], side: str = "right") -> Dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` (batch, longest) arrays, padded with the pad
        token (the eos token, then 0, when the tokenizer has none)."""
        pad_id = _first_not_none(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        width = max(len(row) for row in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
            ids[i, span] = row
            mask[i, span] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def _forward(self, encodings: List[Dict[str, list]], output: str) -> List[np.ndarray]:
        """The model's ``output`` for each encoding, in order, trimmed to its real tokens when
        the output is per token."""
        results: List[Optional[np.ndarray]] = [None] * len(encodings)
        for chunk in self._batches(encodings):
            rows = [encodings[i]["input_ids"] for i in chunk]
            values = getattr(self.model(**self._pad(rows)), output)
            per_token = values.ndim == 3
            for row, i in enumerate(chunk):
                results[i] = values[row, : len(rows[row])] if per_token else values[row]
        return results  # type: ignore[return-value]


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _first_not_none(*values: Optional[int]) -> int:
    return next(value for value in values if value is not None)
