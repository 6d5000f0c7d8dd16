"""GPT-2 generation speed: candle_port vs transformers on CPU, fp32, same thread count.

A gpt2-124M-shaped model (``GPT2Config()`` defaults) with random weights is built once with
transformers and cached in the temp dir. Greedy generation of 128 new tokens from a 16-token
prompt; also the per-token time near position 16 and near 128 (flat with a KV cache), a
batch of 8, and beam search with 4 beams (new tokens of the returned sequence per second).

    PYTHONPATH=python python benches/bench_gpt2.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import os
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import candle_port

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import THREADS, row  # noqa: E402

PROMPT_LEN = 16
NEW_TOKENS = 128
MODEL_DIR = os.path.join(tempfile.gettempdir(), "candle_port_bench_gpt2_124m")


def build_model() -> str:
    """Saves (once) a random gpt2-124M-shaped model; returns its directory."""
    if not os.path.isfile(os.path.join(MODEL_DIR, "model.safetensors")):
        torch.manual_seed(0)
        GPT2LMHeadModel(GPT2Config()).save_pretrained(MODEL_DIR)
    return MODEL_DIR


def prompts(batch: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 50000, size=(batch, PROMPT_LEN), dtype=np.int64)


def time_candle(model, ids: np.ndarray, new_tokens: int) -> Dict[str, float]:
    """Total seconds and the seconds of each step (step 0 runs the prompt)."""
    step_seconds = []
    start = time.perf_counter()
    last = start
    for _ in model.stream(ids, max_new_tokens=new_tokens):
        now = time.perf_counter()
        step_seconds.append(now - last)
        last = now
    total = time.perf_counter() - start
    return {"seconds": total, "steps": step_seconds}


def time_transformers(model, ids: np.ndarray, new_tokens: int) -> float:
    ids = torch.tensor(ids)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    elapsed = time.perf_counter() - start
    assert out.shape[1] == PROMPT_LEN + new_tokens
    return elapsed


def window_ms(steps: List[float], position: int, width: int = 8) -> float:
    """Mean step time (ms) of the decoding steps whose input sits near ``position``."""
    first = max(1, position - PROMPT_LEN - width // 2)  # step k ≥ 1 runs position 15 + k
    return 1000 * float(np.mean(steps[first : first + width]))


def decode_rows(ours, theirs, batch: int, new_tokens: int, label: str) -> List[dict]:
    """Greedy decode tokens/s of both at one batch size; per-step times of candle_port."""
    ids = prompts(batch)
    ours.generate(ids, max_new_tokens=4)  # warm-up
    time_transformers(theirs, ids, 4)
    candle = time_candle(ours, ids, new_tokens)
    torch_seconds = time_transformers(theirs, ids, new_tokens)
    # Counted from the steps taken, in case a row of the random model hits eos early.
    ours_tok_s = batch * len(candle["steps"]) / candle["seconds"]
    rows = [row("gpt2-124m", f"greedy decode batch {batch}{label}", ours_tok_s, batch * new_tokens / torch_seconds, "tok/s")]
    if new_tokens >= 128 and batch == 1 and not label:
        for position in (16, 128):
            ms = window_ms(candle["steps"], position)
            rows.append(dict(section="gpt2-124m", metric=f"ms per step near position {position}", candle_port=ms,
                             transformers=float("nan"), unit="ms", speedup=float("nan")))
    return rows


def beam_rows(ours, theirs, new_tokens: int, num_beams: int = 4) -> List[dict]:
    """Beam search decode speed of both: new tokens of the returned sequence per second (eos
    banned with ``min_new_tokens`` so that both run every step)."""
    ids = prompts(1)
    options = dict(num_beams=num_beams, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    ours.generate(ids, **{**options, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
    start = time.perf_counter()
    ours.generate(ids, **options)
    ours_seconds = time.perf_counter() - start
    with torch.no_grad():
        start = time.perf_counter()
        theirs.generate(torch.tensor(ids), attention_mask=torch.ones(ids.shape, dtype=torch.long), **options)
        torch_seconds = time.perf_counter() - start
    return [row("gpt2-124m", f"beam-{num_beams} decode batch 1", new_tokens / ours_seconds, new_tokens / torch_seconds, "tok/s")]


def run(quick: bool = False) -> List[dict]:
    """Rows of {section, metric, candle_port, transformers, unit, speedup}: fp32 at batch 1 and
    8, and candle_port in float16 (half the weight traffic) against transformers in float32."""
    torch.set_num_threads(THREADS)
    path = build_model()
    theirs = GPT2LMHeadModel.from_pretrained(path).eval()
    new_tokens = 32 if quick else NEW_TOKENS
    ours = candle_port.GPT2LMHeadModel.from_pretrained(path)
    rows = decode_rows(ours, theirs, 1, new_tokens, "") + decode_rows(ours, theirs, 8, new_tokens, "")
    rows += beam_rows(ours, theirs, new_tokens)
    half = candle_port.GPT2LMHeadModel.from_pretrained(path, dtype="float16")
    rows += decode_rows(half, theirs, 1, new_tokens, " (candle float16 vs torch float32)")
    for r in rows:
        print(r, flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 new tokens instead of 128")
    run(parser.parse_args().quick)
