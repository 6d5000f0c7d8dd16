"""Task pipelines with transformers' ``pipeline`` API and output formats, one module per task.

``pipeline(task, model)`` loads a model and its tokenizer and returns a callable that takes a
text or a list of texts. Texts are tokenized once, sorted by length, run in batches of
``batch_size`` and returned in the caller's order.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ..auto import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from ..tokenization import Tokenizer
from .base import Pipeline
from .feature_extraction import FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .text_generation import TextGenerationPipeline
from .token_classification import TokenClassificationPipeline
from .zero_shot_classification import ZeroShotClassificationPipeline

__all__ = [
    "DEFAULT_MODELS",
    "SUPPORTED_TASKS",
    "FeatureExtractionPipeline",
    "FillMaskPipeline",
    "Pipeline",
    "QuestionAnsweringPipeline",
    "TextClassificationPipeline",
    "TextGenerationPipeline",
    "TokenClassificationPipeline",
    "ZeroShotClassificationPipeline",
    "pipeline",
]

_PIPELINES = {
    "text-classification": (TextClassificationPipeline, AutoModelForSequenceClassification),
    "fill-mask": (FillMaskPipeline, AutoModelForMaskedLM),
    "token-classification": (TokenClassificationPipeline, AutoModelForTokenClassification),
    "feature-extraction": (FeatureExtractionPipeline, AutoModel),
    "text-generation": (TextGenerationPipeline, AutoModelForCausalLM),
    "zero-shot-classification": (ZeroShotClassificationPipeline, AutoModelForSequenceClassification),
    "question-answering": (QuestionAnsweringPipeline, AutoModelForQuestionAnswering),
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
    "zero-shot-classification": "FacebookAI/roberta-large-mnli",
    "question-answering": "deepset/roberta-base-squad2",
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
            ``"embeddings"``: mean pooling, L2-normalised), ``"text-generation"``,
            ``"zero-shot-classification"`` (an NLI classifier; ``candidate_labels=``) or
            ``"question-answering"`` (extractive; ``question=``, ``context=``).
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
