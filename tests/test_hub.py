"""Hub downloads against a local fake hub (tests/hub_server.py): caching, revisions, tokens,
offline mode, a cache shared with Python huggingface_hub, broken downloads, environment
variables, and models loaded by repo id. The real hub is never contacted."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import candle_port
from candle_port.hub import hf_hub_download, resolve_model_dir, snapshot_download
from conftest import ROBERTA_CONFIGS, build_reference, padded_batch, reference_outputs, save_checkpoint
from hub_server import FakeHub

REPO = "org/tiny"
CONFIG_V1 = b'{"version": 1}'
CONFIG_V2 = b'{"version": 2}'
WEIGHTS = bytes(range(256)) * 400  # 100 KiB, large enough to be cut midway


@pytest.fixture
def hub():
    server = FakeHub(lifetime=120).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path, hub):
    """Every test gets its own HF_HOME and talks to its own fake hub only."""
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN_PATH", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")


@pytest.fixture
def tiny(hub):
    """`org/tiny` with two commits on main (config v1, then v2 + weights) and `dev` at the first."""
    repo = hub.repo(REPO)
    first = repo.commit({"config.json": CONFIG_V1}, branch="dev")
    repo.branches["main"] = first
    second = repo.commit({"config.json": CONFIG_V2, "weights.bin": WEIGHTS})
    return first, second


def hub_cache(tmp_path: Path) -> Path:
    return tmp_path / "hf_home" / "hub"


def test_download_then_served_from_cache(hub, tiny, tmp_path):
    _, second = tiny
    path = hf_hub_download(REPO, "weights.bin")
    repo_dir = hub_cache(tmp_path) / "models--org--tiny"
    assert Path(path) == repo_dir / "snapshots" / second / "weights.bin"
    assert Path(path).read_bytes() == WEIGHTS
    assert (repo_dir / "refs" / "main").read_text() == second
    assert Path(path).resolve() == repo_dir / "blobs" / hashlib.sha256(WEIGHTS).hexdigest()
    assert hub.body_requests("weights.bin")

    seen = len(hub.requests)
    assert hf_hub_download(REPO, "weights.bin") == path
    assert len(hub.requests) == seen


def test_revision_pinning(hub, tiny):
    first, second = tiny
    assert Path(hf_hub_download(REPO, "config.json", revision=first)).read_bytes() == CONFIG_V1
    assert Path(hf_hub_download(REPO, "config.json", revision=second)).read_bytes() == CONFIG_V2
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == CONFIG_V2
    dev = hf_hub_download(REPO, "config.json", revision="dev")
    assert Path(dev).read_bytes() == CONFIG_V1
    assert f"/snapshots/{first}/" in dev
    with pytest.raises(FileNotFoundError, match="weights.bin.*org/tiny.*revision dev"):
        hf_hub_download(REPO, "weights.bin", revision="dev")


def test_missing_file_and_repo_are_not_found(hub, tiny):
    with pytest.raises(FileNotFoundError, match="nope.json of org/tiny \\(revision main\\).*404"):
        hf_hub_download(REPO, "nope.json")
    with pytest.raises(FileNotFoundError, match="org/absent"):
        hf_hub_download("org/absent", "config.json")


def test_bad_arguments_are_value_errors(hub, tiny):
    for repo_id, filename in [("a/b/c", "config.json"), ("org/..", "config.json"), (REPO, "../config.json")]:
        with pytest.raises(ValueError):
            hf_hub_download(repo_id, filename)
    with pytest.raises(ValueError, match="revision"):
        hf_hub_download(REPO, "config.json", revision="../../x")
    assert hub.requests == []


def test_private_repo_needs_token(hub, monkeypatch, tmp_path):
    hub.repo("org/private", token="hf_secret").commit({"config.json": CONFIG_V1, "a.txt": b"a", "b.txt": b"b"})
    with pytest.raises(PermissionError, match="(?s)org/private.*401.*token"):
        hf_hub_download("org/private", "config.json")
    with pytest.raises(PermissionError, match="401"):
        hf_hub_download("org/private", "config.json", token="hf_wrong")

    assert Path(hf_hub_download("org/private", "config.json", token="hf_secret")).read_bytes() == CONFIG_V1
    assert {r.headers.get("authorization") for r in hub.served("config.json")} >= {"Bearer hf_secret"}

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert Path(hf_hub_download("org/private", "a.txt")).read_bytes() == b"a"
    assert all(r.headers.get("authorization") == "Bearer hf_secret" for r in hub.served("a.txt"))

    monkeypatch.delenv("HF_TOKEN")
    (tmp_path / "hf_home" / "token").write_text("hf_secret\n")
    assert Path(hf_hub_download("org/private", "b.txt")).read_bytes() == b"b"
    assert all(r.headers.get("authorization") == "Bearer hf_secret" for r in hub.served("b.txt"))


def test_offline_uses_the_cache_only(hub, tiny, monkeypatch):
    path = hf_hub_download(REPO, "config.json")
    seen = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hf_hub_download(REPO, "config.json") == path
    with pytest.raises(FileNotFoundError, match="weights.bin of org/tiny.*HF_HUB_OFFLINE"):
        hf_hub_download(REPO, "weights.bin")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(FileNotFoundError, match="weights.bin of org/tiny.*local_files_only"):
        hf_hub_download(REPO, "weights.bin", local_files_only=True)
    assert len(hub.requests) == seen


def test_reads_a_cache_written_by_huggingface_hub(hub, tiny, monkeypatch, tmp_path):
    import huggingface_hub

    first, _ = tiny
    cache = tmp_path / "shared"
    theirs_main = huggingface_hub.hf_hub_download(REPO, "weights.bin", cache_dir=cache, endpoint=hub.url, token=False)
    theirs_pinned = huggingface_hub.hf_hub_download(
        REPO, "config.json", revision=first, cache_dir=cache, endpoint=hub.url, token=False
    )
    assert not (cache / "models--org--tiny" / "refs" / first).exists()  # pinned: snapshot only
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hf_hub_download(REPO, "weights.bin", cache_dir=cache) == theirs_main
    assert hf_hub_download(REPO, "config.json", revision=first, cache_dir=cache) == theirs_pinned
    assert Path(theirs_pinned).read_bytes() == CONFIG_V1


def test_huggingface_hub_reads_our_cache_offline(hub, tiny, tmp_path):
    first, _ = tiny
    ours_main = hf_hub_download(REPO, "weights.bin")
    ours_pinned = hf_hub_download(REPO, "config.json", revision=first)
    hub.stop()
    script = (
        "import sys, huggingface_hub as h\n"
        "print(h.hf_hub_download(sys.argv[1], 'weights.bin'))\n"
        "print(h.hf_hub_download(sys.argv[1], 'config.json', revision=sys.argv[2]))\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-c", script, REPO, first], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [ours_main, ours_pinned]


def test_interrupted_download_leaves_no_corrupt_file(hub, tiny, tmp_path):
    hub.cut_once.add((REPO, "weights.bin"))
    with pytest.raises(ConnectionError, match="weights.bin of org/tiny"):
        hf_hub_download(REPO, "weights.bin")
    repo_dir = hub_cache(tmp_path) / "models--org--tiny"
    snapshots = repo_dir / "snapshots"
    assert not snapshots.exists() or not list(snapshots.rglob("weights.bin"))
    for blob in (repo_dir / "blobs").iterdir():
        if blob.suffix not in (".part", ".lock"):  # hf-hub's resumable partial file and lock
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"corrupt blob {blob}"
    assert not hub.cut_once

    path = hf_hub_download(REPO, "weights.bin")
    assert Path(path).read_bytes() == WEIGHTS
    retry = hub.body_requests("weights.bin")[-1]
    assert retry.headers["range"] != "bytes=0-"  # resumed from the partial file


def test_hub_cache_and_home_and_endpoint_variables(hub, tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
    path = hf_hub_download(REPO, "config.json")
    assert path.startswith(str(tmp_path / "hub_cache" / "models--org--tiny" / "snapshots"))
    assert not hub_cache(tmp_path).exists()

    monkeypatch.delenv("HF_HUB_CACHE")
    path = hf_hub_download(REPO, "config.json")
    assert path.startswith(str(hub_cache(tmp_path) / "models--org--tiny" / "snapshots"))

    other = FakeHub(lifetime=60).start()
    try:
        other.repo(REPO).commit({"config.json": b"elsewhere"})
        monkeypatch.setenv("HF_ENDPOINT", other.url)
        elsewhere = hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "other")
        assert Path(elsewhere).read_bytes() == b"elsewhere"
        assert other.served("config.json")
    finally:
        other.stop()
    with pytest.raises(ConnectionError, match="config.json of org/tiny"):
        hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "stopped")


def test_relative_redirect_of_a_renamed_repo(hub, tiny, tmp_path):
    import huggingface_hub

    hub.renamed["old-org/tiny"] = REPO
    path = hf_hub_download("old-org/tiny", "weights.bin")
    assert Path(path).read_bytes() == WEIGHTS
    assert "/models--old-org--tiny/" in path
    assert any(r.path.startswith("/old-org/tiny/") for r in hub.requests)
    theirs = huggingface_hub.hf_hub_download(
        "old-org/tiny", "weights.bin", cache_dir=tmp_path / "theirs", endpoint=hub.url, token=False
    )
    assert Path(theirs).read_bytes() == WEIGHTS


# End to end: models by repo id.


def checkpoint_files(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture
def classifier(tmp_path):
    model = build_reference("roberta", "sequence-classification", "h60-5heads")
    return model, save_checkpoint(model, tmp_path / "classifier", "safetensors")


def assert_logits_match(ours, reference) -> None:
    config = ROBERTA_CONFIGS["h60-5heads"]
    ids, mask, types = padded_batch(config)
    expected = reference_outputs(reference, ids, mask, types)["logits"]
    got = ours(ids, attention_mask=mask, token_type_ids=types)["logits"]
    assert float(np.abs(got - expected).max()) <= 1e-4


def test_auto_model_from_repo_id_prefers_safetensors(hub, classifier, tmp_path):
    reference, directory = classifier
    files = checkpoint_files(directory)
    state = io.BytesIO()
    torch.save(reference.state_dict(), state)
    files["pytorch_model.bin"] = state.getvalue()
    files["vocab.json"] = b'{"<s>": 0}'
    files["merges.txt"] = b"#version: 0.2\n"
    commit = hub.repo("org/classifier").commit(files)

    model = candle_port.AutoModelForSequenceClassification.from_pretrained("org/classifier")
    assert isinstance(model, candle_port.RobertaForSequenceClassification)
    assert_logits_match(model, reference)
    assert not hub.served("pytorch_model.bin")
    assert hub.body_requests("model.safetensors")
    snapshot = hub_cache(tmp_path) / "models--org--classifier" / "snapshots" / commit
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    assert hub.served("tokenizer.json")  # asked for, absent: remembered as huggingface_hub does
    assert (hub_cache(tmp_path) / "models--org--classifier" / ".no_exist" / commit / "tokenizer.json").exists()

    seen = len(hub.requests)
    again = candle_port.RobertaForSequenceClassification.from_pretrained("org/classifier")
    assert_logits_match(again, reference)
    assert len(hub.requests) == seen


def test_sharded_checkpoint_from_repo_id(hub, tmp_path):
    reference = build_reference("roberta", "sequence-classification", "h60-5heads")
    files = checkpoint_files(save_checkpoint(reference, tmp_path / "sharded", "sharded"))
    shards = set(json.loads(files["model.safetensors.index.json"])["weight_map"].values())
    assert len(shards) > 1
    hub.repo("org/sharded").commit(files)

    directory = snapshot_download("org/sharded")
    assert shards <= set(os.listdir(directory))
    assert all(hub.body_requests(shard) for shard in shards)
    model = candle_port.AutoModelForSequenceClassification.from_pretrained("org/sharded")
    assert_logits_match(model, reference)


def test_pinned_snapshot_and_offline_snapshot(hub, classifier, monkeypatch):
    reference, directory = classifier
    commit = hub.repo("org/classifier").commit(checkpoint_files(directory))
    hub.repo("org/classifier").commit({"config.json": b"{}"})  # a newer, broken main
    path = snapshot_download("org/classifier", revision=commit)
    assert path.endswith(commit)
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = candle_port.RobertaForSequenceClassification.from_pretrained("org/classifier", revision=commit)
    assert_logits_match(model, reference)
    with pytest.raises(FileNotFoundError, match="config.json of org/classifier"):
        snapshot_download("org/classifier")  # main was never fetched


def test_resolve_model_dir(hub, tmp_path):
    assert resolve_model_dir(tmp_path) == str(tmp_path)
    for missing in [tmp_path / "nope", "./nope", "../nope", "a/b/c"]:
        with pytest.raises(FileNotFoundError, match="model directory not found"):
            resolve_model_dir(missing)
    assert hub.requests == []
    with pytest.raises(FileNotFoundError, match="config.json of org/absent"):
        resolve_model_dir("org/absent")


def test_gpt2_and_its_tokenizer_from_repo_id(hub, tmp_path):
    """The hub's GPT-2 layout (real vocab.json + merges.txt, safetensors) through a repo id:
    text in, the same greedy continuation as transformers out."""
    import transformers

    from tokenizer_corpus import make_gpt2_dir

    directory = make_gpt2_dir(tmp_path / "gpt2")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64)
    reference = transformers.GPT2LMHeadModel(config).eval()
    reference.save_pretrained(directory)
    hub.repo("openai-community/gpt2").commit(checkpoint_files(directory))

    tokenizer = candle_port.AutoTokenizer.from_pretrained("openai-community/gpt2")
    model = candle_port.AutoModelForCausalLM.from_pretrained("openai-community/gpt2")
    ids = tokenizer("My name is Teven and I", return_tensors="np")["input_ids"]
    ours = model.generate(ids, max_new_tokens=12)
    with torch.no_grad():
        expected = reference.generate(torch.from_numpy(ids), max_new_tokens=12, do_sample=False, pad_token_id=50256)
    assert ours.tolist() == expected.tolist()
    assert tokenizer.decode(ours[0]).startswith("My name is Teven and I")


def test_pipeline_from_repo_id_download_cache_answer(hub, tmp_path):
    """A user's first line, served by the local hub: repo id → download → cache → pipeline →
    the same answer as transformers' pipeline on the same files; the second time, no request."""
    import transformers

    from pipeline_models import build_roberta

    directory = build_roberta("classifier", tmp_path / "sentiment")
    hub.repo("cardiffnlp/twitter-roberta-base-sentiment-latest").commit(checkpoint_files(directory))
    texts = ["I love this!", "This is terrible.", "meh"]

    classify = candle_port.pipeline("sentiment-analysis", progress=False)  # the default model
    ours = classify(texts)
    expected = transformers.pipeline("text-classification", model=str(directory))(texts)
    assert [r["label"] for r in ours] == [r["label"] for r in expected]
    assert np.allclose([r["score"] for r in ours], [r["score"] for r in expected], atol=1e-4)
    assert hub.body_requests("model.safetensors") and hub.body_requests("vocab.json")

    seen = len(hub.requests)
    assert candle_port.pipeline("sentiment-analysis", progress=False)(texts) == ours
    assert len(hub.requests) == seen
