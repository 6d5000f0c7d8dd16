"""``GenerationConfig``: the options of ``generate`` / ``stream``, as in transformers.

One object carries them from the caller (keyword arguments, a ``GenerationConfig``, or the
model's ``generation_config.json``) down to the Rust decoding loop, which validates them once.
Options candle_port does not implement are refused by name, never silently ignored.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from . import _core
from .outputs import ModelOutput

PathLike = Union[str, "os.PathLike[str]"]

# The values transformers' ``generate`` gives fields left unset
# (``GenerationConfig._get_default_generation_params``). A field at its default asks for nothing,
# so it is not sent to the core: that is how options candle_port lacks can appear in a
# generation_config.json (``num_beams: 1``) without being refused.
_TRANSFORMERS_DEFAULTS: Dict[str, Any] = {
    "max_length": 20,
    "min_length": 0,
    "do_sample": False,
    "use_cache": True,
    "early_stopping": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "num_return_sequences": 1,
    "output_scores": False,
    "output_logits": False,
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict_in_generate": False,
    "remove_invalid_values": False,
    "renormalize_logits": False,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "encoder_repetition_penalty": 1.0,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
}

_NO_DEFAULT = object()

# Bookkeeping keys of generation_config.json files, not options.
_METADATA = {"transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash"}

# Special token ids a model config contributes to its default generation config.
_TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id")


class GenerationConfig:
    """The generation options, named as in transformers' ``GenerationConfig``.

    Unset options (``None``) take transformers' defaults: greedy decoding, 20 new tokens,
    and when sampling ``temperature=1.0``, ``top_k=50`` (``0`` turns top-k off), ``top_p=1.0``.
    candle_port implements ``max_new_tokens``, ``max_length``, ``min_new_tokens``,
    ``min_length``, ``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``min_p``,
    ``typical_p``, ``repetition_penalty``, ``no_repeat_ngram_size``, ``bad_words_ids``,
    ``num_beams``, ``length_penalty``, ``early_stopping`` (``True``, ``False`` or ``"never"``),
    ``num_return_sequences``, ``stop_strings`` (needs ``tokenizer=`` in ``generate``),
    ``output_scores``, ``return_dict_in_generate``, ``eos_token_id``, ``pad_token_id``, and
    ``seed`` (makes sampling reproducible; transformers uses ``set_seed`` instead). Any other
    option set to a non-default value makes ``generate`` raise a ValueError naming it.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.max_new_tokens: Optional[int] = None
        self.max_length: Optional[int] = None
        self.do_sample: Optional[bool] = None
        self.temperature: Optional[float] = None
        self.top_k: Optional[int] = None
        self.top_p: Optional[float] = None
        self.repetition_penalty: Optional[float] = None
        self.seed: Optional[int] = None
        self.bos_token_id: Optional[int] = None
        self.eos_token_id: Optional[int] = None
        self.pad_token_id: Optional[int] = None
        self.num_beams: Optional[int] = None
        self.length_penalty: Optional[float] = None
        self.early_stopping: Optional[Union[bool, str]] = None
        self.num_return_sequences: Optional[int] = None
        self.no_repeat_ngram_size: Optional[int] = None
        self.min_length: Optional[int] = None
        self.min_new_tokens: Optional[int] = None
        self.bad_words_ids: Optional[List[List[int]]] = None
        self.typical_p: Optional[float] = None
        self.min_p: Optional[float] = None
        self.output_scores: Optional[bool] = None
        self.return_dict_in_generate: Optional[bool] = None
        self.stop_strings: Optional[Union[str, List[str]]] = None
        self.update(**kwargs)

    def update(self, **kwargs: Any) -> None:
        """Sets the given options (any name: unknown ones are refused when generating)."""
        for name, value in kwargs.items():
            setattr(self, name, value)

    def to_dict(self) -> Dict[str, Any]:
        return copy.deepcopy(self.__dict__)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def options(self) -> Dict[str, Any]:
        """The options that ask for something: set, not bookkeeping, not at transformers'
        default. A one-element ``eos_token_id`` list is read as that id."""
        options = {}
        for name, value in self.__dict__.items():
            if value is None or name in _METADATA or _TRANSFORMERS_DEFAULTS.get(name, _NO_DEFAULT) == value:
                continue
            if name == "eos_token_id" and isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            options[name] = value
        return options

    def validate(self) -> None:
        """Raises ValueError for an option candle_port lacks or an invalid value, as
        ``generate`` would (prompt-dependent checks aside)."""
        _core.check_generation_config(self._core_json())

    def _core_json(self) -> str:
        try:
            return json.dumps(self.options())
        except TypeError as error:
            raise ValueError(f"generation config: {error}") from None

    @classmethod
    def from_pretrained(cls, pretrained_model_name: PathLike, config_file_name: str = "generation_config.json") -> "GenerationConfig":
        """Reads ``generation_config.json`` from a model directory."""
        path = os.path.join(os.fspath(pretrained_model_name), config_file_name)
        try:
            with open(path, encoding="utf-8") as file:
                values = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(values).__name__}")
        return cls(**values)

    @classmethod
    def from_model_config(cls, model_config: Any) -> "GenerationConfig":
        """The special token ids of a model's config, as transformers derives a default
        generation config from it."""
        return cls(**{name: getattr(model_config, name, None) for name in _TOKEN_FIELDS})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self.options() == other.options()

    def __repr__(self) -> str:
        return f"GenerationConfig {json.dumps(self.options(), indent=2, sort_keys=True)}"



