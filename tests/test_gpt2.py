"""GPT-2 parity with transformers: logits, greedy and sampled generation, streaming, the CLI.

Tiny random GPT-2s are built with transformers in the test session, saved in the layouts
candle_port must read: ``save_pretrained`` (``transformer.`` prefix, safetensors), the hub's
original layout (no prefix, no ``lm_head``) and ``pytorch_model.bin``.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

import candle_port
from candle_port import AutoModel, AutoModelForCausalLM

VOCAB = 211
# An id the random models rarely produce, so generations run their full length.
RARE_EOS = VOCAB - 1
PAD = 0

CONFIGS = {
    "gelu_new": dict(n_embd=48, n_head=3, n_inner=70, n_layer=3),
    "gelu_scaled": dict(
        n_embd=60, n_head=5, n_layer=2, activation_function="gelu", scale_attn_by_inverse_layer_idx=True
    ),
}


def build_reference(kind):
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_positions=128,
        bos_token_id=1,
        eos_token_id=RARE_EOS,
        initializer_range=0.2,  # larger than default: varied, far-from-tied logits
        attn_implementation="eager",
        **CONFIGS[kind],
    )
    return GPT2LMHeadModel(config).eval()


def write_hub_layout(model, path):
    """The hub's original files: base model keys at the root, no lm_head."""
    path.mkdir()
    state = {k: v.contiguous() for k, v in model.transformer.state_dict().items()}
    save_file(state, str(path / "model.safetensors"))
    (path / "config.json").write_text(model.config.to_json_string())


def write_pytorch_bin(model, path):
    path.mkdir()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    (path / "config.json").write_text(model.config.to_json_string())


LAYOUTS = {
    "save_pretrained": lambda model, path: model.save_pretrained(path),
    "hub": write_hub_layout,
    "pytorch_bin": write_pytorch_bin,
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def reference(request):
    return build_reference(request.param)


@pytest.fixture(scope="module")
def model_dirs(reference, tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt2")
    dirs = {}
    for layout, write in LAYOUTS.items():
        write(reference, root / layout)
        dirs[layout] = root / layout
    return dirs


@pytest.fixture(scope="module")
def model(model_dirs):
    return AutoModelForCausalLM.from_pretrained(model_dirs["save_pretrained"])


def left_padded_batch():
    rows = [[5, 17, 42, 9, 100, 3, 77], [12, 8, 150], [60, 61, 62, 63, 64]]
    width = max(map(len, rows))
    ids = np.full((len(rows), width), PAD, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = row
        mask[i, width - len(row):] = 1
    return ids, mask


def right_padded_batch():
    ids, mask = left_padded_batch()
    for i in range(len(ids)):
        n = mask[i].sum()
        ids[i] = np.roll(ids[i], n - len(ids[i]) if n < len(ids[i]) else 0)
        mask[i] = np.roll(mask[i], n - len(mask[i]) if n < len(mask[i]) else 0)
    ids[mask == 0] = PAD
    return ids, mask


def reference_logits(reference, ids, mask):
    with torch.no_grad():
        return reference(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()


def reference_generate(reference, ids, mask, **kwargs):
    with torch.no_grad():
        out = reference.generate(
            torch.tensor(ids), attention_mask=torch.tensor(mask), pad_token_id=PAD, do_sample=False, **kwargs
        )
    return out.numpy()


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("batch", [left_padded_batch, right_padded_batch])
def test_logits_match_transformers(reference, model_dirs, layout, batch):
    ids, mask = batch()
    ours = AutoModelForCausalLM.from_pretrained(model_dirs[layout])(ids, attention_mask=mask).logits
    theirs = reference_logits(reference, ids, mask)
    assert ours.shape == theirs.shape == (3, 7, VOCAB)
    # Outputs at padding positions are meaningless (transformers' too); compare the tokens.
    tokens = mask.astype(bool)
    assert np.abs(ours[tokens] - theirs[tokens]).max() <= 1e-4


def test_base_model_hidden_states_match(reference, model_dirs):
    ids = np.array([[3, 1, 4, 1, 5, 9, 2, 6]])
    base = AutoModel.from_pretrained(model_dirs["hub"])
    assert isinstance(base, candle_port.GPT2Model)
    with torch.no_grad():
        theirs = reference.transformer(torch.tensor(ids)).last_hidden_state.numpy()
    assert np.abs(base(ids).last_hidden_state - theirs).max() <= 1e-4


def test_greedy_matches_transformers_single_prompt(reference, model):
    ids = np.array([[5, 17, 42, 9]])
    mask = np.ones_like(ids)
    theirs = reference_generate(reference, ids, mask, max_new_tokens=48)
    ours = model.generate(ids, max_new_tokens=48)
    assert ours.dtype == np.int64
    assert theirs.shape == (1, 4 + 48)  # eos never reached: the full length is compared
    np.testing.assert_array_equal(ours, theirs)


def test_greedy_left_padded_batch_matches_transformers_and_single_rows(reference, model):
    ids, mask = left_padded_batch()
    theirs = reference_generate(reference, ids, mask, max_new_tokens=40)
    ours = model.generate(ids, attention_mask=mask, max_new_tokens=40)
    assert theirs.shape == (3, 7 + 40)
    np.testing.assert_array_equal(ours, theirs)
    for i in range(len(ids)):
        alone = model.generate(ids[i][mask[i] == 1], max_new_tokens=40)
        np.testing.assert_array_equal(alone[0, -40:], ours[i, -40:])


def test_rows_that_hit_eos_are_padded_like_transformers(reference, model):
    ids, mask = left_padded_batch()
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=12)
    eos = int(greedy[0, 7 + 3])  # a token the first row produces early
    theirs = reference_generate(reference, ids, mask, max_new_tokens=12, eos_token_id=eos)
    ours = model.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=eos, pad_token_id=PAD)
    np.testing.assert_array_equal(ours, theirs)
    assert (ours[0, 7 + 4 :] == PAD).all()


def test_repetition_penalty_matches_transformers(reference, model):
    ids = np.array([[5, 17, 42, 9, 5, 17]])
    theirs = reference_generate(reference, ids, np.ones_like(ids), max_new_tokens=30, repetition_penalty=1.7)
    ours = model.generate(ids, max_new_tokens=30, repetition_penalty=1.7)
    np.testing.assert_array_equal(ours, theirs)


def test_sampling_is_reproducible_with_a_seed(model):
    ids, mask = left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=30, do_sample=True, temperature=1.3, top_k=50, top_p=0.9)
    first = model.generate(ids, seed=11, **kwargs)
    np.testing.assert_array_equal(first, model.generate(ids, seed=11, **kwargs))
    assert not np.array_equal(first, model.generate(ids, seed=12, **kwargs))
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=30)
    assert not np.array_equal(first, greedy)


