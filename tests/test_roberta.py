"""RoBERTa / XLM-RoBERTa parity with transformers: every head, odd configs, padded batches,
every checkpoint format and key layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors
import torch

import candle_port
from conftest import (
    HEADS,
    ROBERTA_CONFIGS,
    _CLASS_SUFFIX,
    _FAMILY_PREFIX,
    build_reference,
    max_abs_diff,
    padded_batch,
    reference_outputs,
    save_checkpoint,
)

F32_TOLERANCE = 1e-4
FAMILIES = ("roberta", "xlm-roberta")


def candle_class(family: str, head: str) -> type:
    return getattr(candle_port, _FAMILY_PREFIX[family] + _CLASS_SUFFIX[head])


def assert_outputs_match(ours, reference: dict, names, mask=None) -> None:
    """Outputs equal within tolerance; per-token outputs on real tokens, and zero on padding
    (candle_port never computes padding; transformers' values there carry no meaning)."""
    for name in names:
        mine, theirs = ours[name], reference[name]
        if mine.ndim == 3 and mask is not None:
            real = mask.astype(bool)
            assert not mine[~real].any(), f"{name}: padding positions are not zero"
            mine, theirs = mine[real], theirs[real]
        diff = max_abs_diff(mine, theirs)
        assert diff <= F32_TOLERANCE, f"{name}: max abs diff {diff}"


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("config_name", sorted(ROBERTA_CONFIGS))
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_parity_on_padded_batch(roberta_checkpoint, family, head, config_name, fmt):
    directory, reference = roberta_checkpoint(family, head, config_name, fmt)
    config = ROBERTA_CONFIGS[config_name]
    ids, mask, types = padded_batch(config)
    model = candle_class(family, head).from_pretrained(directory)
    ours = model(ids, attention_mask=mask, token_type_ids=types)
    expected = reference_outputs(reference, ids, mask, types)
    names = ["last_hidden_state", "pooler_output"] if head == "base" else ["logits"]
    assert sorted(ours.keys()) == sorted(names)
    assert_outputs_match(ours, expected, names, mask)


@pytest.mark.parametrize("head", ["base", "masked-lm", "token-classification", "sequence-classification"])
def test_padded_rows_equal_unpadded_runs(roberta_checkpoint, head):
    directory, _ = roberta_checkpoint("roberta", head, "h48-3heads", "safetensors")
    config = ROBERTA_CONFIGS["h48-3heads"]
    ids, mask, types = padded_batch(config, lengths=[17, 5, 11], seed=3)
    model = candle_class("roberta", head).from_pretrained(directory)
    batched = model(ids, attention_mask=mask, token_type_ids=types)
    name = "last_hidden_state" if head == "base" else "logits"
    for row, length in enumerate(mask.sum(axis=1)):
        alone = model(ids[row : row + 1, :length], token_type_ids=types[row : row + 1, :length])[name][0]
        in_batch = batched[name][row]
        if in_batch.ndim == alone.ndim == 2:  # per-token outputs: compare the real tokens
            in_batch = in_batch[:length]
        assert max_abs_diff(in_batch, alone) <= F32_TOLERANCE


def test_defaults_match_transformers_without_mask_or_token_types(roberta_checkpoint):
    directory, reference = roberta_checkpoint("roberta", "masked-lm", "h60-5heads", "safetensors")
    ids, _, _ = padded_batch(ROBERTA_CONFIGS["h60-5heads"], lengths=[12, 12])
    with torch.no_grad():
        expected = reference(input_ids=torch.from_numpy(ids)).logits.numpy()
    model = candle_port.RobertaForMaskedLM.from_pretrained(directory)
    assert max_abs_diff(model(ids).logits, expected) <= F32_TOLERANCE
    assert max_abs_diff(model(ids.tolist()).logits, expected) <= F32_TOLERANCE  # nested lists
    assert max_abs_diff(model(ids[0]).logits, expected[:1]) <= F32_TOLERANCE  # 1-D: one sequence


def test_sharded_safetensors(tmp_path):
    reference = build_reference("xlm-roberta", "sequence-classification", "h48-3heads")
    save_checkpoint(reference, tmp_path, "sharded")
    shards = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").is_file()
    config = ROBERTA_CONFIGS["h48-3heads"]
    ids, mask, types = padded_batch(config)
    model = candle_port.XLMRobertaForSequenceClassification.from_pretrained(tmp_path)
    assert_outputs_match(model(ids, mask, types), reference_outputs(reference, ids, mask, types), ["logits"])


def test_tied_decoder_absent_from_safetensors(roberta_checkpoint):
    """transformers' save_pretrained drops the decoder weight tied to the word embeddings."""
    directory, reference = roberta_checkpoint("roberta", "masked-lm", "h60-5heads", "safetensors")
    with safetensors.safe_open(directory / "model.safetensors", "np") as f:
        keys = set(f.keys())
    assert "lm_head.decoder.weight" not in keys and "roberta.embeddings.word_embeddings.weight" in keys
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h60-5heads"])
    model = candle_port.AutoModelForMaskedLM.from_pretrained(directory)
    assert isinstance(model, candle_port.RobertaForMaskedLM)
    assert_outputs_match(model(ids, mask, types), reference_outputs(reference, ids, mask, types), ["logits"], mask)


def test_xlm_roberta_bin_only_classifier_with_extra_keys(tmp_path):
    """A .bin-only XLM-R classifier like cardiffnlp's, with keys transformers ignores: the
    `position_ids` buffer and a pooler the classification head does not use."""
    reference = build_reference("xlm-roberta", "sequence-classification", "h60-5heads")
    state = reference.state_dict()
    state["roberta.embeddings.position_ids"] = torch.arange(40).unsqueeze(0)
    state["roberta.pooler.dense.weight"] = torch.randn(60, 60)
    state["roberta.pooler.dense.bias"] = torch.randn(60)
    reference.config.save_pretrained(tmp_path)
    torch.save(state, tmp_path / "pytorch_model.bin")
    assert [p.name for p in tmp_path.iterdir() if "model" in p.name] == ["pytorch_model.bin"]
    model = candle_port.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert isinstance(model, candle_port.XLMRobertaForSequenceClassification)
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h60-5heads"])
    assert_outputs_match(model(ids, mask), reference_outputs(reference, ids, mask), ["logits"])
    assert model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert model.config.label2id["positive"] == 2 and model.config.num_labels == 3


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_base_model_from_task_checkpoint_with_prefix(roberta_checkpoint, fmt):
    """Task checkpoints keep the encoder under `roberta.`; the bare model loads from them,
    without a pooler (the task model has none), as transformers' base_model does."""
    directory, reference = roberta_checkpoint("roberta", "token-classification", "h48-3heads", fmt)
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h48-3heads"])
    model = candle_port.RobertaModel.from_pretrained(directory)
    ours = model(ids, mask, types)
    assert ours.pooler_output is None and "pooler_output" not in ours
    expected = reference_outputs(reference.roberta, ids, mask, types)
    assert_outputs_match(ours, expected, ["last_hidden_state"], mask)


def test_base_checkpoint_keys_have_no_prefix(roberta_checkpoint):
    directory, _ = roberta_checkpoint("xlm-roberta", "base", "h60-5heads", "safetensors")
    with safetensors.safe_open(directory / "model.safetensors", "np") as f:
        keys = set(f.keys())
    assert "embeddings.word_embeddings.weight" in keys and "pooler.dense.weight" in keys


def test_auto_classes_pick_the_family_and_head(roberta_checkpoint, tmp_path):
    for family in FAMILIES:
        for head, auto in [
            ("base", candle_port.AutoModel),
            ("sequence-classification", candle_port.AutoModelForSequenceClassification),
            ("masked-lm", candle_port.AutoModelForMaskedLM),
            ("token-classification", candle_port.AutoModelForTokenClassification),
        ]:
            directory, _ = roberta_checkpoint(family, head, "h60-5heads", "safetensors")
            assert type(auto.from_pretrained(directory)) is candle_class(family, head)
    # No model_type: the family comes from `architectures`.
    directory, _ = roberta_checkpoint("xlm-roberta", "masked-lm", "h60-5heads", "bin")
    config = json.loads((directory / "config.json").read_text())
    del config["model_type"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "pytorch_model.bin").symlink_to(directory / "pytorch_model.bin")
    assert type(candle_port.AutoModelForMaskedLM.from_pretrained(tmp_path)) is candle_port.XLMRobertaForMaskedLM


def test_regression_head_returns_one_score(roberta_checkpoint):
    directory, _ = roberta_checkpoint("roberta", "regression", "h60-5heads", "safetensors")
    model = candle_port.RobertaForSequenceClassification.from_pretrained(directory)
    ids, mask, _ = padded_batch(ROBERTA_CONFIGS["h60-5heads"])
    assert model(ids, mask).logits.shape == (4, 1)
    assert model.config.num_labels == 1


# Half precision on CPU runs in candle; tolerances are for these tiny models (values of order 1).
HALF_TOLERANCE = {"float16": 1e-2, "bfloat16": 6e-2}


@pytest.mark.parametrize("dtype", sorted(HALF_TOLERANCE))
@pytest.mark.parametrize("head", ["base", "masked-lm"])
def test_half_precision_close_to_float32(roberta_checkpoint, dtype, head):
    directory, reference = roberta_checkpoint("roberta", head, "h48-3heads", "safetensors")
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h48-3heads"])
    model = candle_class("roberta", head).from_pretrained(directory, dtype=dtype)
    ours = model(ids, mask, types)
    expected = reference_outputs(reference, ids, mask, types)
    name = "last_hidden_state" if head == "base" else "logits"
    assert ours[name].dtype == np.float32
    real = mask.astype(bool)
    assert max_abs_diff(ours[name][real], expected[name][real]) <= HALF_TOLERANCE[dtype]


@pytest.mark.parametrize("head", ["masked-lm", "token-classification"])
def test_left_padding_matches_on_real_tokens(roberta_checkpoint, head):
    directory, reference = roberta_checkpoint("xlm-roberta", head, "h60-5heads", "bin")
    ids, mask, _ = padded_batch(ROBERTA_CONFIGS["h60-5heads"], lengths=[9, 4, 6])
    ids, mask = ids[:, ::-1].copy(), mask[:, ::-1].copy()  # left padding
    model = candle_class("xlm-roberta", head).from_pretrained(directory)
    ours = model(ids, mask)
    assert_outputs_match(ours, reference_outputs(reference, ids, mask), ["logits"], mask)


@pytest.mark.parametrize("head", ["base", "sequence-classification"])
def test_first_token_outputs_refuse_left_padding(roberta_checkpoint, head):
    """The pooler and the classifier read position 0; on a left-padded row that is padding,
    where transformers returns a meaningless value. candle_port says so instead."""
    directory, _ = roberta_checkpoint("roberta", head, "h60-5heads", "safetensors")
    ids, mask, _ = padded_batch(ROBERTA_CONFIGS["h60-5heads"], lengths=[9, 4])
    model = candle_class("roberta", head).from_pretrained(directory)
    with pytest.raises(ValueError, match="left-padded"):
        model(ids[:, ::-1].copy(), mask[:, ::-1].copy())
