"""candle-port qa, zero-shot and ner --stride end to end (``python -m candle_port`` in a
subprocess) on tiny local models, against the pipelines' own results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import candle_port
from pipeline_models import build_nli, build_roberta

PYTHON_DIR = str(Path(candle_port.__file__).resolve().parent.parent)
CONTEXT = "The Amazon rainforest covers much of the Amazon basin of South America. Brazil has sixty percent of it."
QUESTIONS = ["Which country has most of the forest?", "What does the rainforest cover?"]
TEXTS = ["I love Paris and London!", "The quick brown fox jumps over the lazy dog."]
LABELS = ["travel", "animals", "cooking"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-task-models")
    return {
        "qa": build_roberta("qa", root / "qa"),
        "nli": build_nli(root / "nli", "roberta", {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}),
        "ner": build_roberta("ner", root / "ner"),
    }


def run_cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "candle_port", *map(str, args)], input=stdin, capture_output=True, text=True, env=env)


def run_json(*args, stdin=None):
    result = run_cli(*args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_qa(dirs, tmp_path):
    qa = candle_port.pipeline("question-answering", dirs["qa"])
    expected = qa(question=QUESTIONS[0], context=CONTEXT, top_k=2)
    assert run_json("qa", "--model", dirs["qa"], "--question", QUESTIONS[0], "--context", CONTEXT, "--top-k", "2") == [expected]
    plain = run_cli("qa", "--model", dirs["qa"], "--question", QUESTIONS[0], "--context", CONTEXT)
    best = qa(question=QUESTIONS[0], context=CONTEXT)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"{best['score']:.4f}\t{best['start']}-{best['end']}\t{best['answer']}\n"
    # JSON lines, from a file or stdin; windows and the empty answer as options.
    lines = "\n".join(json.dumps({"question": q, "context": CONTEXT}) for q in QUESTIONS) + "\n"
    (tmp_path / "questions.jsonl").write_text(lines, encoding="utf-8")
    options = dict(max_seq_len=24, doc_stride=6, handle_impossible_answer=True)
    expected = qa(question=QUESTIONS, context=CONTEXT, **options)
    flags = ["--max-seq-len", "24", "--doc-stride", "6", "--handle-impossible-answer"]
    assert run_json("qa", "--model", dirs["qa"], "--jsonl", tmp_path / "questions.jsonl", *flags) == expected
    assert run_json("qa", "--model", dirs["qa"], *flags, stdin=lines) == expected


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["--question", "Who?"], None, "give both --question and --context"),
        ([], "not json\n", "stdin line 1 is not JSON"),
        ([], '{"question": "Who?"}\n', 'line 1 must be an object with "question" and "context"'),
        ([], "", "no questions in stdin"),
        (["--question", "Who?", "--context", ""], None, "the context of input 0 is empty"),
        (["--question", "Who?", "--context", CONTEXT, "--top-k", "0"], None, "top_k must be an int >= 1"),
    ],
)
def test_qa_errors(dirs, args, stdin, message):
    result = run_cli("qa", "--model", dirs["qa"], *args, stdin=stdin)
    assert result.returncode == 1 and message in result.stderr, result.stderr


def test_zero_shot(dirs):
    classifier = candle_port.pipeline("zero-shot-classification", dirs["nli"])
    expected = classifier(TEXTS, candidate_labels=LABELS)
    assert run_json("zero-shot", "--model", dirs["nli"], "--labels", ",".join(LABELS), *TEXTS) == expected
    multi = classifier(TEXTS[:1], candidate_labels=LABELS, multi_label=True, hypothesis_template="It is about {}.")
    got = run_json("zero-shot", "--model", dirs["nli"], "--labels", ",".join(LABELS), "--multi-label",
                   "--hypothesis-template", "It is about {}.", stdin=TEXTS[0] + "\n")
    assert got == multi
    plain = run_cli("zero-shot", "--model", dirs["nli"], "--labels", ",".join(LABELS), TEXTS[1]).stdout.splitlines()
    assert [line.split("\t")[0] for line in plain] == expected[1]["labels"]
    bad = run_cli("zero-shot", "--model", dirs["nli"], "--labels", " , ", TEXTS[0])
    assert bad.returncode == 1 and "candidate_labels is empty" in bad.stderr


def test_ner_stride(dirs):
    long_text = " ".join(TEXTS * 12)
    expected = candle_port.pipeline("ner", dirs["ner"], aggregation_strategy="simple", stride=8)(long_text)
    assert run_json("ner", "--model", dirs["ner"], "--stride", "8", long_text) == [expected]
