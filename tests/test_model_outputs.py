"""The question-answering heads and ``output_hidden_states`` / ``output_attentions`` on every
encoder and GPT-2 class, against transformers (eager attention, which returns attention
probabilities): padded batches, both checkpoint formats for the new head, max abs diff
<= 1e-5 on real tokens, and zeros on the encoders' padding positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import candle_port
from conftest import (
    ROBERTA_CONFIGS,
    _CLASS_SUFFIX,
    _FAMILY_PREFIX,
    build_reference,
    max_abs_diff,
    padded_batch,
    save_checkpoint,
)

TOLERANCE = 1e-5
FAMILIES = ("roberta", "xlm-roberta")
ALL_HEADS = ("base", "sequence-classification", "masked-lm", "token-classification", "question-answering")
MAIN_OUTPUTS = {
    "base": ["last_hidden_state", "pooler_output"],
    "question-answering": ["start_logits", "end_logits"],
}


def candle_class(family: str, head: str) -> type:
    return getattr(candle_port, _FAMILY_PREFIX[family] + _CLASS_SUFFIX[head])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """(family, head, config_name, fmt) -> (directory, transformers model with eager attention)."""
    cache = {}

    def get(family, head, config_name, fmt="safetensors"):
        key = (family, head, config_name, fmt)
        if key not in cache:
            model = build_reference(family, head, config_name)
            model.set_attn_implementation("eager")
            cache[key] = (save_checkpoint(model, tmp_path_factory.mktemp("-".join(key)), fmt), model)
        return cache[key]

    return get


def reference(model, ids, mask, types=None, **kwargs):
    inputs = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    if types is not None:
        inputs["token_type_ids"] = torch.from_numpy(types)
    with torch.no_grad():
        return model(**inputs, **kwargs)


def assert_per_token(ours, theirs, real, name):
    """(batch, seq, ...) arrays: equal on real tokens; ours 0 on padding."""
    assert ours.shape == tuple(theirs.shape), (name, ours.shape, theirs.shape)
    assert not ours[~real].any(), f"{name}: padding positions are not zero"
    diff = max_abs_diff(ours[real], theirs.numpy()[real])
    assert diff <= TOLERANCE, f"{name}: max abs diff {diff}"


def assert_attentions(ours, theirs, real):
    """(batch, heads, seq, seq): rows of real queries equal (transformers' padded keys get
    probability 0, as ours); rows and columns of padding 0 in ours."""
    assert len(ours) == len(theirs)
    for layer, (mine, expected) in enumerate(zip(ours, theirs)):
        assert mine.shape == tuple(expected.shape)
        expected = expected.numpy()
        for row in range(mine.shape[0]):
            queries = real[row]
            diff = max_abs_diff(mine[row][:, queries], expected[row][:, queries])
            assert diff <= TOLERANCE, f"attentions[{layer}] row {row}: max abs diff {diff}"
            assert not mine[row][:, ~queries].any() and not mine[row][:, :, ~queries].any()
        np.testing.assert_allclose(mine.sum(-1)[:, 0][real], 1.0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
@pytest.mark.parametrize("config_name", sorted(ROBERTA_CONFIGS))
@pytest.mark.parametrize("family", FAMILIES)
def test_question_answering_head(checkpoint, family, config_name, fmt):
    directory, model = checkpoint(family, "question-answering", config_name, fmt)
    ids, mask, types = padded_batch(ROBERTA_CONFIGS[config_name])
    ours = candle_class(family, "question-answering").from_pretrained(directory)(ids, mask, types)
    assert list(ours.keys()) == ["start_logits", "end_logits"]
    expected = reference(model, ids, mask, types)
    real = mask.astype(bool)
    for name in ("start_logits", "end_logits"):
        assert_per_token(ours[name], expected[name], real, name)
    auto = candle_port.AutoModelForQuestionAnswering.from_pretrained(directory)
    assert type(auto).__name__ == _FAMILY_PREFIX[family] + "ForQuestionAnswering"


def test_question_answering_head_needs_two_outputs(tmp_path):
    model = build_reference("roberta", "question-answering", "h42-7heads-relu")
    model.qa_outputs = torch.nn.Linear(model.config.hidden_size, 3)
    save_checkpoint(model, tmp_path, "safetensors")
    with pytest.raises(ValueError, match="qa_outputs.weight.*expected \\[2, 42\\], found \\[3, 42\\]"):
        candle_port.RobertaForQuestionAnswering.from_pretrained(tmp_path)


@pytest.mark.parametrize("head", ALL_HEADS)
@pytest.mark.parametrize("family", FAMILIES)
def test_hidden_states_and_attentions(checkpoint, family, head):
    config_name = "h60-5heads" if family == "roberta" else "h48-3heads"
    directory, model = checkpoint(family, head, config_name)
    ids, mask, types = padded_batch(ROBERTA_CONFIGS[config_name], lengths=[9, 28, 3, 17])
    ours_model = candle_class(family, head).from_pretrained(directory)
    ours = ours_model(ids, mask, types, output_hidden_states=True, output_attentions=True)
    expected = reference(model, ids, mask, types, output_hidden_states=True, output_attentions=True)
    main = MAIN_OUTPUTS.get(head, ["logits"])
    assert list(ours.keys()) == main + ["hidden_states", "attentions"]
    real = mask.astype(bool)
    layers = model.config.num_hidden_layers
    assert len(ours.hidden_states) == len(expected.hidden_states) == layers + 1
    for i, (mine, theirs) in enumerate(zip(ours.hidden_states, expected.hidden_states)):
        assert_per_token(mine, theirs, real, f"hidden_states[{i}]")
    assert_attentions(ours.attentions, expected.attentions, real)
    # The main outputs do not change when the intermediate ones are asked for.
    plain = ours_model(ids, mask, types)
    assert list(plain.keys()) == [name for name in main if name in ours]
    for name in plain:
        np.testing.assert_array_equal(plain[name], ours[name])
    if head == "base":
        np.testing.assert_array_equal(ours.hidden_states[-1], ours.last_hidden_state)
    only_states = ours_model(ids, mask, types, output_hidden_states=True)
    assert "attentions" not in only_states and len(only_states.hidden_states) == layers + 1


def test_attentions_with_padding_anywhere(checkpoint):
    """Left padding and holes in the mask: each row's probabilities land at its own tokens."""
    directory, model = checkpoint("roberta", "token-classification", "h42-7heads-relu")
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h42-7heads-relu"], lengths=[6, 11, 4])
    mask = np.stack([np.roll(mask[0], 3), mask[1], np.array([1, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0])])
    ours = candle_port.RobertaForTokenClassification.from_pretrained(directory)(
        ids, mask, types, output_attentions=True, output_hidden_states=True
    )
    expected = reference(model, ids, mask, types, output_attentions=True, output_hidden_states=True)
    real = mask.astype(bool)
    assert_attentions(ours.attentions, expected.attentions, real)
    for i, (mine, theirs) in enumerate(zip(ours.hidden_states, expected.hidden_states)):
        assert_per_token(mine, theirs, real, f"hidden_states[{i}]")


