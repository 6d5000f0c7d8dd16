"""A read-only view of a model's parsed ``config.json``."""

from __future__ import annotations

import json
from typing import Any, Dict


class Config:
    """The model configuration as candle_port parsed it, with transformers' attribute names.

    ``id2label`` has int keys and ``label2id`` str keys, as in transformers.
    """

    def __init__(self, values: Dict[str, Any]) -> None:
        values = dict(values)
        id2label = values.get("id2label")
        if id2label is None:
            num_labels = values.get("num_labels") or 2
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        values["id2label"] = {int(k): v for k, v in id2label.items()}
        values["label2id"] = {v: k for k, v in values["id2label"].items()}
        values["num_labels"] = len(values["id2label"])
        self.__dict__.update(values)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls(json.loads(text))

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"Config({json.dumps(self.to_dict(), default=str, indent=2)})"
