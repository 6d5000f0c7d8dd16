"""The ``token-classification`` (``ner``) pipeline."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from .base import Pipeline, _softmax


class TokenClassificationPipeline(Pipeline):
    """``token-classification`` / ``ner``: the tagged tokens of each text.

    ``aggregation_strategy="none"``: one entry per token (``entity``, ``score``, ``index``,
    ``word``, ``start``, ``end``); ``"simple"``: adjacent tokens of one entity grouped
    (``entity_group``, mean ``score``, ``word``, ``start``, ``end``) by transformers' B-/I- rules.
    Entries labelled with one of ``ignore_labels`` are dropped.
    """

    task = "token-classification"

    def _run(
        self,
        texts: List[str],
        aggregation_strategy: str = "none",
        ignore_labels: Sequence[str] = ("O",),
        truncation: bool = True,
    ) -> List[Any]:
        if aggregation_strategy not in ("none", "simple"):
            raise ValueError(f"aggregation_strategy must be 'none' or 'simple', not {aggregation_strategy!r}")
        encodings = self._encode(texts, truncation, return_offsets_mapping=True, return_special_tokens_mask=True)
        results = []
        for text, encoding, logits in zip(texts, encodings, self._forward(encodings, "logits")):
            entities = self._token_entities(text, encoding, _softmax(logits.astype(np.float64)))
            if aggregation_strategy == "simple":
                entities = self._group(entities)
            results.append([e for e in entities if e.get("entity", e.get("entity_group")) not in ignore_labels])
        return results

    def _token_entities(self, text: str, encoding: Dict[str, list], scores: np.ndarray) -> List[Dict[str, Any]]:
        id2label = self.model.config.id2label
        entities = []
        for index, token_id in enumerate(encoding["input_ids"]):
            if encoding["special_tokens_mask"][index]:
                continue
            start, end = encoding["offset_mapping"][index]
            word = self.tokenizer.convert_ids_to_tokens(token_id)
            if token_id == self.tokenizer.unk_token_id:
                word = text[start:end]
            best = int(np.argmax(scores[index]))
            entities.append(
                {"entity": id2label[best], "score": float(scores[index, best]), "index": index, "word": word, "start": start, "end": end}
            )
        return entities

    def _group(self, entities: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Adjacent tokens with the same tag, where each after the first is not a ``B-``."""
        groups: List[List[Dict[str, Any]]] = []
        for entity in entities:
            prefix, tag = _split_tag(entity["entity"])
            if groups and prefix != "B" and tag == _split_tag(groups[-1][-1]["entity"])[1]:
                groups[-1].append(entity)
            else:
                groups.append([entity])
        return [self._merge(group) for group in groups]

    def _merge(self, group: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {
            "entity_group": group[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean([e["score"] for e in group])),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in group]),
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }


def _split_tag(label: str) -> tuple:
    """("B" or "I", tag) as transformers reads a label; labels without a prefix count as "I"."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label
