"""Question answering: candle_port's pipeline("question-answering") against transformers
4.57.6's (transformers 5 has none; it runs from its own install, as in the tests, in a
subprocess with the same thread count), and the QA head alone against transformers 5.

A roberta-base shaped random QA model (deepset/roberta-base-squad2's shape) with RoBERTa's
byte-level BPE; questions on contexts of about 600 tokens, so each is cut into windows of 384
tokens with a stride of 128, as the pipeline's defaults do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bench_encoder import add_tokenizer, padded_texts, sample_texts  # noqa: E402
from common import CACHE_DIR, THREADS, cached_checkpoint, median_seconds, row  # noqa: E402

NAME = "roberta-base-squad2"


def checkpoint() -> Path:
    def build(directory: Path) -> None:
        import torch
        import transformers

        config = transformers.RobertaConfig(
            vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5
        )
        torch.manual_seed(0)
        transformers.RobertaForQuestionAnswering(config).save_pretrained(directory)

    directory = cached_checkpoint(NAME, build)
    add_tokenizer(directory)
    return directory


def questions(n: int) -> list:
    """``n`` questions, each on a context of about 600 tokens (fixed seed)."""
    contexts = [" ".join(sample_texts(n=12, seed=seed)) for seed in range(n)]
    return [{"question": f"What does the {word} model do?", "context": context}
            for word, context in zip(["first", "small", "fast", "new", "old", "big", "main", "best"] * n, contexts)]


_REFERENCE = """
import json, sys, time, statistics, warnings
warnings.simplefilter("ignore")
import torch, transformers
torch.set_num_threads({threads})
qa = transformers.pipeline("question-answering", model={model!r}, batch_size=8)
pairs = json.loads(sys.stdin.read())
qa(pairs[:1])
times = []
for _ in range({repeats}):
    start = time.perf_counter()
    answers = qa(pairs)
    times.append(time.perf_counter() - start)
print(json.dumps(dict(seconds=statistics.median(times), answers=[a["answer"] for a in answers])))
"""


def reference_seconds(directory: Path, pairs: list, repeats: int) -> dict:
    from qa_reference import install_reference

    target = install_reference(CACHE_DIR)
    env = dict(os.environ, PYTHONPATH=str(target), OMP_NUM_THREADS=str(THREADS), TRANSFORMERS_VERBOSITY="error")
    code = _REFERENCE.format(threads=THREADS, model=str(directory), repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(pairs), capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list:
    import torch
    import transformers

    import candle_port

    torch.set_num_threads(THREADS)
    repeats = 1 if quick else 3
    directory = checkpoint()
    pairs = questions(4 if quick else 16)
    ours = candle_port.pipeline("question-answering", str(directory), batch_size=8, progress=False)
    windows = len(ours._spans([(p["question"], p["context"]) for p in pairs], 384, 128)[0])
    our_answers = [a["answer"] for a in ours(pairs)]
    t_ours = median_seconds(lambda: ours(pairs), repeats)
    reference = reference_seconds(directory, pairs, repeats)
    rows = [
        row(NAME, f"QA pipeline, {len(pairs)} questions ({windows} windows)", len(pairs) / t_ours, len(pairs) / reference["seconds"], "q/s"),
        dict(section=NAME, metric="same answers as transformers 4.57", candle_port=float(our_answers == reference["answers"]),
             transformers=1.0, unit="bool", speedup=float("nan")),
    ]
    # The head alone: 8 windows of 384 tokens, against transformers 5.
    model = candle_port.AutoModelForQuestionAnswering.from_pretrained(directory)
    theirs = transformers.AutoModelForQuestionAnswering.from_pretrained(directory).eval()
    ids, mask = padded_texts(model.config.vocab_size, n=8, low=384, high=384)
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)

    def run_theirs():
        with torch.inference_mode():
            return theirs(input_ids=t_ids, attention_mask=t_mask)

    t_model = median_seconds(lambda: model(ids, mask), repeats)
    t_theirs = median_seconds(run_theirs, repeats)
    rows.append(row(NAME, "QA head, 8 windows x 384 tok", len(ids) / t_model, len(ids) / t_theirs, "win/s"))
    return rows


if __name__ == "__main__":
    from run import print_table

    print_table(run(quick="--quick" in sys.argv))
