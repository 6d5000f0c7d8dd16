"""transformers' ``generate`` options beyond greedy decoding and plain sampling, against
transformers on tiny random GPT-2s: beam search (``num_beams``, ``length_penalty``,
``early_stopping``, ``num_return_sequences``), ``no_repeat_ngram_size``, ``min_new_tokens`` /
``min_length``, ``bad_words_ids``, ``typical_p`` / ``min_p``, ``output_scores`` with
``return_dict_in_generate``, and ``stop_strings`` — single prompts and left-padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import candle_port
from pipeline_models import build_gpt2
from test_gpt2 import PAD, VOCAB, build_reference, left_padded_batch


@pytest.fixture(scope="module")
def reference():
    return build_reference("gelu_new")


@pytest.fixture(scope="module")
def model(reference, tmp_path_factory):
    directory = tmp_path_factory.mktemp("gen") / "gpt2"
    reference.save_pretrained(directory)
    return candle_port.AutoModelForCausalLM.from_pretrained(directory)


def run_both(reference, model, ids, mask, **kwargs):
    with torch.no_grad():
        theirs = reference.generate(
            torch.tensor(ids), attention_mask=torch.tensor(mask), pad_token_id=PAD, **kwargs
        )
    ours = model.generate(ids, attention_mask=mask, pad_token_id=PAD, **kwargs)
    return ours, theirs


def single_prompt():
    ids = np.array([[5, 17, 42, 9, 100]])
    return ids, np.ones_like(ids)


def frequent_token(model, ids, mask):
    """A token greedy decoding produces early in the first row, to serve as eos: rows then
    finish at different steps."""
    generated = model.generate(ids, attention_mask=mask, max_new_tokens=6, eos_token_id=None)
    return int(generated[0, ids.shape[1] + 2])


BEAM_CASES = {
    "beams-4": dict(num_beams=4, max_new_tokens=12),
    "beams-3-return-2-short": dict(num_beams=3, num_return_sequences=2, length_penalty=0.3, max_new_tokens=10),
    "beams-5-return-5": dict(num_beams=5, num_return_sequences=5, max_new_tokens=8),
    "beams-2-ngram-penalty": dict(num_beams=2, no_repeat_ngram_size=3, repetition_penalty=1.3, max_new_tokens=12),
    "beams-4-eos-early": dict(num_beams=4, early_stopping=True, max_new_tokens=10, eos="frequent"),
    "beams-4-eos-heuristic": dict(num_beams=4, early_stopping=False, length_penalty=-0.5, max_new_tokens=10, eos="frequent"),
    "beams-4-eos-never": dict(num_beams=4, early_stopping="never", length_penalty=2.0, max_new_tokens=10, eos="frequent"),
    "beams-3-min-new-bad-words": dict(num_beams=3, min_new_tokens=4, bad_words_ids=[[7], [42, 9]], max_new_tokens=8, eos="frequent"),
}


# Every case on a left-padded batch, some on a single prompt too (transformers' beam search is
# slow enough on two shared cores to keep the list short).
BEAM_RUNS = [(case, left_padded_batch) for case in BEAM_CASES] + [
    (case, single_prompt) for case in ("beams-4", "beams-3-return-2-short", "beams-4-eos-early")
]


@pytest.mark.parametrize("case, prompt", BEAM_RUNS)
def test_beam_search_matches_transformers(reference, model, prompt, case):
    ids, mask = prompt()
    kwargs = dict(BEAM_CASES[case])
    if kwargs.pop("eos", None):
        kwargs["eos_token_id"] = frequent_token(model, ids, mask)
    ours, theirs = run_both(reference, model, ids, mask, **kwargs)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours, theirs.numpy())


GREEDY_CASES = {
    "no-repeat-2": dict(no_repeat_ngram_size=2, max_new_tokens=20),
    "no-repeat-1": dict(no_repeat_ngram_size=1, max_new_tokens=12),
    "min-new-tokens": dict(min_new_tokens=5, max_new_tokens=8, eos="frequent"),
    "min-length": dict(min_length=11, max_new_tokens=8, eos="frequent"),
    "bad-words": dict(bad_words_ids=[[3], [17, 42], [10, 11, 12]], max_new_tokens=10),
    "penalty-and-padding": dict(repetition_penalty=1.5, no_repeat_ngram_size=3, max_new_tokens=12),
}


@pytest.mark.parametrize("prompt", [single_prompt, left_padded_batch])
@pytest.mark.parametrize("case", list(GREEDY_CASES))
def test_greedy_options_match_transformers(reference, model, prompt, case):
    ids, mask = prompt()
    kwargs = dict(GREEDY_CASES[case])
    if kwargs.pop("eos", None):
        kwargs["eos_token_id"] = frequent_token(model, ids, mask)
    ours, theirs = run_both(reference, model, ids, mask, **kwargs)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_bad_words_are_never_generated(model):
    ids, mask = left_padded_batch()
    free = model.generate(ids, attention_mask=mask, max_new_tokens=10)
    banned = sorted({int(t) for t in free[:, ids.shape[1]:].ravel()})[:3]
    constrained = model.generate(ids, attention_mask=mask, max_new_tokens=10, bad_words_ids=[[t] for t in banned])
    assert not set(banned) & set(constrained[:, ids.shape[1]:].ravel().tolist())


def comparable(scores):
    return np.where(np.isinf(scores), -1e30, scores)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(typical_p=0.6),
        dict(min_p=0.2),
        dict(temperature=0.7, top_k=20, top_p=0.9, min_p=0.05, typical_p=0.95),
        dict(temperature=1.3, top_k=0, typical_p=0.3),
    ],
)
def test_sampling_filters_keep_the_tokens_transformers_keeps(reference, model, kwargs):
    """Sampled tokens depend on the random generator, so the warpers are checked on the
    scores of the first step (the same logits on both sides): the same tokens survive, with the
    same values."""
    ids, mask = left_padded_batch()
    options = dict(do_sample=True, max_new_tokens=1, return_dict_in_generate=True, output_scores=True, **kwargs)
    ours, theirs = run_both(reference, model, ids, mask, **options)
    ours_scores, their_scores = ours.scores[0], theirs.scores[0].numpy()
    np.testing.assert_array_equal(np.isinf(ours_scores), np.isinf(their_scores))
    assert np.isinf(their_scores).any(axis=1).all()  # every filter removed something
    assert np.abs(comparable(ours_scores) - comparable(their_scores)).max() <= 1e-4


def test_sampling_options_are_reproducible_and_filtered(model):
    ids, mask = left_padded_batch()
    options = dict(do_sample=True, max_new_tokens=10, typical_p=0.5, min_p=0.1, seed=3)
    first = model.generate(ids, attention_mask=mask, num_return_sequences=3, **options)
    assert first.shape == (9, ids.shape[1] + 10)
    np.testing.assert_array_equal(first, model.generate(ids, attention_mask=mask, num_return_sequences=3, **options))
    np.testing.assert_array_equal(first[0::3, : ids.shape[1]], ids)
    beams = dict(do_sample=True, num_beams=3, num_return_sequences=2, max_new_tokens=8, seed=5)
    sampled_beams = model.generate(ids, attention_mask=mask, **beams)
    assert sampled_beams.shape[0] == 6
    np.testing.assert_array_equal(sampled_beams, model.generate(ids, attention_mask=mask, **beams))


def test_scores_match_transformers_greedy(reference, model):
    ids, mask = left_padded_batch()
    options = dict(max_new_tokens=6, return_dict_in_generate=True, output_scores=True, repetition_penalty=1.2)
    options["eos_token_id"] = frequent_token(model, ids, mask)
    ours, theirs = run_both(reference, model, ids, mask, **options)
    assert isinstance(ours, candle_port.GenerateDecoderOnlyOutput)
    np.testing.assert_array_equal(ours.sequences, theirs.sequences.numpy())
    assert len(ours.scores) == len(theirs.scores)
    for a, b in zip(ours.scores, theirs.scores):
        assert a.shape == tuple(b.shape) and a.dtype == np.float32
        assert np.abs(comparable(a) - comparable(b.numpy())).max() <= 1e-4


def test_scores_match_transformers_beam_search(reference, model):
    ids, mask = left_padded_batch()
    options = dict(num_beams=3, num_return_sequences=2, max_new_tokens=7, return_dict_in_generate=True, output_scores=True)
    options["eos_token_id"] = frequent_token(model, ids, mask)
    ours, theirs = run_both(reference, model, ids, mask, **options)
    assert isinstance(ours, candle_port.GenerateBeamDecoderOnlyOutput)
    np.testing.assert_array_equal(ours.sequences, theirs.sequences.numpy())
    np.testing.assert_array_equal(ours.beam_indices, theirs.beam_indices.numpy())
    assert np.abs(ours.sequences_scores - theirs.sequences_scores.numpy()).max() <= 1e-4
    assert len(ours.scores) == len(theirs.scores)
    for a, b in zip(ours.scores, theirs.scores):
        assert np.abs(comparable(a) - comparable(b.numpy())).max() <= 1e-4
    plain = model.generate(ids, attention_mask=mask, pad_token_id=PAD, **{**options, "return_dict_in_generate": False})
    np.testing.assert_array_equal(plain, ours.sequences)


@pytest.fixture(scope="module")
def gpt2_with_vocab(tmp_path_factory):
    """A tiny GPT-2 with GPT-2's real vocabulary, loaded by both libraries."""
    directory = build_gpt2(tmp_path_factory.mktemp("stop") / "gpt2")
    reference = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    return (
        candle_port.AutoModelForCausalLM.from_pretrained(directory),
        candle_port.AutoTokenizer.from_pretrained(directory),
        reference,
        transformers.AutoTokenizer.from_pretrained(directory),
    )


