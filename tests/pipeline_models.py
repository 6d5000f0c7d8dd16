"""Tiny random models with real vocabularies for the pipeline and CLI tests: RoBERTa heads on
GPT-2's BPE in RoBERTa's layout, an XLM-RoBERTa token classifier on a SentencePiece model
trained here, and a GPT-2 with GPT-2's own vocabulary. Built with transformers (fixed seeds),
saved with their tokenizer files so both libraries load the same directory."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from tokenizer_corpus import make_gpt2_dir, make_roberta_dir, make_sentencepiece_dir

ROBERTA_VOCAB = 50262  # GPT-2's 50257 tokens, 4 specials before them and <mask> last
MAX_POSITIONS = 80  # RoBERTa inputs up to 78 tokens
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]

_ROBERTA_HEADS = {
    "classifier": (transformers.RobertaForSequenceClassification, dict(id2label={0: "negative", 1: "neutral", 2: "positive"})),
    "regression": (transformers.RobertaForSequenceClassification, dict(num_labels=1)),
    "masked-lm": (transformers.RobertaForMaskedLM, {}),
    "ner": (transformers.RobertaForTokenClassification, dict(id2label=dict(enumerate(NER_LABELS)))),
    "base": (transformers.RobertaModel, {}),
    "qa": (transformers.RobertaForQuestionAnswering, {}),
}


def _tiny_encoder_config(config_class: type, vocab_size: int, **extra) -> transformers.PretrainedConfig:
    """Tiny layers; large random weights (far-apart logits: no near-ties for argmax / top-k),
    but smaller for taggers, whose tokens would otherwise all get one label."""
    tagger = "O" in extra.get("id2label", {}).values()
    return config_class(
        vocab_size=vocab_size,
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=24,
        num_hidden_layers=2,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=0.1 if tagger else 0.5,
        **extra,
    )


def _save(model: torch.nn.Module, directory: Path) -> Path:
    model.eval().save_pretrained(directory)
    return directory


def build_roberta(head: str, directory: Path, seed: int = 0) -> Path:
    """A RoBERTa `head` ("classifier", "regression", "masked-lm", "ner", "base", "qa") with the
    RoBERTa-style tokenizer, saved in `directory`."""
    make_roberta_dir(directory)
    model_class, labels = _ROBERTA_HEADS[head]
    torch.manual_seed(seed)
    return _save(model_class(_tiny_encoder_config(transformers.RobertaConfig, ROBERTA_VOCAB, **labels)), directory)


def build_xlmr_ner(directory: Path, seed: int = 0) -> Path:
    """An XLM-RoBERTa token classifier on a SentencePiece unigram vocabulary."""
    make_sentencepiece_dir(directory, "unigram")
    vocab_size = len(transformers.AutoTokenizer.from_pretrained(directory))
    config = _tiny_encoder_config(transformers.XLMRobertaConfig, vocab_size, id2label=dict(enumerate(NER_LABELS)))
    torch.manual_seed(seed)
    return _save(transformers.XLMRobertaForTokenClassification(config), directory)


def build_xlmr_qa(directory: Path, seed: int = 0) -> Path:
    """An XLM-RoBERTa question-answering head on a SentencePiece unigram vocabulary, saved as
    transformers 5's tokenizer.json too: transformers 4.57 (the QA pipeline's reference) builds
    another tokenizer from sentencepiece.bpe.model alone (offsets that take in the space before
    a word), while both load tokenizer.json the same (transformers 5's tokenizer_config.json is
    not for 4.57, so only tokenizer.json is written)."""
    make_sentencepiece_dir(directory, "unigram")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.backend_tokenizer.save(str(directory / "tokenizer.json"))
    vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    return _save(transformers.XLMRobertaForQuestionAnswering(_tiny_encoder_config(transformers.XLMRobertaConfig, vocab_size)), directory)


def build_nli(directory: Path, family: str, id2label: dict, seed: int = 0) -> Path:
    """An NLI sequence classifier (labels ``id2label``, and ``label2id`` as NLI checkpoints have
    it): RoBERTa on the RoBERTa-style BPE, or XLM-RoBERTa on a SentencePiece unigram
    vocabulary."""
    labels = dict(id2label=id2label, label2id={label: i for i, label in id2label.items()})
    if family == "roberta":
        make_roberta_dir(directory)
        config = _tiny_encoder_config(transformers.RobertaConfig, ROBERTA_VOCAB, **labels)
        model_class = transformers.RobertaForSequenceClassification
    else:
        make_sentencepiece_dir(directory, "unigram")
        vocab_size = len(transformers.AutoTokenizer.from_pretrained(directory))
        config = _tiny_encoder_config(transformers.XLMRobertaConfig, vocab_size, **labels)
        model_class = transformers.XLMRobertaForSequenceClassification
    torch.manual_seed(seed)
    return _save(model_class(config), directory)


def build_gpt2(directory: Path, seed: int = 0) -> Path:
    """A GPT-2 with GPT-2's vocabulary (50257) and 32-wide layers."""
    make_gpt2_dir(directory)
    config = transformers.GPT2Config(n_embd=32, n_head=2, n_layer=2, n_positions=64, initializer_range=0.5)
    torch.manual_seed(seed)
    return _save(transformers.GPT2LMHeadModel(config), directory)


def assert_same_records(ours, reference, score_key="score"):
    """Nested lists of dicts: equal except scores, which agree within 1e-4."""
    if isinstance(reference, list):
        assert isinstance(ours, list) and len(ours) == len(reference)
        for a, b in zip(ours, reference):
            assert_same_records(a, b, score_key)
        return
    assert ours.keys() == reference.keys()
    for key, expected in reference.items():
        if key == score_key:
            assert abs(ours[key] - float(expected)) < 1e-4, (ours, reference)
        else:
            assert ours[key] == expected, (key, ours, reference)
