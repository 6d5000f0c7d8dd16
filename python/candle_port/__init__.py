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
from .auto import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)
from .outputs import ModelOutput
from .tokenization import AutoTokenizer, BatchEncoding, Tokenizer

__all__ = [
    "__version__",
    "available_devices",
    "Config",
    "ModelOutput",
    "Tokenizer",
    "AutoTokenizer",
    "BatchEncoding",
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "XLMRobertaModel",
    "XLMRobertaForMaskedLM",
    "XLMRobertaForSequenceClassification",
    "XLMRobertaForTokenClassification",
]
