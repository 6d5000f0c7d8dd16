"""The ``token-classification`` (``ner``) pipeline."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .base import Pipeline, _softmax


class TokenClassificationPipeline(Pipeline):
    """``token-classification`` / ``ner``: the tagged tokens of each text.

    ``aggregation_strategy="none"``: one entry per token (``entity``, ``score``, ``index``,
    ``word``, ``start``, ``end``); ``"simple"``: adjacent tokens of one entity grouped
    (``entity_group``, mean ``score``, ``word``, ``start``, ``end``) by transformers' B-/I- rules.
    Entries labelled with one of ``ignore_labels`` are dropped.

    ``stride=N``: a text longer than the model takes is cut into windows of the model's length
    that repeat the last ``N`` tokens of the window before; each window is tagged on its own
    and, as transformers does, of entities that overlap the one that starts first is kept
    unless a later one is longer (or as long with a higher score). ``index`` is then the
    token's place in its window. It needs an ``aggregation_strategy`` other than "none" when
    one is given.
    """

    task = "token-classification"

    def _run(
        self,
        texts: List[str],
        aggregation_strategy: Optional[str] = None,
        ignore_labels: Sequence[str] = ("O",),
        truncation: bool = True,
        stride: Optional[int] = None,
    ) -> List[Any]:
        if aggregation_strategy not in (None, "none", "simple"):
            raise ValueError(f"aggregation_strategy must be 'none' or 'simple', not {aggregation_strategy!r}")
        if stride is None:
            encodings = self._encode(texts, truncation, return_offsets_mapping=True, return_special_tokens_mask=True)
            owners = list(range(len(texts)))
        else:
            encodings, owners = self._windows(texts, stride, aggregation_strategy, truncation)
        results: List[List[Dict[str, Any]]] = [[] for _ in texts]
        windows = [0] * len(texts)
        for owner, encoding, logits in zip(owners, encodings, self._forward(encodings, "logits")):
            entities = self._token_entities(texts[owner], encoding, _softmax(logits.astype(np.float64)))
            if aggregation_strategy == "simple":
                entities = self._group(entities)
            results[owner].extend(e for e in entities if e.get("entity", e.get("entity_group")) not in ignore_labels)
            windows[owner] += 1
        return [_merge_overlapping(entities) if count > 1 else entities for entities, count in zip(results, windows)]

    def _windows(
        self, texts: List[str], stride: Any, aggregation_strategy: Optional[str], truncation: bool
    ) -> Tuple[List[Dict[str, list]], List[int]]:
        """Each text's windows of the model's length, overlapping by ``stride`` tokens, and the
        text each window comes from."""
        limit = self.max_input_length
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 0:
            raise ValueError(f"stride must be a non-negative int, got {stride!r}")
        if stride >= limit:
            raise ValueError(f"stride={stride} must be less than the model's limit of {limit} tokens (less its special tokens)")
        if aggregation_strategy == "none":
            raise ValueError(
                "stride cuts texts into windows whose entities are merged: use aggregation_strategy='simple', not 'none'"
            )
        if not truncation:
            raise ValueError("stride cuts long texts into windows: it cannot be used with truncation=False")
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=limit,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        owners = list(encoded.pop("overflow_to_sample_mapping"))
        rows = [{name: values[i] for name, values in encoded.items()} for i in range(len(owners))]
        return rows, owners

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


def _merge_overlapping(entities: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """transformers' ``aggregate_overlapping_entities``: by start; of entities that overlap,
    the first is kept unless a later one is longer, or as long with a higher score."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda entity: entity["start"])
    merged = []
    previous = entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > previous_length or length == previous_length and entity["score"] > previous["score"]:
                previous = entity
        else:
            merged.append(previous)
            previous = entity
    merged.append(previous)
    return merged


def _split_tag(label: str) -> tuple:
    """("B" or "I", tag) as transformers reads a label; labels without a prefix count as "I"."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label
