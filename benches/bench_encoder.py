"""Encoder benchmarks: roberta-base / xlm-roberta-base shaped random models, candle_port vs
transformers in the same process and thread count.

Throughput: 32 texts of 8–128 tokens (fixed seed) as one right-padded batch; latency: batch 1 at
16 and 128 tokens; cold start and peak RSS in fresh processes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import THREADS, cached_checkpoint, median_seconds, row, run_fresh  # noqa: E402

MODELS = {
    "roberta-base": dict(model_type="roberta", vocab_size=50265, type_vocab_size=1, layer_norm_eps=1e-5),
    "xlm-roberta-base": dict(model_type="xlm-roberta", vocab_size=250002, type_vocab_size=1, layer_norm_eps=1e-5),
}


def add_tokenizer(directory: Path) -> None:
    """GPT-2's real byte-level BPE in RoBERTa's id layout (what roberta-base ships, give or take
    three ids), so the end-to-end rows tokenize real text."""
    if (directory / "vocab.json").is_file():
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import shutil
    import tempfile

    from tokenizer_corpus import make_roberta_dir

    with tempfile.TemporaryDirectory() as tmp:
        source = make_roberta_dir(Path(tmp) / "tok")
        for name in ("vocab.json", "merges.txt"):
            shutil.copy(source / name, directory / name)


def sample_texts(n: int = 32, seed: int = 0) -> list:
    """English-like texts of roughly 8–128 tokens (fixed seed)."""
    words = ("the model runs fast on small machines and gives the same answer as the reference "
             "implementation while using less memory so users can classify many short reviews "
             "tweets and comments about products films weather sports politics music").split()
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=int(rng.integers(6, 110)))).capitalize() + "." for _ in range(n)]


def checkpoint(name: str) -> Path:
    def build(directory: Path) -> None:
        import torch
        import transformers

        spec = dict(MODELS[name])
        config_class = transformers.XLMRobertaConfig if spec.pop("model_type") == "xlm-roberta" else transformers.RobertaConfig
        config = config_class(max_position_embeddings=514, num_labels=3, **spec)
        torch.manual_seed(0)
        cls = transformers.AutoModelForSequenceClassification.from_config(config)
        cls.save_pretrained(directory)

    return cached_checkpoint(name, build)


def padded_texts(vocab_size: int, n: int = 32, low: int = 8, high: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high + 1, size=n)
    ids = np.ones((n, lengths.max()), dtype=np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(3, vocab_size, size=length)
        ids[i, 0], ids[i, length - 1] = 0, 2
    return ids, (ids != 1).astype(np.int64)


def encoder_flops(real_tokens: int, lengths, hidden: int = 768, layers: int = 12, inner: int = 3072) -> float:
    """Matmul FLOPs of the encoder on the real tokens (what must be computed)."""
    per_token = 2 * layers * (4 * hidden * hidden + 2 * hidden * inner)
    attention = sum(2 * layers * 2 * int(n) * int(n) * hidden for n in lengths)
    return per_token * real_tokens + attention


def sgemm_gflops() -> float:
    """numpy's float32 matmul speed on this machine: the ceiling the encoders work against."""
    a = np.random.rand(1024, 1024).astype(np.float32)
    seconds = median_seconds(lambda: a @ a, repeats=5)
    return 2 * 1024**3 / seconds / 1e9


