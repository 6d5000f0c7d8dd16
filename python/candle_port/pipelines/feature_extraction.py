"""The ``feature-extraction`` (``embeddings``) pipeline."""

from __future__ import annotations

from typing import List, Optional

import numpy as np

from .base import Pipeline


class FeatureExtractionPipeline(Pipeline):
    """``feature-extraction``: the hidden states of every token (special tokens included), a
    (tokens, hidden) float32 array per text; with ``pooling="cls"`` or ``"mean"`` (over the
    tokens), one vector per text, L2-normalised when ``normalize``. ``embeddings`` is this task
    with mean pooling and normalisation by default."""

    task = "feature-extraction"

    def _run(self, texts: List[str], pooling: Optional[str] = None, normalize: bool = False, truncation: bool = True) -> List[np.ndarray]:
        if pooling not in (None, "cls", "mean"):
            raise ValueError(f"pooling must be None, 'cls' or 'mean', not {pooling!r}")
        if normalize and pooling is None:
            raise ValueError("normalize=True needs a pooling ('cls' or 'mean')")
        results = []
        for states in self._forward(self._encode(texts, truncation), "last_hidden_state"):
            if pooling is None:
                results.append(states)
                continue
            vector = states[0] if pooling == "cls" else states.mean(axis=0, dtype=np.float64).astype(np.float32)
            results.append(vector / max(float(np.linalg.norm(vector)), 1e-12) if normalize else vector)
        return results
