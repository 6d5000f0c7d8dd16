"""``AutoModel*`` classes: pick the model class from ``config.json`` like transformers does."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional

from . import modeling_gpt2 as gpt2
from . import modeling_roberta as roberta
from .hub import resolve_model_dir

# model_type → class, per task, as in transformers' MODEL_*_MAPPING.
_MAPPINGS: Dict[str, Dict[str, type]] = {
    "AutoModel": {
        "roberta": roberta.RobertaModel,
        "xlm-roberta": roberta.XLMRobertaModel,
        "gpt2": gpt2.GPT2Model,
    },
    "AutoModelForCausalLM": {"gpt2": gpt2.GPT2LMHeadModel},
    "AutoModelForSequenceClassification": {
        "roberta": roberta.RobertaForSequenceClassification,
        "xlm-roberta": roberta.XLMRobertaForSequenceClassification,
    },
    "AutoModelForMaskedLM": {"roberta": roberta.RobertaForMaskedLM, "xlm-roberta": roberta.XLMRobertaForMaskedLM},
    "AutoModelForTokenClassification": {
        "roberta": roberta.RobertaForTokenClassification,
        "xlm-roberta": roberta.XLMRobertaForTokenClassification,
    },
    "AutoModelForQuestionAnswering": {
        "roberta": roberta.RobertaForQuestionAnswering,
        "xlm-roberta": roberta.XLMRobertaForQuestionAnswering,
    },
}

# The prefix of an `architectures` entry names the family when `model_type` is absent.
_ARCHITECTURE_PREFIXES = {"XLMRoberta": "xlm-roberta", "Roberta": "roberta", "GPT2": "gpt2"}


def model_type_of(path: str) -> str:
    """The ``model_type`` of a model directory, from config.json's ``model_type`` or,
    failing that, its ``architectures``."""
    config_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"model directory not found: {path}")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"config.json not found in {path}")
    with open(config_path, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"invalid {config_path}: {err}") from None
    model_type: Optional[str] = config.get("model_type")
    if model_type:
        return model_type
    for architecture in config.get("architectures") or []:
        for prefix, family in _ARCHITECTURE_PREFIXES.items():
            if architecture.startswith(prefix):
                return family
    raise ValueError(f"{config_path} has neither a model_type nor a known architecture")


class _AutoClass:
    _name = ""

    def __init__(self) -> None:
        raise TypeError(f"{self._name} is not meant to be instantiated; use {self._name}.from_pretrained(...)")

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        revision: Optional[str] = None,
        cache_dir=None,
        token: Optional[str] = None,
        local_files_only: bool = False,
    ):
        """Loads the class that ``config.json``'s ``model_type`` (or ``architectures``) names,
        from a local directory or a hub repo id (hub options as in ``candle_port.hub``).

        Raises ValueError for a model type this task does not support.
        """
        path = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        model_type = model_type_of(path)
        mapping = _MAPPINGS[cls._name]
        if model_type not in mapping:
            supported = ", ".join(sorted(mapping))
            raise ValueError(f"model_type {model_type!r} is not supported by {cls._name} (supported: {supported})")
        return mapping[model_type].from_pretrained(path, device=device, dtype=dtype)


class AutoModel(_AutoClass):
    """The base model of a checkpoint (``RobertaModel``, ``XLMRobertaModel``, ``GPT2Model``)."""

    _name = "AutoModel"


class AutoModelForSequenceClassification(_AutoClass):
    """Sequence classification heads."""

    _name = "AutoModelForSequenceClassification"


class AutoModelForMaskedLM(_AutoClass):
    """Masked language model heads."""

    _name = "AutoModelForMaskedLM"


class AutoModelForTokenClassification(_AutoClass):
    """Token classification heads."""

    _name = "AutoModelForTokenClassification"


class AutoModelForQuestionAnswering(_AutoClass):
    """Extractive question answering heads (``start_logits``, ``end_logits``)."""

    _name = "AutoModelForQuestionAnswering"


class AutoModelForCausalLM(_AutoClass):
    """Causal language models (``GPT2LMHeadModel``)."""

    _name = "AutoModelForCausalLM"
