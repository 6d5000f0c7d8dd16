"""candle_port: RoBERTa, XLM-RoBERTa and GPT-2 on Candle, with transformers' API and outputs."""

import os as _os

# candle sizes its CPU thread pool from RAYON_NUM_THREADS and, when it is unset, re-reads
# /proc/cpuinfo on every matmul. Setting it once (to the cores this process may use) avoids that.
if hasattr(_os, "sched_getaffinity"):
    _os.environ.setdefault("RAYON_NUM_THREADS", str(len(_os.sched_getaffinity(0))))

try:
    from ._core import __version__, available_devices, get_num_threads
except ImportError as _error:
    from ._native import cuda_import_hint as _cuda_import_hint

    _hint = _cuda_import_hint(_error)
    if _hint is None:
        raise
    raise ImportError(_hint) from _error
from ._threads import set_num_threads
from .config import Config
from .modeling_roberta import (
    RobertaForMaskedLM,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    XLMRobertaForMaskedLM,
    XLMRobertaForQuestionAnswering,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
    XLMRobertaModel,
)
from .generation import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput, GenerationConfig
from .modeling_gpt2 import GPT2LMHeadModel, GPT2Model
from .auto import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from .outputs import ModelOutput
from .pipelines import Pipeline, pipeline
from .tokenization import AutoTokenizer, BatchEncoding, Tokenizer

__all__ = [
    "__version__",
    "available_devices",
    "get_num_threads",
    "set_num_threads",
    "Config",
    "GenerationConfig",
    "GenerateDecoderOnlyOutput",
    "GenerateBeamDecoderOnlyOutput",
    "ModelOutput",
    "pipeline",
    "Pipeline",
    "Tokenizer",
    "AutoTokenizer",
    "BatchEncoding",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForQuestionAnswering",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "GPT2Model",
    "GPT2LMHeadModel",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForQuestionAnswering",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "XLMRobertaModel",
    "XLMRobertaForMaskedLM",
    "XLMRobertaForQuestionAnswering",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForTokenClassification",
]
