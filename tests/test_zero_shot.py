"""pipeline("zero-shot-classification") against transformers' own pipeline on tiny NLI models
with real vocabularies: same labels in the same order, scores within 1e-5; then errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers

import candle_port
from pipeline_models import MAX_POSITIONS, build_nli

TEXTS = [
    "I love Paris and London!",
    "café naïve 😀 Zürich is great",
    "ok",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "東京は日本の首都です。",
]
LABELS = ["travel", "cooking", "dancing", "politics", "science fiction"]

# roberta-large-mnli's labels; entailment first (the contradiction logit is then the last);
# and none that says "entail" (transformers then takes the last logit).
LABEL_SETS = {
    "mnli": {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
    "entailment-first": {0: "entailment", 1: "neutral", 2: "contradiction"},
    "unnamed": {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"},
}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """transformers' pipeline runs one pair per forward: on a shared 2-core machine, torch's
    threads make each tiny forward 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("nli-models")
    built = {
        ("roberta", "mnli"): build_nli(root / "roberta-mnli", "roberta", LABEL_SETS["mnli"]),
        ("xlm-roberta", "entailment-first"): build_nli(root / "xlmr-first", "xlm-roberta", LABEL_SETS["entailment-first"], seed=1),
        ("roberta", "unnamed"): build_nli(root / "roberta-unnamed", "roberta", LABEL_SETS["unnamed"], seed=2),
    }
    return built


def pair(directory, **kwargs):
    ours = candle_port.pipeline("zero-shot-classification", str(directory), batch_size=3, progress=False, **kwargs)
    # The reference tokenizer is told the model's length limit, which the test vocabularies lack.
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, model_max_length=MAX_POSITIONS - 2)
    return ours, transformers.pipeline("zero-shot-classification", model=str(directory), tokenizer=tokenizer, **kwargs)


def assert_same(ours, reference):
    if isinstance(reference, list):
        assert isinstance(ours, list) and len(ours) == len(reference)
        for a, b in zip(ours, reference):
            assert_same(a, b)
        return
    assert ours.keys() == reference.keys()
    assert ours["sequence"] == reference["sequence"]
    assert ours["labels"] == reference["labels"], (ours, reference)
    assert len(ours["scores"]) == len(reference["scores"])
    for a, b in zip(ours["scores"], reference["scores"]):
        assert abs(a - b) <= 1e-5, (ours, reference)


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.mark.parametrize("model", [("roberta", "mnli"), ("xlm-roberta", "entailment-first"), ("roberta", "unnamed")])
@pytest.mark.parametrize("multi_label", [False, True])
def test_matches_transformers(dirs, model, multi_label):
    ours, reference = pair(dirs[model])
    kwargs = dict(candidate_labels=LABELS, multi_label=multi_label)
    expected = reference(TEXTS, **kwargs)
    assert_same(quiet(ours, TEXTS, **kwargs), expected)
    assert_same(quiet(ours, TEXTS[3], **kwargs), reference(TEXTS[3], **kwargs))
    assert_same(quiet(ours, TEXTS[:1], **kwargs), reference(TEXTS[:1], **kwargs))  # a list of one stays a list
    if not multi_label:
        assert all(abs(sum(r["scores"]) - 1) < 1e-6 for r in expected)


def test_label_forms_and_template(dirs):
    ours, reference = pair(dirs[("roberta", "mnli")])
    # Positional labels, a comma-separated string, one label (scored on its own), a template.
    assert_same(ours(TEXTS, LABELS), reference(TEXTS, LABELS))
    assert_same(ours(TEXTS[0], candidate_labels=" travel, cooking ,,dancing"), reference(TEXTS[0], candidate_labels=" travel, cooking ,,dancing"))
    assert_same(ours(TEXTS, candidate_labels=["travel"]), reference(TEXTS, candidate_labels=["travel"]))
    template = "The topic of this text is {}, I think."
    assert_same(
        ours(TEXTS, candidate_labels=LABELS, hypothesis_template=template),
        reference(TEXTS, candidate_labels=LABELS, hypothesis_template=template),
    )
    # Defaults given to pipeline() apply to every call.
    ours_defaults = candle_port.pipeline("zero-shot-classification", dirs[("roberta", "mnli")], candidate_labels=LABELS, multi_label=True)
    assert_same(ours_defaults(TEXTS), reference(TEXTS, candidate_labels=LABELS, multi_label=True))


def test_long_texts_truncate_the_premise_only(dirs):
    ours, reference = pair(dirs[("roberta", "mnli")])
    long_text = " ".join(TEXTS * 8)
    assert len(ours.tokenizer(long_text)["input_ids"]) > MAX_POSITIONS
    kwargs = dict(candidate_labels=LABELS)
    assert_same(ours([long_text, TEXTS[0]], **kwargs), reference([long_text, TEXTS[0]], **kwargs))
    with pytest.raises(ValueError, match="more than the model's limit"):
        ours(long_text, truncation=False, **kwargs)
    # A hypothesis longer than the model takes cannot be helped by truncating the text.
    with pytest.raises(ValueError, match="more than the model's limit"):
        ours(TEXTS[0], candidate_labels=[long_text])


def test_no_entailment_label_warns(dirs):
    ours = candle_port.pipeline("zero-shot-classification", dirs[("roberta", "unnamed")])
    assert ours.entailment_id == -1
    with pytest.warns(UserWarning, match="no label starting with 'entail'"):
        ours(TEXTS[0], candidate_labels=LABELS)
    assert candle_port.pipeline("zero-shot-classification", dirs[("roberta", "mnli")]).entailment_id == 2


def test_bad_input(dirs):
    ours = candle_port.pipeline("zero-shot-classification", dirs[("roberta", "mnli")])
    with pytest.raises(ValueError, match="needs candidate_labels"):
        ours(TEXTS[0])
    for empty in ([], "", " , ,"):
        with pytest.raises(ValueError, match="candidate_labels is empty"):
            ours(TEXTS[0], candidate_labels=empty)
    with pytest.raises(TypeError, match="candidate_labels must be a string or a list of strings"):
        ours(TEXTS[0], candidate_labels=["a", 3])
    with pytest.raises(ValueError, match="has no \\{\\} where the label goes"):
        ours(TEXTS[0], candidate_labels=LABELS, hypothesis_template="No placeholder.")
    with pytest.raises(ValueError, match="cannot be formatted"):
        ours(TEXTS[0], candidate_labels=LABELS, hypothesis_template="{0} and {1}")
    with pytest.raises(ValueError, match="at least one sequence"):
        ours([], candidate_labels=LABELS)
    with pytest.raises(TypeError, match="candidate labels once"):
        ours(TEXTS[0], LABELS, candidate_labels=LABELS)
    with pytest.raises(TypeError, match="string or a list of strings"):
        ours([1], candidate_labels=LABELS)


class _Loaded(Exception):
    pass


def test_default_model(monkeypatch):
    def from_pretrained(name, device, dtype):
        raise _Loaded(name)

    monkeypatch.setattr(candle_port.pipelines.AutoModelForSequenceClassification, "from_pretrained", from_pretrained)
    with pytest.raises(_Loaded, match="FacebookAI/roberta-large-mnli"):
        candle_port.pipeline("zero-shot-classification")
