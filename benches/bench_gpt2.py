"""GPT-2 generation speed: candle_port vs transformers on CPU, fp32, same thread count.

A gpt2-124M-shaped model (``GPT2Config()`` defaults) with random weights is built once with
transformers and cached in the temp dir. Greedy generation of 128 new tokens from a 16-token
prompt; also the per-token time near position 16 and near 128 (flat with a KV cache) and a
batch of 8.

    PYTHONPATH=python python benches/bench_gpt2.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Dict, List

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import candle_port

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


def run(quick: bool = False) -> List[dict]:
    """Runs the benchmark; returns one dict per measurement (also printed)."""
    threads = torch.get_num_threads()
    os.environ.setdefault("RAYON_NUM_THREADS", str(threads))
    path = build_model()
    ours = candle_port.GPT2LMHeadModel.from_pretrained(path)
    theirs = GPT2LMHeadModel.from_pretrained(path).eval()
    new_tokens = 32 if quick else NEW_TOKENS
    results = []
    for batch in (1, 8):
        ids = prompts(batch)
        ours.generate(ids, max_new_tokens=4)  # warm-up
        time_transformers(theirs, ids, 4)
        candle = time_candle(ours, ids, new_tokens)
        torch_seconds = time_transformers(theirs, ids, new_tokens)
        result = {
            "batch": batch,
            "new_tokens": new_tokens,
            "threads": threads,
            # Counted from the steps taken, in case a row of the random model hits eos early.
            "candle_port_tok_s": batch * len(candle["steps"]) / candle["seconds"],
            "transformers_tok_s": batch * new_tokens / torch_seconds,
        }
        result["speedup"] = result["candle_port_tok_s"] / result["transformers_tok_s"]
        if not quick:
            result["candle_ms_per_step_at_16"] = window_ms(candle["steps"], 16)
            result["candle_ms_per_step_at_128"] = window_ms(candle["steps"], 128)
        results.append(result)
        print(", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()), flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 new tokens instead of 128")
    run(parser.parse_args().quick)