def run(quick: bool = False) -> list:
    import torch
    import transformers

    import candle_port

    torch.set_num_threads(THREADS)
    repeats = 2 if quick else 5
    rows = []
    ceiling = sgemm_gflops()
    rows.append(dict(section="machine", metric="numpy sgemm ceiling", candle_port=ceiling, transformers=ceiling, unit="GFLOP/s", speedup=1.0))
    names = ["roberta-base"] if quick else list(MODELS)
    for name in names:
        directory = checkpoint(name)
        ours = candle_port.AutoModelForSequenceClassification.from_pretrained(directory)
        theirs = transformers.AutoModelForSequenceClassification.from_pretrained(directory).eval()
        ids, mask = padded_texts(ours.config.vocab_size)
        lengths = mask.sum(1)
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)

        def run_theirs(i=t_ids, m=t_mask):
            with torch.inference_mode():
                return theirs(input_ids=i, attention_mask=m).logits

        diff = float(np.abs(ours(ids, mask).logits - run_theirs().numpy()).max())
        t_ours = median_seconds(lambda: ours(ids, mask), repeats)
        t_theirs = median_seconds(run_theirs, repeats)
        n = len(ids)
        rows.append(row(name, "throughput 32 texts 8-128 tok", n / t_ours, n / t_theirs, "seq/s"))
        rows.append(row(name, "real tokens/s", lengths.sum() / t_ours, lengths.sum() / t_theirs, "tok/s"))
        flops = encoder_flops(int(lengths.sum()), lengths)
        rows.append(row(name, "achieved (real-token FLOPs)", flops / t_ours / 1e9, flops / t_theirs / 1e9, "GFLOP/s"))
        rows.append(dict(section=name, metric="max abs diff of logits", candle_port=diff, transformers=0.0, unit="", speedup=float("nan")))
        for length in (16, 128):
            one, one_mask = padded_texts(ours.config.vocab_size, n=1, low=length, high=length, seed=length)
            t1, m1 = torch.from_numpy(one), torch.from_numpy(one_mask)
            lat_ours = median_seconds(lambda: ours(one, one_mask), repeats * 3)
            lat_theirs = median_seconds(lambda: run_theirs(t1, m1), repeats * 3)
            rows.append(row(name, f"latency batch 1 x {length} tok", lat_ours * 1e3, lat_theirs * 1e3, "ms", higher_is_better=False))
        if name == "roberta-base":
            rows.extend(pipeline_rows(name, directory, repeats))
        rows.extend(fresh_process_rows(name, directory))
        del ours, theirs
    return rows


def pipeline_rows(name: str, directory: Path, repeats: int) -> list:
    """Text in, labels out: both libraries' text-classification pipelines, batch size 8."""
    import transformers

    import candle_port

    add_tokenizer(directory)
    texts = sample_texts()
    ours = candle_port.pipeline("text-classification", model=str(directory), batch_size=8, progress=False)
    theirs = transformers.pipeline("text-classification", model=str(directory), batch_size=8)
    assert [r["label"] for r in ours(texts)] == [r["label"] for r in theirs(texts)]
    t_ours = median_seconds(lambda: ours(texts), repeats)
    t_theirs = median_seconds(lambda: theirs(texts), repeats)
    return [row(name, "pipeline from text, 32 texts", len(texts) / t_ours, len(texts) / t_theirs, "seq/s")]


_PROBE = """
import json, time
t0 = time.perf_counter()
{imports}
model = {load}
ids = [[0] + [5] * 14 + [2]]
{call}
elapsed = time.perf_counter() - t0
# VmHWM, not ru_maxrss: the latter is inherited across exec from the forking parent.
peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps(dict(seconds=elapsed, rss_mb=peak_kb / 1024)))
"""


def fresh_process_rows(name: str, directory: Path) -> list:
    ours = run_fresh(_PROBE.format(
        imports="import candle_port",
        load=f"candle_port.AutoModelForSequenceClassification.from_pretrained({str(directory)!r})",
        call="model(ids).logits",
    ))
    theirs = run_fresh(_PROBE.format(
        imports=f"import torch, transformers; torch.set_num_threads({THREADS})",
        load=f"transformers.AutoModelForSequenceClassification.from_pretrained({str(directory)!r}).eval()",
        call="with torch.inference_mode(): model(input_ids=torch.tensor(ids)).logits",
    ))
    return [
        row(name, "cold start: import+load+first result", ours["seconds"], theirs["seconds"], "s", higher_is_better=False),
        row(name, "peak RSS after load+first result", ours["rss_mb"], theirs["rss_mb"], "MiB", higher_is_better=False),
    ]


if __name__ == "__main__":
    from run import print_table

    print_table(run(quick="--quick" in sys.argv))
