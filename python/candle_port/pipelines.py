"""Task pipelines with transformers' ``pipeline`` API and output formats.

``pipeline(task, model)`` loads a model and its tokenizer and returns a callable that takes a
text or a list of texts. Texts are tokenized once, sorted by length, run in batches of
``batch_size`` and returned in the caller's order.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from .auto import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from .tokenization import Tokenizer

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


class TextGenerationPipeline(Pipeline):
    """``text-generation``: ``[{"generated_text": ...}]`` per prompt, the prompt followed by the
    new text (only the new text with ``return_full_text=False``).

    Takes ``GPT2LMHeadModel.generate``'s options. Prompts are batched with left padding (the eos
    token pads when the tokenizer has no pad token); with sampling, the draws depend on how
    prompts fall into batches.
    """

    task = "text-generation"

    def _run(
        self,
        texts: List[str],
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        repetition_penalty: float = 1.0,
        seed: Optional[int] = None,
        return_full_text: bool = True,
    ) -> List[Any]:
        encodings = [{"input_ids": ids} for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        for index, encoding in enumerate(encodings):
            if not encoding["input_ids"]:
                raise ValueError(f"prompt {index} is empty")
        pad_id = _first_not_none(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        options = dict(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            seed=seed,
            pad_token_id=pad_id,
        )
        results: List[Any] = [None] * len(texts)
        for chunk in self._batches(encodings):
            batch = self._pad([encodings[i]["input_ids"] for i in chunk], side="left")
            generated = self.model.generate(batch["input_ids"], batch["attention_mask"], **options)
            new_texts = self.tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, new_text in zip(chunk, new_texts):
                results[i] = [{"generated_text": texts[i] + new_text if return_full_text else new_text}]
        return results


_PIPELINES = {
    "text-classification": (TextClassificationPipeline, AutoModelForSequenceClassification),
    "fill-mask": (FillMaskPipeline, AutoModelForMaskedLM),
    "token-classification": (TokenClassificationPipeline, AutoModelForTokenClassification),
    "feature-extraction": (FeatureExtractionPipeline, AutoModel),
    "text-generation": (TextGenerationPipeline, AutoModelForCausalLM),
}

_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification", "embeddings": "feature-extraction"}

# Parameters an alias sets by default.
_ALIAS_DEFAULTS = {"embeddings": {"pooling": "mean", "normalize": True}}

DEFAULT_MODELS = {
    "text-classification": "cardiffnlp/twitter-roberta-base-sentiment-latest",
    "fill-mask": "FacebookAI/roberta-base",
    "token-classification": "FacebookAI/xlm-roberta-large-finetuned-conll03-english",
    "feature-extraction": "FacebookAI/xlm-roberta-base",
    "text-generation": "openai-community/gpt2",
}

SUPPORTED_TASKS = sorted(list(_PIPELINES) + list(_ALIASES))


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Union[None, str, "os.PathLike[str]", Tokenizer] = None,
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 8,
    progress: Optional[bool] = None,
    **kwargs: Any,
) -> Pipeline:
    """Builds the pipeline of a task, like transformers' ``pipeline``.

    Args:
        task: ``"text-classification"`` (alias ``"sentiment-analysis"``), ``"fill-mask"``,
            ``"token-classification"`` (alias ``"ner"``), ``"feature-extraction"`` (alias
            ``"embeddings"``: mean pooling, L2-normalised) or ``"text-generation"``.
        model: a model directory (or anything the model classes' ``from_pretrained`` takes), or
            a loaded candle_port model; defaults to the task's model in ``DEFAULT_MODELS``.
        tokenizer: a ``Tokenizer`` or where to load one from; defaults to ``model``'s own.
            Required when ``model`` is a loaded model.
        device, dtype: where and how to load the model (ignored for a loaded model).
        batch_size: how many texts run together.
        progress: ``None`` shows a progress bar on stderr once a call has run for 2 seconds,
            ``True`` from the start, ``False`` never.
        **kwargs: default call parameters of the pipeline (e.g. ``top_k=3``,
            ``aggregation_strategy="simple"``, ``max_new_tokens=20``).

    Raises:
        ValueError: an unknown task, or a loaded model without a tokenizer.
        TypeError: a parameter the task does not take.
    """
    if task not in _PIPELINES and task not in _ALIASES:
        raise ValueError(f"unknown task {task!r}; supported: {', '.join(SUPPORTED_TASKS)}")
    canonical = _ALIASES.get(task, task)
    pipeline_class, auto_class = _PIPELINES[canonical]
    if model is None:
        model = DEFAULT_MODELS[canonical]
    if isinstance(model, (str, os.PathLike)):
        tokenizer = model if tokenizer is None else tokenizer
        model = auto_class.from_pretrained(model, device=device, dtype=dtype)
    elif tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer: pass tokenizer=")
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_pretrained(tokenizer)
    defaults = {**_ALIAS_DEFAULTS.get(task, {}), **kwargs}
    return pipeline_class(model, tokenizer, batch_size=batch_size, progress=progress, **defaults)


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _split_tag(label: str) -> tuple:
    """("B" or "I", tag) as transformers reads a label; labels without a prefix count as "I"."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _first_not_none(*values: Optional[int]) -> int:
    return next(value for value in values if value is not None)
