"""pipeline("question-answering") against transformers 4.57.6's pipeline (transformers 5 has
none; it runs from its own install in a subprocess, see qa_reference.py) on tiny random QA
models with real vocabularies: the same answers, offsets and order, scores within 1e-5, over
long contexts cut into windows, every option and every input form; then errors."""

from __future__ import annotations

import pytest

import candle_port
from pipeline_models import MAX_POSITIONS, build_roberta, build_xlmr_qa
from qa_reference import reference_answers

LIMIT = MAX_POSITIONS - 2  # the models' token limit, told to the reference tokenizers

SHORT = "My name is Wolfgang and I live in Berlin."
LONG = (
    "The Amazon rainforest covers much of the Amazon basin of South America. This basin "
    "encompasses seven million square kilometres, of which five and a half million are covered "
    "by the rainforest. The region includes territory belonging to nine nations. The majority "
    "of the forest is contained within Brazil, with sixty percent of the rainforest, followed "
    "by Peru with thirteen percent, and Colombia with ten percent. Café owners in Zürich, naïve "
    "tourists and 東京 visitors rarely   go there; the river is long and wide."
)
QUESTIONS = ["Where do I live?", "Which country has most of the forest?", "How large is the basin?"]

CASES = {
    "single": dict(kwargs=dict(question=QUESTIONS[0], context=SHORT)),
    "long-context": dict(kwargs=dict(question=QUESTIONS[1], context=LONG)),
    "small-windows": dict(kwargs=dict(question=QUESTIONS[2], context=LONG, max_seq_len=32, doc_stride=8, top_k=3)),
    "top-k": dict(kwargs=dict(question=QUESTIONS[1], context=LONG, top_k=6)),
    "max-answer-len": dict(kwargs=dict(question=QUESTIONS[2], context=LONG, max_answer_len=2, top_k=3)),
    "impossible": dict(kwargs=dict(question=QUESTIONS[0], context=LONG, handle_impossible_answer=True, top_k=4)),
    "impossible-short": dict(kwargs=dict(question=QUESTIONS[0], context=SHORT, handle_impossible_answer=True)),
    # Every answer of a short context, the empty one among them.
    "impossible-all": dict(kwargs=dict(question=QUESTIONS[0], context=SHORT, handle_impossible_answer=True, top_k=500)),
    "not-aligned": dict(kwargs=dict(question=QUESTIONS[1], context=LONG, align_to_words=False, top_k=4)),
    "max-question-len": dict(kwargs=dict(question=QUESTIONS[1], context=LONG, max_question_len=3)),
    "pairs": dict(kwargs=dict(question=QUESTIONS, context=[SHORT, LONG, LONG], top_k=2)),
    "questions-one-context": dict(kwargs=dict(question=QUESTIONS, context=LONG)),
    "positional": dict(args=[QUESTIONS[0], SHORT]),
    "dict": dict(args=[{"question": QUESTIONS[1], "context": LONG}]),
    "dicts": dict(args=[[{"question": q, "context": c} for q, c in zip(QUESTIONS, [LONG, SHORT, LONG])]]),
    "list-of-one": dict(kwargs=dict(question=[QUESTIONS[0]], context=[SHORT])),
}
XLMR_CASES = ["single", "long-context", "small-windows", "top-k", "impossible", "pairs"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa-models")
    return {"roberta": build_roberta("qa", root / "roberta-qa"), "xlm-roberta": build_xlmr_qa(root / "xlmr-qa", seed=1)}


@pytest.fixture(scope="module")
def expected(dirs, request):
    cache = request.config.cache.mkdir("reference-transformers") if request.config.cache else None
    cases = {f"roberta/{name}": dict(model="roberta", max_length=LIMIT, **case) for name, case in CASES.items()}
    cases.update({f"xlm-roberta/{name}": dict(model="xlm-roberta", max_length=LIMIT, **CASES[name]) for name in XLMR_CASES})
    return reference_answers({family: str(path) for family, path in dirs.items()}, cases, cache)


def assert_same_answers(ours, reference):
    if isinstance(reference, list):
        assert isinstance(ours, list) and len(ours) == len(reference), (ours, reference)
        for a, b in zip(ours, reference):
            assert_same_answers(a, b)
        return
    assert "error" not in reference, reference
    assert ours.keys() == reference.keys()
    assert (ours["answer"], ours["start"], ours["end"]) == (reference["answer"], reference["start"], reference["end"]), (ours, reference)
    assert abs(ours["score"] - reference["score"]) <= 1e-5, (ours, reference)


@pytest.mark.parametrize(
    "family, name", [("roberta", name) for name in CASES] + [("xlm-roberta", name) for name in XLMR_CASES]
)
def test_matches_transformers(dirs, expected, family, name):
    qa = candle_port.pipeline("question-answering", dirs[family], batch_size=3, progress=False)
    case = CASES[name]
    assert_same_answers(qa(*case.get("args", []), **case.get("kwargs", {})), expected[f"{family}/{name}"])


def test_the_empty_answer_is_compared(expected):
    answers = expected["roberta/impossible-all"]
    assert any(a["answer"] == "" and a["start"] == a["end"] == 0 for a in answers) and len(answers) > 20


def test_long_contexts_run_in_several_windows(dirs, expected):
    qa = candle_port.pipeline("question-answering", dirs["roberta"])
    spans, owners = qa._spans([(QUESTIONS[2], LONG)], 32, 8)
    assert len(spans) > 4 and set(owners) == {0}
    # Answers from several windows, with offsets into the whole context.
    answers = qa(question=QUESTIONS[2], context=LONG, max_seq_len=32, doc_stride=8, top_k=3)
    assert all(LONG[a["start"] : a["end"]] == a["answer"] for a in answers)
    assert max(a["end"] for a in expected["roberta/top-k"]) > len(LONG) // 3


def test_batches_give_the_results_of_single_calls(dirs):
    qa = candle_port.pipeline("question-answering", dirs["roberta"], batch_size=2, top_k=2)
    together = qa(question=QUESTIONS, context=[LONG, SHORT, LONG])
    assert together == [qa(question=q, context=c) for q, c in zip(QUESTIONS, [LONG, SHORT, LONG])]


def test_bad_input(dirs):
    qa = candle_port.pipeline("question-answering", dirs["roberta"])
    with pytest.raises(ValueError, match="got no context"):
        qa(question=QUESTIONS[0])
    with pytest.raises(ValueError, match="got no question"):
        qa(context=SHORT)
    with pytest.raises(ValueError, match="needs a question and a context"):
        qa()
    with pytest.raises(ValueError, match="the context of input 0 is empty"):
        qa(question=QUESTIONS[0], context="")
    with pytest.raises(ValueError, match="the question of input 1 is None"):
        qa([{"question": "a", "context": SHORT}, {"question": None, "context": SHORT}])
    with pytest.raises(KeyError, match="input 0 has no 'context'"):
        qa({"question": QUESTIONS[0]})
    with pytest.raises(TypeError, match="must be a string"):
        qa({"question": 3, "context": SHORT})
    with pytest.raises(ValueError, match="got 3 questions but 2 contexts"):
        qa(question=QUESTIONS, context=[SHORT, LONG])
    with pytest.raises(TypeError, match="not both"):
        qa(QUESTIONS[0], SHORT, question=QUESTIONS[0])
    with pytest.raises(ValueError, match="no question"):
        qa(question=[], context=SHORT)
    for name, value in [("top_k", 0), ("max_answer_len", 0), ("max_seq_len", 0), ("top_k", 1.5)]:
        with pytest.raises(ValueError, match=f"{name} must be an int >= 1"):
            qa(question=QUESTIONS[0], context=SHORT, **{name: value})
    with pytest.raises(ValueError, match="doc_stride \\(40\\) is larger than max_seq_len \\(30\\)"):
        qa(question=QUESTIONS[0], context=SHORT, max_seq_len=30, doc_stride=40)
    with pytest.raises(ValueError, match=f"more than the model's limit of {LIMIT}"):
        qa(question=QUESTIONS[0], context=SHORT, max_seq_len=LIMIT + 1)
    with pytest.raises(TypeError, match="unexpected parameter.*padding"):
        qa(question=QUESTIONS[0], context=SHORT, padding=True)


def test_questions_too_long_for_the_window_are_named(dirs):
    """transformers' tokenizers panic or fail here; candle_port says which question and why."""
    qa = candle_port.pipeline("question-answering", dirs["roberta"])
    long_question = "Which of the many nations that share the basin has the largest part of it, and why? " * 2
    with pytest.raises(ValueError, match="question 1 \\(\\d+ tokens\\) leaves too little room .* max_seq_len=40"):
        qa(question=[QUESTIONS[0], long_question], context=[SHORT, LONG], max_seq_len=40)
    with pytest.raises(ValueError, match="question 0 .* doc_stride=20"):
        qa(question=QUESTIONS[1], context=LONG, max_seq_len=32, doc_stride=20)


class _Loaded(Exception):
    pass


def test_default_model(monkeypatch):
    def from_pretrained(name, device, dtype):
        raise _Loaded(name)

    monkeypatch.setattr(candle_port.pipelines.AutoModelForQuestionAnswering, "from_pretrained", from_pretrained)
    with pytest.raises(_Loaded, match="deepset/roberta-base-squad2"):
        candle_port.pipeline("question-answering")
