"""Truncation strategies, overflowing windows with a stride and token alignment
(``sequence_ids`` / ``word_ids``) against transformers' fast tokenizers on the same files:
what question answering, zero-shot and long-text NER are built on."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import AutoTokenizer as ReferenceTokenizer

import candle_port
from tokenizer_corpus import CORPUS, make_roberta_dir, make_sentencepiece_dir



def by_length(tokenizer, low, high, count=12):
    """Texts of the corpus with ``low`` to ``high`` tokens."""
    lengths = [len(ids) for ids in tokenizer(CORPUS, add_special_tokens=False)["input_ids"]]
    return [text for text, n in zip(CORPUS, lengths) if low <= n <= high][:count]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("window-vocabularies")
    dirs = {"roberta": make_roberta_dir(root / "roberta"), "spm-unigram": make_sentencepiece_dir(root / "spm", "unigram")}
    return {name: (candle_port.Tokenizer.from_pretrained(d), ReferenceTokenizer.from_pretrained(d)) for name, d in dirs.items()}


def assert_same(ours, reference):
    assert sorted(ours.keys()) == sorted(reference.keys())
    for name, expected in reference.items():
        if isinstance(expected, np.ndarray):
            np.testing.assert_array_equal(ours[name], expected, err_msg=name)
        else:
            assert ours[name] == expected, name
    rows = len(reference["input_ids"]) if isinstance(reference["input_ids"][0], (list, np.ndarray)) else 1
    for row in range(rows):
        assert ours.sequence_ids(row) == reference.sequence_ids(row)
        assert ours.word_ids(row) == reference.word_ids(row)


@pytest.mark.parametrize("name", ["roberta", "spm-unigram"])
@pytest.mark.parametrize("strategy", ["only_second", "only_first", "longest_first"])
@pytest.mark.parametrize("stride", [0, 1, 3])
def test_pair_windows_match(loaded, name, strategy, stride):
    ours, reference = loaded[name]
    short, long = by_length(reference, 2, 8), by_length(reference, 30, 200)
    firsts, seconds = (short, long) if strategy == "only_second" else (long, short)
    kwargs = dict(
        truncation=strategy,
        max_length=24,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_token_type_ids=True,
    )
    expected = reference(firsts, seconds, **kwargs)
    assert len(expected["input_ids"]) > len(firsts), "some pairs should overflow"
    assert_same(ours(firsts, seconds, **kwargs), expected)
    # One pair: a batch of its windows.
    assert_same(ours(firsts[0], seconds[0], **kwargs), reference(firsts[0], seconds[0], **kwargs))


@pytest.mark.parametrize("name", ["roberta", "spm-unigram"])
def test_single_text_windows_match_padded_numpy(loaded, name):
    ours, reference = loaded[name]
    kwargs = dict(truncation=True, max_length=10, stride=4, return_overflowing_tokens=True, padding=True, return_tensors="np")
    texts = by_length(reference, 1, 200)
    assert_same(ours(texts, **kwargs), reference(texts, **kwargs))


def test_alignment_without_windows(loaded):
    ours, reference = loaded["roberta"]
    short, long = by_length(reference, 2, 8, 3), by_length(reference, 30, 200, 3)
    assert_same(ours(short, long, return_offsets_mapping=True), reference(short, long, return_offsets_mapping=True))
    single = ours(long[0], return_offsets_mapping=True)
    assert single.word_ids() == reference(long[0]).word_ids()


def test_only_first_too_short_is_an_error(loaded):
    ours, reference = loaded["roberta"]
    LONG = by_length(reference, 30, 200)
    with pytest.raises(Exception, match="too short"):
        reference("a", LONG[0], truncation="only_first", max_length=8)
    with pytest.raises(ValueError, match="too short"):
        ours("a", LONG[0], truncation="only_first", max_length=8)


def test_stride_errors_are_exceptions_not_panics(loaded):
    ours, reference = loaded["roberta"]
    short, long = by_length(reference, 2, 8, 1)[0], by_length(reference, 30, 200, 1)[0]
    # 4 special tokens and the question leave 5 tokens of the context per window; transformers'
    # tokenizers panic on a stride that long, candle_port names the limit.
    max_length = len(ours(short, add_special_tokens=False)["input_ids"]) + 4 + 5
    with pytest.raises(ValueError, match="stride=5 must be less than the 5 tokens"):
        ours(short, long, truncation="only_second", max_length=max_length, stride=5, return_overflowing_tokens=True)
    assert len(ours(short, long, truncation="only_second", max_length=max_length, stride=4, return_overflowing_tokens=True)["input_ids"]) > 2
    LONG = [long]
    with pytest.raises(ValueError, match="stride must be a non-negative int"):
        ours(LONG[0], truncation=True, max_length=8, stride=-1)
    with pytest.raises(ValueError, match="truncation must be"):
        ours(LONG[0], truncation="only_third")
    with pytest.raises(ValueError, match="return_offsets_mapping=True"):
        ours(LONG[0]).word_ids()
