"""Tokenizer benchmark: candle_port.Tokenizer vs transformers' (Rust-backed) AutoTokenizer on the
same files, in the same process.

Batch encode throughput (texts/s) of a multilingual corpus, unpadded lists and padded +
truncated numpy arrays, on GPT-2's BPE (vocab.json + merges.txt), its RoBERTa-style copy and a
SentencePiece unigram model (XLM-R layout); and single-text latency."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import median_seconds, row  # noqa: E402
from tokenizer_corpus import CORPUS, make_gpt2_dir, make_roberta_dir, make_sentencepiece_dir  # noqa: E402


def as_rows(encoding) -> list:
    return [[int(i) for i in ids] for ids in encoding["input_ids"]]


def vocabularies(root: Path) -> dict:
    return {
        "gpt2": make_gpt2_dir(root / "gpt2"),
        "roberta": make_roberta_dir(root / "roberta"),
        "xlm-r spm unigram": make_sentencepiece_dir(root / "spm", "unigram"),
    }


def run(quick: bool = False) -> list:
    """Rows of {section, metric, candle_port, transformers, unit, speedup}."""
    from transformers import AutoTokenizer as Reference

    import candle_port

    repeats = 3 if quick else 7
    texts = [t for t in CORPUS if len(t) < 1000] * (5 if quick else 20)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, directory in vocabularies(Path(tmp)).items():
            ours, theirs = candle_port.AutoTokenizer.from_pretrained(directory), Reference.from_pretrained(directory)
            cases = {f"batch of {len(texts)}, lists": dict()}
            if ours.pad_token is not None:
                cases[f"batch of {len(texts)}, padded+truncated to 128, np"] = dict(
                    padding=True, truncation=True, max_length=128, return_tensors="np"
                )
            for case, kwargs in cases.items():
                if as_rows(ours(texts, **kwargs)) != as_rows(theirs(texts, **kwargs)):
                    raise AssertionError(f"{name}, {case}: candle_port and transformers disagree")
                t_ours = median_seconds(lambda: ours(texts, **kwargs), repeats)
                t_theirs = median_seconds(lambda: theirs(texts, **kwargs), repeats)
                rows.append(row(name, case, len(texts) / t_ours, len(texts) / t_theirs, "texts/s"))
            text = CORPUS[20]
            t_ours = median_seconds(lambda: ours(text), repeats * 50)
            t_theirs = median_seconds(lambda: theirs(text), repeats * 50)
            rows.append(row(name, "single text latency", t_ours * 1e6, t_theirs * 1e6, "µs", higher_is_better=False))
    return rows


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['section']:<18} {r['metric']:<42} candle_port {r['candle_port']:>10.1f}  "
            f"transformers {r['transformers']:>10.1f} {r['unit']:<8} x{r['speedup']:.2f}"
        )