def model_generation_config(model_dir: PathLike, model_config: Any) -> GenerationConfig:
    """A model's default generation config: its ``generation_config.json`` when it has one,
    else the special token ids of its ``config.json``."""
    if os.path.isfile(os.path.join(os.fspath(model_dir), "generation_config.json")):
        return GenerationConfig.from_pretrained(model_dir)
    return GenerationConfig.from_model_config(model_config)


def resolve_generation_config(default: GenerationConfig, generation_config: Optional[GenerationConfig], kwargs: Dict[str, Any]) -> str:
    """The JSON the core decodes with: ``generation_config`` (else the model's ``default``)
    updated with the keyword arguments, as transformers' ``generate`` merges them."""
    if generation_config is not None and not isinstance(generation_config, GenerationConfig):
        raise TypeError(f"generation_config must be a GenerationConfig, not {type(generation_config).__name__}")
    config = copy.deepcopy(default if generation_config is None else generation_config)
    config.update(**kwargs)
    return config._core_json()


class GenerateDecoderOnlyOutput(ModelOutput):
    """``generate(..., return_dict_in_generate=True)``: ``sequences`` (int64 (rows, length))
    and, with ``output_scores=True``, ``scores``: a tuple with one float32 (rows, vocab) array
    per step, the scores after the logits processors, as transformers gives them."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_describe(value)}" for name, value in self._outputs.items())
        return f"{type(self).__name__}({fields})"


class GenerateBeamDecoderOnlyOutput(GenerateDecoderOnlyOutput):
    """Beam search's ``generate(..., return_dict_in_generate=True)``: ``sequences``,
    ``beam_indices`` (the row each token came from, -1 past the end) and, with
    ``output_scores=True``, ``sequences_scores`` (the final beam scores) and ``scores`` (the
    processed log-probabilities of every beam, one array per step)."""


def generate_output(outputs: Dict[str, Any], beam_search: bool) -> GenerateDecoderOnlyOutput:
    """The core's outputs as transformers' output class."""
    if "scores" in outputs:
        outputs = {**outputs, "scores": tuple(outputs["scores"])}
    output_class = GenerateBeamDecoderOnlyOutput if beam_search else GenerateDecoderOnlyOutput
    return output_class(outputs)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array(shape={value.shape}, dtype={value.dtype})"
    if isinstance(value, tuple):
        return f"tuple of {len(value)} arrays"
    return repr(value)
