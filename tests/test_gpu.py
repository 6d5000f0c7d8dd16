"""The parity suite on a CUDA GPU: skipped unless this build and machine have one
(`candle_port.available_devices()` lists "cuda:0"), e.g. the wheel from
scripts/build_cuda_wheel.sh on a GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import candle_port
from conftest import ROBERTA_CONFIGS, max_abs_diff, padded_batch, reference_outputs
from test_gpt2 import build_reference as build_gpt2, left_padded_batch, reference_logits

pytestmark = pytest.mark.skipif(
    "cuda:0" not in candle_port.available_devices(), reason="no CUDA device in this build / on this machine"
)

# float32: absolute, as on the CPU (candle does not use TF32 unless asked; the references run on
# the CPU). Half precision: relative to the reference's largest value, a few units in the last
# place of each format (float16 keeps 11 significant bits, bfloat16 8).
TOLERANCE = {"float32": 1e-4, "float16": 4e-3, "bfloat16": 3e-2}


def close_enough(mine: np.ndarray, theirs: np.ndarray, dtype: str) -> bool:
    scale = 1.0 if dtype == "float32" else max(1.0, float(np.abs(theirs).max()))
    return max_abs_diff(mine, theirs) <= TOLERANCE[dtype] * scale


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
@pytest.mark.parametrize("head", ["base", "sequence-classification", "masked-lm", "token-classification"])
def test_encoder_parity_on_gpu(roberta_checkpoint, head, dtype):
    directory, reference = roberta_checkpoint("xlm-roberta", head, "h48-3heads", "safetensors")
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h48-3heads"])
    cls = {
        "base": candle_port.XLMRobertaModel,
        "sequence-classification": candle_port.XLMRobertaForSequenceClassification,
        "masked-lm": candle_port.XLMRobertaForMaskedLM,
        "token-classification": candle_port.XLMRobertaForTokenClassification,
    }[head]
    ours = cls.from_pretrained(directory, device="cuda", dtype=dtype)(ids, mask, types)
    expected = reference_outputs(reference, ids, mask, types)
    name = "last_hidden_state" if head == "base" else "logits"
    mine, theirs = ours[name], expected[name]
    if mine.ndim == 3:
        real = mask.astype(bool)
        mine, theirs = mine[real], theirs[real]
    assert close_enough(mine, theirs, dtype)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("config_name", sorted(ROBERTA_CONFIGS))
def test_roberta_parity_on_gpu_float32(roberta_checkpoint, config_name, fmt):
    """Every odd config and both checkpoint formats, RoBERTa's sequence classifier in float32."""
    directory, reference = roberta_checkpoint("roberta", "sequence-classification", config_name, fmt)
    ids, mask, types = padded_batch(ROBERTA_CONFIGS[config_name])
    model = candle_port.RobertaForSequenceClassification.from_pretrained(directory, device="cuda")
    ours = model(ids, mask, types).logits
    assert max_abs_diff(ours, reference_outputs(reference, ids, mask, types)["logits"]) <= 1e-4


@pytest.mark.parametrize("dtype", sorted(TOLERANCE))
@pytest.mark.parametrize("kind", ["gelu_new", "gelu_scaled"])
def test_gpt2_logits_parity_on_gpu(tmp_path, kind, dtype):
    """A left-padded batch: the causal and padding mask in every dtype."""
    reference = build_gpt2(kind)
    reference.save_pretrained(tmp_path)
    ids, mask = left_padded_batch()
    model = candle_port.GPT2LMHeadModel.from_pretrained(tmp_path, device="cuda", dtype=dtype)
    ours = model(ids, attention_mask=mask).logits
    tokens = mask.astype(bool)
    assert close_enough(ours[tokens], reference_logits(reference, ids, mask)[tokens], dtype)


def test_half_precision_positions_beyond_256_stay_exact(tmp_path):
    """Position ids are integers: a 300-token row in float16 matches float32 closely."""
    config = transformers.RobertaConfig(
        vocab_size=50, hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=1,
        max_position_embeddings=320,
    )
    torch.manual_seed(0)
    transformers.RobertaModel(config).eval().save_pretrained(tmp_path)
    ids = np.random.default_rng(0).integers(3, 50, size=(1, 300))
    full = candle_port.RobertaModel.from_pretrained(tmp_path, device="cuda")(ids).last_hidden_state
    half = candle_port.RobertaModel.from_pretrained(tmp_path, device="cuda", dtype="float16")(ids).last_hidden_state
    assert np.isfinite(half).all() and max_abs_diff(half, full) <= 1e-2


def test_gpt2_greedy_generation_identical_on_gpu(tmp_path):
    config = transformers.GPT2Config(n_embd=48, n_head=3, n_layer=2, n_inner=70, n_positions=96, vocab_size=211)
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    reference.save_pretrained(tmp_path)
    prompts = np.array([[0, 0, 5, 17, 42], [3, 9, 11, 7, 1]])
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    ours = candle_port.GPT2LMHeadModel.from_pretrained(tmp_path, device="cuda").generate(
        prompts, attention_mask=mask, max_new_tokens=40, pad_token_id=0
    )
    with torch.no_grad():
        expected = reference.generate(
            torch.from_numpy(prompts), attention_mask=torch.from_numpy(mask), max_new_tokens=40,
            do_sample=False, pad_token_id=0,
        )
    assert ours.tolist() == expected.tolist()
