"""The ``zero-shot-classification`` pipeline: any NLI sequence classifier scores each candidate
label as a hypothesis about the text, as transformers' ``ZeroShotClassificationPipeline``."""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Sequence, Union

import numpy as np

from .base import Pipeline, TextInput, _softmax

DEFAULT_HYPOTHESIS_TEMPLATE = "This example is {}."


class ZeroShotClassificationPipeline(Pipeline):
    """``zero-shot-classification``: ``{"sequence", "labels", "scores"}`` per text, the
    ``candidate_labels`` sorted by score.

    Each (text, ``hypothesis_template.format(label)``) pair runs through the NLI model (the text
    truncated, never the hypothesis). The entailment logit is found from the first label of
    ``config.label2id`` that starts with "entail" (case-insensitive), as transformers does; a
    model without one uses its last logit, with a warning. ``multi_label=False``: a softmax of
    the entailment logits over the labels (scores sum to 1); ``multi_label=True`` (or one
    label): each label on its own, a softmax of its entailment against its contradiction logit
    (the first logit, or the last when entailment is the first).
    """

    task = "zero-shot-classification"

    def __call__(self, inputs: TextInput, *args: Any, **parameters: Any) -> Any:
        """Classifies a text (one result) or a list of texts (a list). The candidate labels may
        come second, as in transformers: ``classifier(text, ["a", "b"])``."""
        if len(args) > 1 or (args and "candidate_labels" in parameters):
            raise TypeError("zero-shot-classification takes the candidate labels once: classifier(text, candidate_labels)")
        if args:
            parameters["candidate_labels"] = args[0]
        if not isinstance(inputs, str) and not list(inputs):
            raise ValueError("zero-shot-classification needs at least one sequence")
        return super().__call__(inputs, **parameters)

    @property
    def entailment_id(self) -> int:
        """The index of the entailment logit, -1 when the model has no label like "entail*"."""
        for label, index in self.model.config.label2id.items():
            if label.lower().startswith("entail"):
                return int(index)
        return -1

    def _run(
        self,
        texts: List[str],
        candidate_labels: Union[None, str, Sequence[str]] = None,
        hypothesis_template: str = DEFAULT_HYPOTHESIS_TEMPLATE,
        multi_label: bool = False,
        truncation: bool = True,
    ) -> List[Dict[str, Any]]:
        labels = _parse_labels(candidate_labels)
        hypotheses = _hypotheses(labels, hypothesis_template)
        entailment_id = self.entailment_id
        if entailment_id == -1:
            warnings.warn(
                "the model's label2id has no label starting with 'entail'; using its last logit as entailment, "
                "as transformers does. Give the model descriptive labels (config.json id2label / label2id).",
                UserWarning,
                stacklevel=3,
            )
        premises = [text for text in texts for _ in labels]
        encodings = self._encode_pairs(premises, hypotheses * len(texts), truncation)
        logits = np.stack(self._forward(encodings, "logits")).astype(np.float64)
        logits = logits.reshape(len(texts), len(labels), -1)
        if multi_label or len(labels) == 1:
            contradiction_id = -1 if entailment_id == 0 else 0
            scores = _softmax(logits[..., [contradiction_id, entailment_id]])[..., 1]
        else:
            scores = _softmax(logits[..., entailment_id])
        results = []
        for text, text_scores in zip(texts, scores):
            # transformers' order: argsort reversed (so of equal scores, the later label first).
            ranked = list(reversed(text_scores.argsort()))
            results.append({"sequence": text, "labels": [labels[i] for i in ranked], "scores": [float(text_scores[i]) for i in ranked]})
        return results

    def _encode_pairs(self, premises: List[str], hypotheses: List[str], truncation: bool) -> List[Dict[str, list]]:
        """(premise, hypothesis) pairs, the premise truncated to fit the model when
        ``truncation``. A pair whose hypothesis alone is too long is left whole, as transformers
        does (then the model refuses it)."""
        limit = self.max_input_length
        if not truncation:
            return self._checked(self.tokenizer(premises, hypotheses), limit)
        try:
            encoded = self.tokenizer(premises, hypotheses, truncation="only_first", max_length=limit)
        except ValueError as error:
            if "too short" not in str(error):
                raise
            return [self._encode_one(premise, hypothesis, limit) for premise, hypothesis in zip(premises, hypotheses)]
        return _rows(encoded)

    def _encode_one(self, premise: str, hypothesis: str, limit: int) -> Dict[str, list]:
        try:
            encoded = self.tokenizer([premise], [hypothesis], truncation="only_first", max_length=limit)
        except ValueError as error:
            if "too short" not in str(error):
                raise
            return self._checked(self.tokenizer([premise], [hypothesis]), limit)[0]
        return _rows(encoded)[0]

    def _checked(self, encoded: Dict[str, list], limit: int) -> List[Dict[str, list]]:
        rows = _rows(encoded)
        for row in rows:
            if len(row["input_ids"]) > limit:
                raise ValueError(
                    f"a text and its hypothesis make {len(row['input_ids'])} tokens, more than the model's limit of "
                    f"{limit}; shorten the hypothesis_template or the labels, or pass truncation=True"
                )
        return rows


def _parse_labels(candidate_labels: Union[None, str, Sequence[str]]) -> List[str]:
    """The labels as a list: a string is split at commas, as transformers does."""
    if candidate_labels is None:
        raise ValueError("zero-shot-classification needs candidate_labels (a list of labels or 'a,b,c')")
    if isinstance(candidate_labels, str):
        labels = [label.strip() for label in candidate_labels.split(",") if label.strip()]
    else:
        labels = list(candidate_labels)
        if not all(isinstance(label, str) for label in labels):
            raise TypeError("candidate_labels must be a string or a list of strings")
    if not labels:
        raise ValueError("candidate_labels is empty: give at least one label")
    return labels


def _hypotheses(labels: List[str], template: str) -> List[str]:
    if not isinstance(template, str):
        raise TypeError(f"hypothesis_template must be a string, not {type(template).__name__}")
    try:
        hypotheses = [template.format(label) for label in labels]
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError(f"hypothesis_template {template!r} cannot be formatted with a label: {error!r}") from None
    if hypotheses[0] == template:
        raise ValueError(
            f"hypothesis_template {template!r} has no {{}} where the label goes (e.g. 'This example is {{}}.')"
        )
    return hypotheses


def _rows(encoded: Dict[str, list]) -> List[Dict[str, list]]:
    count = len(encoded["input_ids"])
    return [{name: values[i] for name, values in encoded.items()} for i in range(count)]
