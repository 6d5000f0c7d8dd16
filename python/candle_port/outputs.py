"""Model outputs with transformers' attribute names (``logits``, ``last_hidden_state``, ...)."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping

import numpy as np


class ModelOutput(Mapping[str, np.ndarray]):
    """Named numpy outputs, readable as attributes (``out.logits``) or keys (``out["logits"]``).

    Like transformers' ``ModelOutput``, outputs a model did not produce (e.g. ``pooler_output``
    of a checkpoint without a pooler) read as ``None`` and are absent from the keys.
    """

    def __init__(self, outputs: Dict[str, np.ndarray]) -> None:
        self._outputs = dict(outputs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._outputs.get(name)

    def __getitem__(self, key: str) -> np.ndarray:
        return self._outputs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def to_tuple(self) -> tuple:
        return tuple(self._outputs.values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_describe(v)}" for k, v in self._outputs.items())
        return f"{type(self).__name__}({fields})"


def _describe(value: Any) -> str:
    if isinstance(value, tuple):  # hidden_states, attentions
        return f"tuple({len(value)} x {_describe(value[0])})" if value else "()"
    return f"array(shape={value.shape}, dtype={value.dtype})"
