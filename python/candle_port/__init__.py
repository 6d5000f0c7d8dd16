"""candle_port: RoBERTa, XLM-RoBERTa and GPT-2 on Candle, with transformers' API and outputs."""

from ._core import __version__, available_devices
from .config import Config
from .modeling_roberta import (
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaModel,
    XLMRobertaForMaskedLM,
    XLMRobertaForSequenceClassification,
    XLMRobertaForTokenClassification,
    XLMRobertaModel,
)
from .modeling_gpt2 import GPT2LMHeadModel, GPT2Model
from .auto import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from .outputs import ModelOutput
from .pipelines import Pipeline, pipeline
from .tokenization import AutoTokenizer, BatchEncoding, Tokenizer

__all__ = [
    "__version__",
    "available_devices",
    "Config",
    "ModelOutput",
    "pipeline",
    "Pipeline",
    "Tokenizer",
    "AutoTokenizer",
    "BatchEncoding",
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "GPT2Model",
    "GPT2LMHeadModel",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "XLMRobertaModel",
    "XLMRobertaForMaskedLM",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForTokenClassification",
]