@pytest.mark.parametrize("model_class", ["GPT2Model", "GPT2LMHeadModel"])
def test_gpt2_hidden_states_and_attentions(tmp_path, model_class):
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=211, n_positions=64, n_embd=48, n_head=3, n_inner=70, n_layer=3,
        initializer_range=0.2, attn_implementation="eager",
    )
    model = getattr(transformers, model_class)(config).eval()
    model.save_pretrained(tmp_path)
    rng = np.random.RandomState(0)
    ids = rng.randint(0, 211, size=(3, 13))
    mask = np.ones_like(ids)
    mask[1, :5] = 0  # left padding, as generation batches are
    mask[2, :1] = 0
    ours_model = getattr(candle_port, model_class).from_pretrained(tmp_path)
    ours = ours_model(ids, mask, output_hidden_states=True, output_attentions=True)
    expected = reference(model, ids, mask, output_hidden_states=True, output_attentions=True)
    main = "last_hidden_state" if model_class == "GPT2Model" else "logits"
    assert list(ours.keys()) == [main, "hidden_states", "attentions"]
    real = mask.astype(bool)
    assert len(ours.hidden_states) == len(expected.hidden_states) == config.n_layer + 1
    for mine, theirs in zip(ours.hidden_states, expected.hidden_states):
        assert mine.shape == tuple(theirs.shape)
        assert max_abs_diff(mine[real], theirs.numpy()[real]) <= TOLERANCE
    assert len(ours.attentions) == len(expected.attentions) == config.n_layer
    for mine, theirs in zip(ours.attentions, expected.attentions):
        assert mine.shape == tuple(theirs.shape)
        for row in range(3):
            queries = real[row]
            assert max_abs_diff(mine[row][:, queries], theirs.numpy()[row][:, queries]) <= TOLERANCE
    assert list(ours_model(ids, mask).keys()) == [main]


def test_attentions_without_padding(checkpoint):
    directory, model = checkpoint("xlm-roberta", "base", "h48-3heads")
    ids, mask, types = padded_batch(ROBERTA_CONFIGS["h48-3heads"], lengths=[7, 7])
    ours = candle_port.XLMRobertaModel.from_pretrained(directory)(ids, mask, types, output_attentions=True)
    assert_attentions(ours.attentions, reference(model, ids, mask, types, output_attentions=True).attentions, mask.astype(bool))