def stop_strings_from(tokenizer, generated, prompt_len):
    """Stop strings that end inside generated tokens: a piece spanning two tokens, a piece
    inside one token, and one that never appears."""
    tokens = [tokenizer.decode([t]) for t in generated[prompt_len:]]
    spanning = (tokens[2] + tokens[3])[-3:] if len(tokens[3]) > 1 else tokens[2][-2:] + tokens[3]
    return [spanning, tokens[5][1:] or tokens[5], "never appears ✓"]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_stop_strings_match_transformers(gpt2_with_vocab, num_beams):
    model, tokenizer, reference, reference_tokenizer = gpt2_with_vocab
    texts = ["The weather today is", "Once upon a time"]
    reference_tokenizer.pad_token = reference_tokenizer.eos_token
    reference_tokenizer.padding_side = "left"
    encoded = reference_tokenizer(texts, return_tensors="np", padding=True)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    free = model.generate(ids[:1], attention_mask=mask[:1], max_new_tokens=12, num_beams=num_beams)
    for stop in stop_strings_from(tokenizer, free[0].tolist(), ids.shape[1]):
        options = dict(max_new_tokens=12, num_beams=num_beams, stop_strings=stop, pad_token_id=reference_tokenizer.eos_token_id)
        with torch.no_grad():
            theirs = reference.generate(
                torch.tensor(ids), attention_mask=torch.tensor(mask), tokenizer=reference_tokenizer, **options
            ).numpy()
        ours = model.generate(ids, attention_mask=mask, tokenizer=tokenizer, **options)
        np.testing.assert_array_equal(ours, theirs, err_msg=repr(stop))
    assert ours.shape[1] == ids.shape[1] + 12  # the last stop string never matched


