"""The candle-port command line end to end (``python -m candle_port`` in a subprocess) on tiny
local models, against the pipelines' own results."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import candle_port
from candle_port import cli
from pipeline_models import assert_same_records, build_gpt2, build_roberta

PYTHON_DIR = str(Path(candle_port.__file__).resolve().parent.parent)
TEXTS = ["I love Paris and London!", "café naïve 😀 Zürich is great", "ok"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    built = {head: build_roberta(head, root / head) for head in ("classifier", "masked-lm", "ner", "base")}
    built["gpt2"] = build_gpt2(root / "gpt2")
    return built


def run_cli(*args, stdin=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PYTHON_DIR, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "candle_port", *map(str, args)], input=stdin, capture_output=True, text=True, env=env
    )


def run_json(*args, stdin=None):
    result = run_cli(*args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_classify(dirs):
    expected = candle_port.pipeline("sentiment-analysis", dirs["classifier"], top_k=2)(TEXTS)
    assert run_json("classify", "--model", dirs["classifier"], "--top-k", "2", *TEXTS) == expected
    assert run_json("classify", "--model", dirs["classifier"], "--top-k", "2", stdin="\n".join(TEXTS) + "\n") == expected
    plain = run_cli("classify", "--model", dirs["classifier"], TEXTS[0])
    best = expected[0][0]
    assert plain.returncode == 0 and plain.stdout == f"{best['label']}\t{best['score']:.4f}\n"


def test_fill_mask(dirs):
    texts = ["Paris is the <mask> of France.", "<mask> you"]
    expected = candle_port.pipeline("fill-mask", dirs["masked-lm"], top_k=3)(texts)
    assert run_json("fill-mask", "--model", dirs["masked-lm"], "--top-k", "3", *texts) == expected
    assert_same_records(run_json("fill-mask", "--model", dirs["masked-lm"], "--top-k", "3", texts[0]), [expected[0]])
    plain = run_cli("fill-mask", "--model", dirs["masked-lm"], "--top-k", "3", texts[0]).stdout.splitlines()
    assert [line.split("\t")[2] for line in plain] == [e["sequence"] for e in expected[0]]


@pytest.mark.parametrize("strategy", ["none", "simple"])
def test_ner(dirs, strategy):
    expected = candle_port.pipeline("ner", dirs["ner"], aggregation_strategy=strategy)(TEXTS)
    assert any(expected)
    got = run_json("ner", "--model", dirs["ner"], "--aggregation-strategy", strategy, stdin="\n".join(TEXTS))
    assert got == expected
    plain = run_cli("ner", "--model", dirs["ner"], "--aggregation-strategy", strategy, TEXTS[1]).stdout
    assert [line.split("\t")[3] for line in plain.splitlines()] == [e["word"] for e in expected[1]]


def test_embed(dirs):
    expected = candle_port.pipeline("embeddings", dirs["base"])(TEXTS)
    got = np.array(run_json("embed", "--model", dirs["base"], *TEXTS))
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-6)
    cls = candle_port.pipeline("feature-extraction", dirs["base"], pooling="cls")(TEXTS[:1])[0]
    plain = run_cli("embed", "--model", dirs["base"], "--pooling", "cls", "--no-normalize", TEXTS[0]).stdout
    np.testing.assert_allclose([float(v) for v in plain.split()], cls, rtol=1e-5)


def test_generate_streams_text(dirs):
    prompt = "Hello 😀 world"
    expected = candle_port.pipeline("text-generation", dirs["gpt2"], max_new_tokens=12)(prompt)[0]["generated_text"]
    result = run_cli("generate", "--model", dirs["gpt2"], "--prompt", prompt, "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected + "\n"
    assert run_json("generate", "--model", dirs["gpt2"], "--prompt", prompt, "--max-new-tokens", "12") == {"generated_text": expected}


def test_text_stream_holds_back_incomplete_characters(dirs, monkeypatch):
    """The emoji is two byte-level tokens; its first half alone decodes to U+FFFD, which must
    never be printed."""
    tokenizer = candle_port.Tokenizer.from_pretrained(dirs["gpt2"])
    ids = tokenizer.encode(" a 😀 b 東京")
    assert "\ufffd" in tokenizer.decode(ids[:2])
    writes = []
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(sys.stdout, "write", lambda text: writes.append(text) or len(text))
    cli._print_text_stream((np.array([i]) for i in ids), tokenizer)
    assert "".join(writes) == " a 😀 b 東京\n"
    assert not any("\ufffd" in w for w in writes)


def test_check_passes_on_a_good_checkpoint(dirs):
    for name in ("classifier", "gpt2"):
        result = run_cli("check", dirs[name])
        assert result.returncode == 0, result.stderr
        assert "logits: max abs diff" in result.stdout and "ok" in result.stdout


def test_check_without_tokenizer_uses_random_ids(dirs, tmp_path):
    model_only = tmp_path / "model-only"
    model_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(dirs["base"] / name, model_only / name)
    result = run_cli("check", model_only)
    assert result.returncode == 0, result.stderr
    assert "last_hidden_state: max abs diff" in result.stdout


def test_check_fails_when_outputs_differ(dirs):
    """bfloat16 weights in candle_port against float32 in transformers: far above 1e-4."""
    result = run_cli("check", dirs["classifier"], "--dtype", "bfloat16")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "check failed" in result.stderr
    assert run_cli("check", dirs["classifier"], "--tolerance", "1e-12").returncode == 1


def test_check_fails_on_a_damaged_checkpoint(dirs, tmp_path):
    damaged = shutil.copytree(dirs["classifier"], tmp_path / "damaged")
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    result = run_cli("check", damaged)
    assert result.returncode == 1
    assert result.stderr.startswith("candle-port: error:")


def test_download_uses_the_hub_module(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "candle_port.hub", type(sys)("candle_port.hub"))
    sys.modules["candle_port.hub"].snapshot_download = lambda repo_id: f"/cache/{repo_id}"
    assert cli.main(["download", "org/model"]) == 0
    assert capsys.readouterr().out == "/cache/org/model\n"
    monkeypatch.setitem(sys.modules, "candle_port.hub", None)
    assert cli.main(["download", "org/model"]) == 1
    assert "candle_port.hub" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["classify", "--model", "/nonexistent/model", "x"], None, "not found"),
        (["classify", "--model", "{classifier}"], "", "no input texts"),
        (["fill-mask", "--model", "{masked-lm}", "no mask here"], None, "no mask token"),
        (["generate", "--model", "{classifier}", "--prompt", "hi"], None, "not supported"),
    ],
)
def test_errors_exit_1_with_a_message(dirs, args, stdin, message):
    args = [a.format(**{k: str(v) for k, v in dirs.items()}) for a in args]
    result = run_cli(*args, stdin=stdin)
    assert result.returncode == 1
    assert result.stderr.startswith("candle-port: error:") and message in result.stderr
    assert result.stdout == ""