def test_top_k_one_is_greedy(model):
    ids, mask = left_padded_batch()
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=25)
    sampled = model.generate(ids, attention_mask=mask, max_new_tokens=25, do_sample=True, top_k=1, seed=3)
    np.testing.assert_array_equal(sampled, greedy)


def test_stream_yields_the_generated_tokens(model):
    ids, mask = left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=20, do_sample=True, top_p=0.8, seed=5)
    steps = list(model.stream(ids, **kwargs))
    assert len(steps) == 20 and all(step.shape == (3,) and step.dtype == np.int64 for step in steps)
    np.testing.assert_array_equal(np.stack(steps, axis=1), model.generate(ids, **kwargs)[:, 7:])


def test_top_k_zero_turns_top_k_off_as_in_transformers(model):
    ids, mask = left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=20, do_sample=True, seed=4)
    unfiltered = model.generate(ids, top_k=0, **kwargs)
    np.testing.assert_array_equal(unfiltered, model.generate(ids, top_k=VOCAB, **kwargs))
    # Sampling filters with top_k=50 unless told otherwise, as transformers' generate does.
    np.testing.assert_array_equal(model.generate(ids, **kwargs), model.generate(ids, top_k=50, **kwargs))


def test_lengths_default_and_max_length_match_transformers(reference, model):
    ids, mask = left_padded_batch()
    np.testing.assert_array_equal(model.generate(ids, attention_mask=mask), reference_generate(reference, ids, mask))
    theirs = reference_generate(reference, ids, mask, max_length=15)
    assert theirs.shape == (3, 15)
    np.testing.assert_array_equal(model.generate(ids, attention_mask=mask, max_length=15), theirs)
    both = model.generate(ids, attention_mask=mask, max_length=15, max_new_tokens=3)
    assert both.shape == (3, 7 + 3)


