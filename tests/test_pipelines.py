"""candle_port.pipeline against transformers' own pipeline on the same tiny local models with
real vocabularies: same labels / tokens / words / offsets / texts, scores within 1e-4; then
batching order, truncation, progress output and errors."""

from __future__ import annotations

import numpy as np
import pytest
import transformers

import candle_port
from pipeline_models import MAX_POSITIONS, assert_same_records, build_gpt2, build_roberta, build_xlmr_ner

TEXTS = [
    "I love Paris and London!",
    "café naïve 😀 Zürich is great",
    "ok",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "東京は日本の首都です。",
]
MASKED = ["Paris is the <mask> of France.", "<mask> you", "two <mask> masks <mask> here"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-models")
    built = {head: build_roberta(head, root / head) for head in ("classifier", "regression", "masked-lm", "ner", "base")}
    built["xlmr-ner"] = build_xlmr_ner(root / "xlmr-ner")
    built["gpt2"] = build_gpt2(root / "gpt2")
    return built


def pair(task, directory, **kwargs):
    """(candle_port pipeline, transformers pipeline) on one directory."""
    ours = candle_port.pipeline(task, str(directory), batch_size=2, progress=False, **kwargs)
    return ours, transformers.pipeline(task, model=str(directory), **kwargs)


@pytest.mark.parametrize("top_k", ["unset", 2, None])
def test_text_classification_matches_transformers(dirs, top_k):
    ours, reference = pair("sentiment-analysis", dirs["classifier"])
    kwargs = {} if top_k == "unset" else {"top_k": top_k}
    assert_same_records(ours(TEXTS, **kwargs), reference(TEXTS, **kwargs))
    assert_same_records(ours(TEXTS[1], **kwargs), reference(TEXTS[1], **kwargs))


@pytest.mark.parametrize("function_to_apply", ["sigmoid", "none"])
def test_text_classification_function_to_apply(dirs, function_to_apply):
    ours, reference = pair("text-classification", dirs["classifier"])
    kwargs = dict(top_k=None, function_to_apply=function_to_apply)
    assert_same_records(ours(TEXTS, **kwargs), reference(TEXTS, **kwargs))


def test_single_label_model_scores_with_sigmoid(dirs):
    ours, reference = pair("text-classification", dirs["regression"])
    results = ours(TEXTS)
    assert_same_records(results, reference(TEXTS))
    assert all(0 < r["score"] < 1 for r in results)


def test_fill_mask_matches_transformers(dirs):
    ours, reference = pair("fill-mask", dirs["masked-lm"])
    for text in MASKED:
        assert_same_records(ours(text), reference(text))
    assert_same_records(ours(MASKED, top_k=3), reference(MASKED, top_k=3))
    assert_same_records(ours(MASKED[:1]), reference(MASKED[:1]))  # a one-text list unwrapped, as transformers


def test_fill_mask_without_mask_is_an_error(dirs):
    ours = candle_port.pipeline("fill-mask", dirs["masked-lm"])
    with pytest.raises(ValueError, match="no mask token.*input 1"):
        ours([MASKED[0], "no mask here"])


@pytest.mark.parametrize("model", ["ner", "xlmr-ner"])
@pytest.mark.parametrize("aggregation_strategy", ["none", "simple"])
def test_token_classification_matches_transformers(dirs, model, aggregation_strategy):
    ours, reference = pair("ner", dirs[model], aggregation_strategy=aggregation_strategy)
    expected = reference(TEXTS)
    assert any(expected), "the random model should tag something"
    assert_same_records(ours(TEXTS), expected)
    assert_same_records(ours(TEXTS[1]), reference(TEXTS[1]))


def test_token_classification_ignore_labels(dirs):
    ours, reference = pair("token-classification", dirs["ner"])
    results = ours(TEXTS, ignore_labels=[])
    assert_same_records(results, reference(TEXTS, ignore_labels=[]))
    # Every non-special token is reported: <s> and </s> are skipped.
    assert [len(r) for r in results] == [len(ids) - 2 for ids in ours.tokenizer(TEXTS)["input_ids"]]
    # By default the "O" tokens are dropped.
    assert 0 < sum(map(len, ours(TEXTS))) < sum(map(len, results))


def test_feature_extraction_matches_transformers(dirs):
    ours, reference = pair("feature-extraction", dirs["base"])
    for text, states in zip(TEXTS, ours(TEXTS)):
        expected = np.asarray(reference(text))[0]
        assert states.shape == expected.shape
        assert np.abs(states - expected).max() < 1e-4


def test_pooling_and_normalisation(dirs):
    states = candle_port.pipeline("feature-extraction", dirs["base"])(TEXTS)
    cls = candle_port.pipeline("feature-extraction", dirs["base"], pooling="cls")(TEXTS)
    mean = candle_port.pipeline("feature-extraction", dirs["base"], pooling="mean")(TEXTS)
    embeddings = candle_port.pipeline("embeddings", dirs["base"])(TEXTS)
    for s, c, m, e in zip(states, cls, mean, embeddings):
        np.testing.assert_allclose(c, s[0], atol=1e-6)
        np.testing.assert_allclose(m, s.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(e, m / np.linalg.norm(m), atol=1e-6)
        assert abs(np.linalg.norm(e) - 1) < 1e-5


def test_text_generation_greedy_matches_transformers(dirs):
    ours, reference = pair("text-generation", dirs["gpt2"])
    for text in TEXTS[:3]:
        kwargs = dict(max_new_tokens=8, do_sample=False)
        assert ours(text, **kwargs) == reference(text, **kwargs)
        kwargs["return_full_text"] = False
        assert ours(text, **kwargs) == reference(text, **kwargs)


def test_text_generation_batches_like_single_prompts(dirs):
    """Left padding with eos as pad: each prompt of a mixed-length batch gives its own text."""
    ours = candle_port.pipeline("text-generation", dirs["gpt2"], batch_size=3, max_new_tokens=6)
    assert ours(TEXTS) == [ours(text) for text in TEXTS]


def test_text_generation_sampling_is_seeded(dirs):
    ours = candle_port.pipeline("text-generation", dirs["gpt2"], max_new_tokens=6, do_sample=True, top_k=50)
    first, again, other = ours(TEXTS[0], seed=1), ours(TEXTS[0], seed=1), ours(TEXTS[0], seed=2)
    assert first == again and first != other


@pytest.mark.parametrize("batch_size", [1, 2, 3, 8])
def test_mixed_lengths_come_back_in_order(dirs, batch_size):
    one_by_one = candle_port.pipeline("sentiment-analysis", dirs["classifier"], top_k=None)
    batched = candle_port.pipeline("sentiment-analysis", dirs["classifier"], top_k=None, batch_size=batch_size)
    texts = TEXTS * 2
    results = batched(texts)
    assert len(results) == len(texts)
    for text, result in zip(texts, results):
        assert_same_records(result, one_by_one(text))


def test_long_inputs_are_truncated_to_the_model_limit(dirs):
    ours = candle_port.pipeline("text-classification", dirs["classifier"], top_k=None)
    limit = MAX_POSITIONS - 2
    assert ours.max_input_length == limit
    long_text = "word " * 100
    encoded = ours.tokenizer(long_text, truncation=True, max_length=limit, return_tensors="np")
    assert encoded["input_ids"].shape == (1, limit)
    logits = ours.model(**encoded).logits[0]
    expected = np.exp(logits) / np.exp(logits).sum()
    got = {r["label"]: r["score"] for r in ours(long_text)}
    assert np.allclose([got[ours.model.config.id2label[i]] for i in range(3)], expected, atol=1e-6)


@pytest.mark.parametrize("task", ["text-classification", "fill-mask", "ner", "feature-extraction"])
def test_truncation_false_rejects_long_inputs(dirs, task):
    directory = {"text-classification": "classifier", "fill-mask": "masked-lm", "ner": "ner", "feature-extraction": "base"}[task]
    ours = candle_port.pipeline(task, dirs[directory])
    with pytest.raises(ValueError, match=f"input 1 has .* tokens, more than the model's limit of {MAX_POSITIONS - 2}"):
        ours(["<mask> short", "<mask> " + "word " * 100], truncation=False)


def test_progress_bar(dirs, capsys):
    candle_port.pipeline("text-classification", dirs["classifier"], progress=False)(TEXTS)
    assert capsys.readouterr().err == ""
    candle_port.pipeline("text-classification", dirs["classifier"], progress=True, batch_size=2)(TEXTS)
    err = capsys.readouterr().err
    assert "5/5" in err and err.endswith("\n")


def test_loaded_model_needs_a_tokenizer(dirs):
    model = candle_port.AutoModelForSequenceClassification.from_pretrained(dirs["classifier"])
    with pytest.raises(ValueError, match="tokenizer"):
        candle_port.pipeline("text-classification", model)
    tokenizer = candle_port.Tokenizer.from_pretrained(dirs["classifier"])
    from_objects = candle_port.pipeline("text-classification", model, tokenizer=tokenizer)
    assert from_objects(TEXTS) == candle_port.pipeline("text-classification", dirs["classifier"])(TEXTS)


def test_bad_arguments(dirs):
    with pytest.raises(ValueError, match="unknown task 'summarization'"):
        candle_port.pipeline("summarization", dirs["classifier"])
    with pytest.raises(TypeError, match="unexpected parameter.*top_p"):
        candle_port.pipeline("text-classification", dirs["classifier"], top_p=0.5)
    classify = candle_port.pipeline("text-classification", dirs["classifier"])
    with pytest.raises(TypeError, match="string or a list of strings"):
        classify([1, 2])
    with pytest.raises(ValueError, match="function_to_apply"):
        classify("x", function_to_apply="relu")
    with pytest.raises(ValueError, match="aggregation_strategy"):
        candle_port.pipeline("ner", dirs["ner"])("x", aggregation_strategy="first")
    with pytest.raises(ValueError, match="batch_size"):
        candle_port.pipeline("ner", dirs["ner"], batch_size=0)
    assert classify([]) == []


class _Loaded(Exception):
    pass


@pytest.mark.parametrize(
    "task, auto_class, expected",
    [
        ("sentiment-analysis", "AutoModelForSequenceClassification", "cardiffnlp/twitter-roberta-base-sentiment-latest"),
        ("text-generation", "AutoModelForCausalLM", "openai-community/gpt2"),
        ("fill-mask", "AutoModelForMaskedLM", "FacebookAI/roberta-base"),
        ("embeddings", "AutoModel", "FacebookAI/xlm-roberta-base"),
        ("ner", "AutoModelForTokenClassification", "FacebookAI/xlm-roberta-large-finetuned-conll03-english"),
    ],
)
def test_default_model_is_passed_to_from_pretrained(monkeypatch, task, auto_class, expected):
    def from_pretrained(name, device, dtype):
        raise _Loaded(name, device, dtype)

    monkeypatch.setattr(getattr(candle_port.pipelines, auto_class), "from_pretrained", from_pretrained)
    with pytest.raises(_Loaded) as loaded:
        candle_port.pipeline(task, dtype="float16")
    assert loaded.value.args == (expected, "cpu", "float16")
