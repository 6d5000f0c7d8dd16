"""The ``fill-mask`` pipeline."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .base import Pipeline, _softmax


class FillMaskPipeline(Pipeline):
    """``fill-mask``: the ``top_k`` tokens for the mask, each with ``score``, ``token``,
    ``token_str`` and ``sequence`` (the text with the mask filled)."""

    task = "fill-mask"

    def _run(self, texts: List[str], top_k: int = 5, truncation: bool = True) -> List[Any]:
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise ValueError("the tokenizer has no mask token")
        encodings = self._encode(texts, truncation)
        for index, encoding in enumerate(encodings):
            if mask_id not in encoding["input_ids"]:
                raise ValueError(f"no mask token ({self.tokenizer.mask_token}) in input {index}: {texts[index]!r}")
        results = []
        for encoding, logits in zip(encodings, self._forward(encodings, "logits")):
            results.append(self._fill(np.asarray(encoding["input_ids"]), logits, top_k))
        return results

    def _fill(self, ids: np.ndarray, logits: np.ndarray, top_k: int) -> List[Any]:
        positions = np.flatnonzero(ids == self.tokenizer.mask_token_id)
        single_mask = len(positions) == 1
        per_mask = []
        for position in positions:
            probabilities = _softmax(logits[position].astype(np.float64))
            best = np.argsort(-probabilities, kind="stable")[:top_k]
            per_mask.append([self._proposal(ids, position, int(token), float(probabilities[token]), single_mask) for token in best])
        return per_mask[0] if single_mask else per_mask

    def _proposal(self, ids: np.ndarray, position: int, token: int, score: float, single_mask: bool) -> Dict[str, Any]:
        filled = ids.copy()
        filled[position] = token
        # Several masks: the others stay visible, so special tokens are kept (as transformers).
        sequence = self.tokenizer.decode(filled, skip_special_tokens=single_mask)
        return {"score": score, "token": token, "token_str": self.tokenizer.decode([token]), "sequence": sequence}

    def _shape(self, results: List[Any], single: bool, parameters: Dict[str, Any]) -> Any:
        # transformers returns a one-text list's result unwrapped too.
        return results[0] if single or len(results) == 1 else results