def test_stream_stops_at_stop_strings_like_generate(gpt2_with_vocab):
    model, tokenizer, _, _ = gpt2_with_vocab
    ids = np.array([tokenizer.encode("The weather today is")])
    free = model.generate(ids, max_new_tokens=10)
    stop = stop_strings_from(tokenizer, free[0].tolist(), ids.shape[1])[0]
    generated = model.generate(ids, max_new_tokens=10, stop_strings=[stop], tokenizer=tokenizer)
    steps = list(model.stream(ids, max_new_tokens=10, stop_strings=[stop], tokenizer=tokenizer))
    np.testing.assert_array_equal(np.stack(steps, axis=1), generated[:, ids.shape[1]:])
    assert generated.shape[1] < ids.shape[1] + 10
    assert tokenizer.decode(generated[0, ids.shape[1]:]).endswith(stop) or stop in tokenizer.decode(generated[0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_beams=0), "num_beams"),
        (dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
        (dict(num_return_sequences=2), "Greedy methods"),
        (dict(num_beams=2, early_stopping="sometimes"), "early_stopping"),
        (dict(do_sample=True, typical_p=0.0), "typical_p"),
        (dict(do_sample=True, min_p=1.5), "min_p"),
        (dict(bad_words_ids=[[VOCAB + 3]]), "vocabulary size"),
        (dict(bad_words_ids=[[]]), "bad_words_ids"),
        (dict(stop_strings="stop"), "tokenizer"),
        (dict(stop_strings=[]), "stop_strings"),
    ],
)
def test_bad_options_raise_value_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.generate([[1, 2, 3]], **kwargs)


def test_stream_refuses_what_cannot_stream(model):
    with pytest.raises(ValueError, match="beam search"):
        model.stream([[1, 2, 3]], num_beams=2)
    with pytest.raises(ValueError, match="return_dict_in_generate"):
        model.stream([[1, 2, 3]], return_dict_in_generate=True, output_scores=True)
    with pytest.raises(TypeError, match="candle_port Tokenizer"):
        model.generate([[1, 2, 3]], stop_strings="x", tokenizer=object())