def test_generation_config_object_carries_the_options(model):
    ids, mask = left_padded_batch()
    config = candle_port.GenerationConfig(max_new_tokens=12, do_sample=True, top_p=0.8, seed=9)
    by_object = model.generate(ids, attention_mask=mask, generation_config=config)
    by_kwargs = model.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=True, top_p=0.8, seed=9)
    np.testing.assert_array_equal(by_object, by_kwargs)
    # Keyword arguments override the object's fields; the object is left unchanged.
    greedy = model.generate(ids, attention_mask=mask, generation_config=config, do_sample=False)
    np.testing.assert_array_equal(greedy, model.generate(ids, attention_mask=mask, max_new_tokens=12))
    assert config.do_sample is True
    steps = list(model.stream(ids, attention_mask=mask, generation_config=config))
    np.testing.assert_array_equal(np.stack(steps, axis=1), by_object[:, 7:])
    with pytest.raises(ValueError, match="num_beams"):
        candle_port.GenerationConfig(num_beams=0).validate()
    with pytest.raises(ValueError, match="num_beam_groups"):
        candle_port.GenerationConfig(num_beams=4, num_beam_groups=2, diversity_penalty=0.5).validate()
    candle_port.GenerationConfig(num_beams=1, transformers_version="5.0").validate()  # defaults ask nothing


def test_generation_config_json_of_the_model_is_the_default(reference, tmp_path):
    reference.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "generation_config.json").write_text(
        json.dumps({"max_new_tokens": 6, "eos_token_id": [RARE_EOS], "num_beams": 1, "transformers_version": "5.0"})
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert model.generation_config.max_new_tokens == 6
    ids = np.array([[5, 17, 42, 9]])
    assert model.generate(ids).shape == (1, 4 + 6)
    theirs = reference_generate(reference, ids, np.ones_like(ids), max_new_tokens=6)
    np.testing.assert_array_equal(model.generate(ids), theirs)
    assert model.generate(ids, max_new_tokens=2).shape == (1, 4 + 2)


@pytest.mark.parametrize(
    "ids, kwargs, message",
    [
        (np.zeros((1, 0), dtype=np.int64), {}, "empty"),
        ([[1, VOCAB]], {}, "out of range"),
        ([[1, 2]], dict(max_new_tokens=127), "exceeds"),
        ([[1, 2]], dict(do_sample=True, temperature=0.0), "temperature"),
        ([[1, 2]], dict(do_sample=True, top_p=1.5), "top_p"),
        ([[1, 2]], dict(do_sample=True, top_p=0.0), "top_p"),
        ([[1, 2]], dict(do_sample=True, temperature=1e-50), "temperature"),
        ([[1, 2]], dict(max_length=2), "max_length"),
        ([[1, 2]], dict(num_beams=0), "num_beams"),
        ([[1, 2]], dict(top_k=-1), "top_k"),
        ([[1, 2]], dict(max_new_tokens="5"), "max_new_tokens"),
        ([[1, 2]], dict(attention_mask=[[1, 1, 1]]), "attention_mask"),
        ([[-1, 2]], {}, "not a valid id"),
    ],
)
def test_bad_generation_inputs_raise_value_error(model, ids, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate(ids, **kwargs)


def test_bad_forward_inputs_raise_value_error(model):
    with pytest.raises(ValueError, match="out of range"):
        model([[1, VOCAB]])
    with pytest.raises(ValueError, match="exceeds"):
        model(np.ones((1, 129), dtype=np.int64))


def test_base_model_cannot_generate(model_dirs):
    base = candle_port.GPT2Model.from_pretrained(model_dirs["hub"])
    assert not hasattr(base, "generate")  # as in transformers
    with pytest.raises(ValueError, match="language model head"):
        base._core.stream(np.array([[1, 2]]))


def test_unsupported_config_options_are_rejected(tmp_path):
    write_hub_layout(build_reference("gelu_new"), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["add_cross_attention"] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="add_cross_attention"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "m")


def test_cli_streams_generated_ids(model, model_dirs):
    expected = model.generate([[5, 17, 42]], max_new_tokens=15)[0, 3:]
    result = subprocess.run(
        [sys.executable, "-m", "candle_port", "generate", "--model", str(model_dirs["save_pretrained"]),
         "--prompt-ids", "5,17,42", "--max-new-tokens", "15"],
        capture_output=True, text=True, check=True,
    )
    assert [int(t) for t in result.stdout.split()] == expected.tolist()


@pytest.mark.parametrize("dtype, tolerance", [("float16", 1e-2), ("bfloat16", 5e-2)])
def test_half_precision_single_token_logits_stay_close(reference, model_dirs, dtype, tolerance):
    """One row of one token: the threaded row products, with weights widened from half
    precision."""
    ids = np.array([[42]])
    ours = AutoModelForCausalLM.from_pretrained(model_dirs["save_pretrained"], dtype=dtype)(ids).logits
    theirs = reference_logits(reference, ids, np.ones_like(ids))
    assert ours.dtype == np.float32
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= tolerance * scale
