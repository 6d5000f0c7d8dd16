"""Shared fixtures: tiny random RoBERTa / XLM-RoBERTa checkpoints built with transformers in
the test session (fixed seeds, tmp dirs), and padded input batches. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import pytest
import torch
import transformers

# Odd sizes on purpose: heads that are not powers of two, intermediate sizes that are not
# 4 × hidden, one and two token types, both common epsilons, every activation family.
ROBERTA_CONFIGS: Dict[str, dict] = {
    "h60-5heads": dict(
        vocab_size=101, hidden_size=60, num_attention_heads=5, intermediate_size=97, num_hidden_layers=2,
        max_position_embeddings=40, type_vocab_size=1, layer_norm_eps=1e-5, hidden_act="gelu",
    ),
    "h48-3heads": dict(
        vocab_size=131, hidden_size=48, num_attention_heads=3, intermediate_size=70, num_hidden_layers=3,
        max_position_embeddings=34, type_vocab_size=2, layer_norm_eps=1e-12, hidden_act="gelu_new",
    ),
    "h42-7heads-relu": dict(
        vocab_size=77, hidden_size=42, num_attention_heads=7, intermediate_size=50, num_hidden_layers=2,
        max_position_embeddings=30, type_vocab_size=2, layer_norm_eps=1e-5, hidden_act="relu",
    ),
}

HEADS = ("base", "sequence-classification", "regression", "masked-lm", "token-classification")

_CLASS_SUFFIX = {
    "base": "Model",
    "sequence-classification": "ForSequenceClassification",
    "regression": "ForSequenceClassification",
    "masked-lm": "ForMaskedLM",
    "token-classification": "ForTokenClassification",
    "question-answering": "ForQuestionAnswering",
}
_FAMILY_PREFIX = {"roberta": "Roberta", "xlm-roberta": "XLMRoberta"}


def transformers_class(family: str, head: str) -> type:
    return getattr(transformers, _FAMILY_PREFIX[family] + _CLASS_SUFFIX[head])


def build_reference(family: str, head: str, config_name: str, seed: int = 0) -> torch.nn.Module:
    """A transformers model with random weights (fixed seed) for one family / head / config."""
    config_class = transformers.XLMRobertaConfig if family == "xlm-roberta" else transformers.RobertaConfig
    labels = {}
    if head == "sequence-classification":
        labels = dict(id2label={0: "negative", 1: "neutral", 2: "positive"})
    elif head == "regression":
        labels = dict(num_labels=1)
    elif head == "token-classification":
        labels = dict(id2label={i: f"TAG_{i}" for i in range(5)})
    config = config_class(**ROBERTA_CONFIGS[config_name], **labels)
    torch.manual_seed(seed)
    model = transformers_class(family, head)(config).eval()
    # Random init leaves LayerNorms at 1/0 and biases at 0; perturb them so every parameter is tested.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


def save_checkpoint(model: torch.nn.Module, directory: Path, fmt: str) -> Path:
    """Writes `model` as transformers would: "safetensors" (save_pretrained, tied weights
    dropped), "sharded" (several safetensors files + index) or "bin" (torch.save of the state
    dict, as older checkpoints on the hub are)."""
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        model.save_pretrained(directory)
    elif fmt == "sharded":
        model.save_pretrained(directory, max_shard_size="40KB")
    elif fmt == "bin":
        model.config.architectures = [type(model).__name__]  # as save_pretrained records it
        model.config.save_pretrained(directory)
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    else:
        raise ValueError(fmt)
    return directory


@pytest.fixture(scope="session")
def roberta_checkpoint(tmp_path_factory) -> Callable[..., Tuple[Path, torch.nn.Module]]:
    """`roberta_checkpoint(family, head, config_name, fmt)` → (checkpoint dir, reference model),
    built once per session."""
    cache: Dict[tuple, Tuple[Path, torch.nn.Module]] = {}

    def get(family: str, head: str, config_name: str, fmt: str):
        key = (family, head, config_name, fmt)
        if key not in cache:
            model = build_reference(family, head, config_name)
            directory = tmp_path_factory.mktemp("-".join(key))
            cache[key] = (save_checkpoint(model, directory, fmt), model)
        return cache[key]

    return get


def padded_batch(config: dict, lengths=None, seed: int = 0, pad_token_id: int = 1):
    """A right-padded batch shaped like a tokenizer's output: `<s> ... </s>` rows of different
    lengths, pad ids and a 0 mask after them, and random segment ids where the model has two."""
    rng = np.random.RandomState(seed)
    max_len = config["max_position_embeddings"] - pad_token_id - 1
    lengths = lengths or [max_len, max_len - 5, 3, 9]
    width = max(lengths)
    ids = np.full((len(lengths), width), pad_token_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = rng.randint(3, config["vocab_size"], size=length)
        ids[row, 0], ids[row, length - 1] = 0, 2
        mask[row, :length] = 1
        if config["type_vocab_size"] > 1:
            types[row, length // 2 : length] = 1
    return ids, mask, types


def reference_outputs(model: torch.nn.Module, ids, mask, types=None) -> dict:
    kwargs = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    if types is not None:
        kwargs["token_type_ids"] = torch.from_numpy(types)
    with torch.no_grad():
        out = model(**kwargs)
    return {k: v.numpy() for k, v in out.items() if isinstance(v, torch.Tensor)}


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
