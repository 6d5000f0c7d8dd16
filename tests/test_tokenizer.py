"""candle_port.Tokenizer against transformers' AutoTokenizer on the same files, over five
vocabularies: GPT-2's byte-level BPE, a RoBERTa-style copy (vocab.json + merges.txt and
transformers' tokenizer.json), and SentencePiece unigram and BPE models (XLM-R layout)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer as ReferenceTokenizer

import candle_port
from tokenizer_corpus import (
    CORPUS,
    make_gpt2_dir,
    make_roberta_dir,
    make_sentencepiece_dir,
    make_tokenizer_json_dir,
)

VOCABULARIES = ["gpt2", "roberta", "roberta-json", "spm-unigram", "spm-bpe"]
# Those with a padding token (GPT-2 has none).
PADDED = [v for v in VOCABULARIES if v != "gpt2"]
PAIRS = list(zip(CORPUS[::2], CORPUS[1::2][::-1]))


@pytest.fixture(scope="session")
def vocab_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocabularies")
    roberta = make_roberta_dir(root / "roberta")
    return {
        "gpt2": make_gpt2_dir(root / "gpt2"),
        "roberta": roberta,
        "roberta-json": make_tokenizer_json_dir(roberta, root / "roberta-json"),
        "spm-unigram": make_sentencepiece_dir(root / "spm-unigram", "unigram"),
        "spm-bpe": make_sentencepiece_dir(root / "spm-bpe", "bpe"),
    }


@pytest.fixture(scope="session")
def loaded(vocab_dirs):
    """name -> (ours, transformers'), loaded once."""
    return {
        name: (candle_port.Tokenizer.from_pretrained(path), ReferenceTokenizer.from_pretrained(path))
        for name, path in vocab_dirs.items()
    }


def assert_same_encoding(ours, reference):
    assert sorted(ours.keys()) == sorted(reference.keys())
    for name, expected in reference.items():
        if isinstance(expected, np.ndarray):
            assert ours[name].dtype == expected.dtype, name
            np.testing.assert_array_equal(ours[name], expected, err_msg=name)
        else:
            assert ours[name] == expected, name


def first_mismatch(ours_rows, reference_rows, texts):
    """The first text whose ids differ, for a readable failure."""
    for text, a, b in zip(texts, ours_rows, reference_rows):
        if list(a) != list(b):
            return text, list(a), list(b)
    return None


@pytest.mark.parametrize("name", VOCABULARIES)
def test_batch_ids_match(loaded, name):
    ours, reference = loaded[name]
    got, expected = ours(CORPUS), reference(CORPUS)
    assert first_mismatch(got["input_ids"], expected["input_ids"], CORPUS) is None
    assert_same_encoding(got, expected)


@pytest.mark.parametrize("name", VOCABULARIES)
def test_single_text_matches(loaded, name):
    ours, reference = loaded[name]
    for text in CORPUS[:80]:
        assert_same_encoding(ours(text), reference(text))
        assert ours.encode(text) == reference.encode(text), text


@pytest.mark.parametrize("name", VOCABULARIES)
def test_without_special_tokens(loaded, name):
    ours, reference = loaded[name]
    got = ours(CORPUS, add_special_tokens=False)["input_ids"]
    assert got == reference(CORPUS, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("name", VOCABULARIES)
def test_pairs_match(loaded, name):
    ours, reference = loaded[name]
    firsts, seconds = map(list, zip(*PAIRS))
    assert_same_encoding(ours(firsts, seconds), reference(firsts, seconds))
    text, pair = PAIRS[10]
    assert_same_encoding(ours(text, pair), reference(text, pair))


@pytest.mark.parametrize("name", VOCABULARIES)
@pytest.mark.parametrize("max_length", [4, 7, 16, 64])
def test_truncation_matches(loaded, name, max_length):
    ours, reference = loaded[name]
    firsts, seconds = map(list, zip(*PAIRS))
    kwargs = dict(truncation=True, max_length=max_length)
    assert_same_encoding(ours(CORPUS, **kwargs), reference(CORPUS, **kwargs))
    assert_same_encoding(ours(firsts, seconds, **kwargs), reference(firsts, seconds, **kwargs))
    assert max(len(ids) for ids in ours(CORPUS, **kwargs)["input_ids"]) == max_length


@pytest.mark.parametrize("name", PADDED)
def test_padding_longest_matches(loaded, name):
    ours, reference = loaded[name]
    texts = CORPUS[:60]
    got = ours(texts, padding=True, return_tensors="np")
    assert_same_encoding(got, reference(texts, padding=True, return_tensors="np"))
    assert got["input_ids"].dtype == np.int64 and (got["attention_mask"] == 0).any()
    assert_same_encoding(ours(texts, padding="longest"), reference(texts, padding="longest"))


@pytest.mark.parametrize("name", PADDED)
def test_padding_max_length_with_truncation_matches(loaded, name):
    ours, reference = loaded[name]
    firsts, seconds = map(list, zip(*PAIRS))
    kwargs = dict(padding="max_length", truncation=True, max_length=24, return_tensors="np")
    got = ours(firsts, seconds, **kwargs)
    assert got["input_ids"].shape == (len(firsts), 24)
    assert_same_encoding(got, reference(firsts, seconds, **kwargs))


def variant(vocab_dirs, tmp_path, name: str, file_name: str, content: dict) -> Path:
    """A copy of a vocabulary directory with one more JSON config file."""
    directory = copy_dir(vocab_dirs[name], tmp_path / name)
    (directory / file_name).write_text(json.dumps(content))
    return directory


@pytest.mark.parametrize("name", ["roberta", "spm-unigram"])
def test_left_padding_from_tokenizer_config(vocab_dirs, tmp_path, name):
    directory = variant(vocab_dirs, tmp_path, name, "tokenizer_config.json", {"padding_side": "left"})
    ours, reference = candle_port.Tokenizer.from_pretrained(directory), ReferenceTokenizer.from_pretrained(directory)
    assert ours.padding_side == reference.padding_side == "left"
    got = ours(CORPUS[:20], padding=True, return_tensors="np")
    assert got["attention_mask"][:, 0].min() == 0
    assert_same_encoding(got, reference(CORPUS[:20], padding=True, return_tensors="np"))


MASK_LSTRIP = {
    "__type": "AddedToken",
    "content": "<mask>",
    "lstrip": True,
    "rstrip": False,
    "normalized": False,
    "single_word": False,
}


# Metaspace drops the spaces around <mask> either way, so lstrip only shows in byte-level BPE.
@pytest.mark.parametrize(
    "name, file_name, lstrip_shows",
    [("roberta", "special_tokens_map.json", True), ("spm-unigram", "tokenizer_config.json", False)],
)
def test_mask_token_options_from_config(loaded, vocab_dirs, tmp_path, name, file_name, lstrip_shows):
    directory = variant(vocab_dirs, tmp_path, name, file_name, {"mask_token": MASK_LSTRIP})
    ours, reference = candle_port.Tokenizer.from_pretrained(directory), ReferenceTokenizer.from_pretrained(directory)
    texts = [t for t in CORPUS if "<mask>" in t]
    assert ours(texts)["input_ids"] == reference(texts)["input_ids"]
    plain, _ = loaded[name]
    assert (ours(texts)["input_ids"] != plain(texts)["input_ids"]) == lstrip_shows


def test_truncation_and_padding_in_tokenizer_json_are_per_call(vocab_dirs, tmp_path):
    import tokenizers

    directory = copy_dir(vocab_dirs["roberta-json"], tmp_path / "preset")
    backend = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    backend.enable_truncation(max_length=6)
    backend.enable_padding(pad_id=1, pad_token="<pad>", length=40)
    backend.save(str(directory / "tokenizer.json"))
    ours, reference = candle_port.Tokenizer.from_pretrained(directory), ReferenceTokenizer.from_pretrained(directory)
    texts = CORPUS[:40]
    assert_same_encoding(ours(texts), reference(texts))
    assert_same_encoding(ours(texts, padding=True), reference(texts, padding=True))
    assert len({len(ids) for ids in ours(texts)["input_ids"]}) > 1


def test_padding_without_pad_token_raises(loaded):
    ours, reference = loaded["gpt2"]
    with pytest.raises(ValueError):
        reference(CORPUS[:3], padding=True)
    with pytest.raises(ValueError, match="padding token"):
        ours(CORPUS[:3], padding=True)


@pytest.mark.parametrize("name", VOCABULARIES)
@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_decode_matches(loaded, name, skip_special_tokens):
    ours, reference = loaded[name]
    rows = reference(CORPUS)["input_ids"]
    assert ours.batch_decode(rows, skip_special_tokens=skip_special_tokens) == reference.batch_decode(
        rows, skip_special_tokens=skip_special_tokens
    )
    assert ours.decode(rows[30], skip_special_tokens) == reference.decode(rows[30], skip_special_tokens)


@pytest.mark.parametrize("name", ["gpt2", "roberta"])
def test_byte_level_decode_round_trips(loaded, name):
    ours, _ = loaded[name]
    rows = ours(CORPUS, add_special_tokens=False)["input_ids"]
    assert ours.batch_decode(rows) == CORPUS


@pytest.mark.parametrize("name", VOCABULARIES)
def test_vocabulary_and_special_tokens_match(loaded, name):
    ours, reference = loaded[name]
    assert ours.vocab_size == reference.vocab_size
    assert len(ours) == len(reference)
    for attribute in ("bos", "eos", "unk", "pad", "mask"):
        assert getattr(ours, f"{attribute}_token") == getattr(reference, f"{attribute}_token"), attribute
        assert getattr(ours, f"{attribute}_token_id") == getattr(reference, f"{attribute}_token_id"), attribute
    ids = reference(CORPUS[40])["input_ids"] + [len(reference) - 1]
    tokens = reference.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(ids) == tokens
    assert ours.convert_ids_to_tokens(ids[0]) == tokens[0]
    assert ours.convert_tokens_to_ids(tokens) == reference.convert_tokens_to_ids(tokens)
    assert ours.convert_tokens_to_ids("surely-not-a-token") == reference.convert_tokens_to_ids("surely-not-a-token")


@pytest.mark.parametrize("name", VOCABULARIES)
def test_saved_tokenizer_loads_in_transformers(loaded, tmp_path, name):
    ours, reference = loaded[name]
    files = ours.save_pretrained(tmp_path)
    assert all(os.path.isfile(f) for f in files)
    reloaded_reference = ReferenceTokenizer.from_pretrained(tmp_path)
    reloaded = candle_port.AutoTokenizer.from_pretrained(tmp_path)
    expected = reference(CORPUS, add_special_tokens=True)["input_ids"]
    assert reloaded_reference(CORPUS)["input_ids"] == expected
    assert reloaded(CORPUS)["input_ids"] == expected
    assert reloaded.model_max_length == ours.model_max_length


def test_roberta_family_defaults_to_512_positions(loaded):
    ours, _ = loaded["roberta"]
    assert ours.model_max_length == 512
    long_text = CORPUS[-3]
    assert len(ours(long_text)["input_ids"]) > 512
    assert len(ours(long_text, truncation=True)["input_ids"]) == 512


def test_max_length_alone_truncates_like_transformers(loaded):
    ours, reference = loaded["gpt2"]
    assert ours(CORPUS[:50], max_length=5)["input_ids"] == reference(CORPUS[:50], max_length=5)["input_ids"]


def test_batch_encoding_reads_as_attributes(loaded):
    ours, _ = loaded["roberta"]
    encoding = ours(["a b", "c"], padding=True, return_tensors="np")
    assert encoding.input_ids is encoding["input_ids"]
    assert encoding.input_ids.shape == encoding.attention_mask.shape == (2, 4)


def test_return_token_type_ids_on_request(loaded):
    ours, reference = loaded["roberta"]
    kwargs = dict(return_token_type_ids=True, return_attention_mask=False)
    assert_same_encoding(ours("a", "b", **kwargs), reference("a", "b", **kwargs))


def test_unpadded_ragged_batch_cannot_be_numpy(loaded):
    ours, _ = loaded["roberta"]
    with pytest.raises(ValueError, match="different lengths"):
        ours(["a", "a b c"], return_tensors="np")


# --- bad inputs --------------------------------------------------------------------------------


def copy_dir(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        candle_port.Tokenizer.from_pretrained(tmp_path / "absent")


def test_directory_without_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        candle_port.Tokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("missing", ["vocab.json", "merges.txt"])
def test_vocab_without_merges_or_merges_without_vocab(vocab_dirs, tmp_path, missing):
    directory = copy_dir(vocab_dirs["roberta"], tmp_path / "bad")
    (directory / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing):
        candle_port.Tokenizer.from_pretrained(directory)


def test_malformed_vocab_json(vocab_dirs, tmp_path):
    directory = copy_dir(vocab_dirs["roberta"], tmp_path / "bad")
    (directory / "vocab.json").write_text('{"a": 0, "b": ')
    with pytest.raises(ValueError, match="vocab.json"):
        candle_port.Tokenizer.from_pretrained(directory)


def test_malformed_merges_line(vocab_dirs, tmp_path):
    directory = copy_dir(vocab_dirs["gpt2"], tmp_path / "bad")
    (directory / "merges.txt").write_text("#version: 0.2\nĠ t\nthree tokens here\n")
    with pytest.raises(ValueError, match=r"merges.txt line 3"):
        candle_port.Tokenizer.from_pretrained(directory)


def test_merges_not_in_vocab(vocab_dirs, tmp_path):
    directory = copy_dir(vocab_dirs["gpt2"], tmp_path / "bad")
    (directory / "merges.txt").write_text("#version: 0.2\nnot_a_token neither\n")
    with pytest.raises(ValueError, match="merges.txt"):
        candle_port.Tokenizer.from_pretrained(directory)


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: np.random.default_rng(0).bytes(len(data)), id="random-bytes"),
        pytest.param(lambda data: b"this is a text file, not a model\n" * 10, id="text"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_bad_sentencepiece_model(vocab_dirs, tmp_path, corrupt):
    directory = copy_dir(vocab_dirs["spm-unigram"], tmp_path / "bad")
    model = directory / "sentencepiece.bpe.model"
    model.write_bytes(corrupt(model.read_bytes()))
    with pytest.raises(ValueError, match="sentencepiece.bpe.model"):
        candle_port.Tokenizer.from_pretrained(directory)


def test_bad_arguments(loaded):
    ours, _ = loaded["roberta"]
    with pytest.raises(ValueError, match="padding"):
        ours("a", padding="sideways")
    with pytest.raises(ValueError, match="return_tensors"):
        ours("a", return_tensors="pt")
    with pytest.raises(ValueError, match="no room"):
        ours("a b c", "d e f", truncation=True, max_length=3)
    with pytest.raises(TypeError):
        ours(["a", 3])


OFFSET_TEXTS = [
    "café naïve 😀 Zürich",
    "emoji 👨‍👩‍👧‍👦 and   spaces ",
    "東京は日本の首都です。",
    "Paris is the <mask> of France.",
    "  leading",
]


@pytest.mark.parametrize("name", VOCABULARIES)
def test_offsets_and_special_tokens_mask_match_transformers(loaded, name):
    """Character offsets (not bytes) and the special-tokens mask, one text at a time (lists)
    and as a padded, truncated numpy batch."""
    ours, reference = loaded[name]
    wanted = dict(return_offsets_mapping=True, return_special_tokens_mask=True)
    for text in OFFSET_TEXTS:
        assert_same_encoding(ours(text, **wanted), reference(text, **wanted))
    if name in PADDED:
        batch = dict(padding=True, truncation=True, max_length=9, return_tensors="np", **wanted)
        assert_same_encoding(ours(OFFSET_TEXTS, **batch), reference(OFFSET_TEXTS, **batch))


@pytest.mark.parametrize("name", VOCABULARIES)
def test_convert_tokens_to_string_matches_transformers(loaded, name):
    ours, reference = loaded[name]
    for text in OFFSET_TEXTS:
        tokens = ours.convert_ids_to_tokens(ours(text, add_special_tokens=False)["input_ids"])
        assert ours.convert_tokens_to_string(tokens[1:]) == reference.convert_tokens_to_string(tokens[1:])
