"""The ``text-classification`` (``sentiment-analysis``) pipeline."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .base import _UNSET, Pipeline, _sigmoid, _softmax


class TextClassificationPipeline(Pipeline):
    """``text-classification`` / ``sentiment-analysis``: ``{"label", "score"}`` per text."""

    task = "text-classification"

    def _run(self, texts: List[str], top_k: Any = _UNSET, function_to_apply: Optional[str] = None, truncation: bool = True) -> List[Any]:
        function = self._score_function(function_to_apply)
        id2label = self.model.config.id2label
        results = []
        for logits in self._forward(self._encode(texts, truncation), "logits"):
            scores = function(logits.astype(np.float64))
            ranked = [{"label": id2label[i], "score": float(scores[i])} for i in np.argsort(-scores, kind="stable")]
            if top_k is _UNSET:
                results.append(ranked[0])
            else:
                results.append(ranked if top_k is None else ranked[:top_k])
        return results

    def _shape(self, results: List[Any], single: bool, parameters: Dict[str, Any]) -> Any:
        if single and parameters.get("top_k", _UNSET) is _UNSET:
            return results  # transformers' legacy format: [{"label", "score"}]
        return results[0] if single else results

    def _score_function(self, name: Optional[str]) -> Callable[[np.ndarray], np.ndarray]:
        """The function that turns logits into scores, chosen as transformers does."""
        config = self.model.config
        if name is None:
            problem_type = getattr(config, "problem_type", None)
            if problem_type == "regression":
                name = "none"
            elif problem_type == "multi_label_classification" or config.num_labels == 1:
                name = "sigmoid"
            else:
                name = "softmax"
        functions = {"softmax": _softmax, "sigmoid": _sigmoid, "none": lambda x: x}
        if name.lower() not in functions:
            raise ValueError(f"function_to_apply must be 'softmax', 'sigmoid' or 'none', not {name!r}")
        return functions[name.lower()]
