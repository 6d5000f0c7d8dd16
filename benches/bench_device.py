"""Accelerator benchmarks (``python benches/run.py --device cuda``): candle_port vs transformers
eager on the same device and dtype (float16 by default).

- roberta-base encoder throughput on a batch of 32 x 128 tokens;
- gpt2-124M greedy decode tokens/s at batch 1 (16-token prompt, 128 new tokens).

Runs on any device both libraries know (``--device cpu --dtype float32`` checks the code path)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_encoder import checkpoint  # noqa: E402
from bench_gpt2 import NEW_TOKENS, PROMPT_LEN, build_model, prompts  # noqa: E402
from common import median_seconds, row  # noqa: E402


def synchronized(torch, device: str):
    """Waits for the device's queued work, so wall-clock times are true."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def encoder_rows(device: str, dtype: str, repeats: int) -> list:
    import torch
    import transformers

    import candle_port

    directory = checkpoint("roberta-base")
    ours = candle_port.AutoModelForSequenceClassification.from_pretrained(directory, device=device, dtype=dtype)
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(
        directory, dtype=getattr(torch, dtype), attn_implementation="eager"
    ).to(device).eval()
    ids = np.random.default_rng(0).integers(3, ours.config.vocab_size, size=(32, 128))
    ids[:, 0], ids[:, -1] = 0, 2
    mask = np.ones_like(ids)
    t_ids, t_mask = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)
    sync = synchronized(torch, device)

    def run_theirs():
        with torch.inference_mode():
            logits = theirs(input_ids=t_ids, attention_mask=t_mask).logits
        sync()
        return logits

    diff = float(np.abs(ours(ids, mask).logits - run_theirs().float().cpu().numpy()).max())
    t_ours = median_seconds(lambda: ours(ids, mask), repeats)
    t_theirs = median_seconds(run_theirs, repeats)
    label = f"{device} {dtype}"
    return [
        row("roberta-base", f"throughput 32 x 128 tok, {label}", 32 / t_ours, 32 / t_theirs, "seq/s"),
        dict(section="roberta-base", metric=f"max abs diff of logits, {label}", candle_port=diff,
             transformers=0.0, unit="", speedup=float("nan")),
    ]


def decode_rows(device: str, dtype: str, new_tokens: int) -> list:
    import torch
    import transformers

    import candle_port

    directory = build_model()
    ours = candle_port.GPT2LMHeadModel.from_pretrained(directory, device=device, dtype=dtype)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(
        directory, dtype=getattr(torch, dtype), attn_implementation="eager"
    ).to(device).eval()
    ids = prompts(1)
    t_ids = torch.from_numpy(ids).to(device)
    sync = synchronized(torch, device)

    def run_theirs(n=new_tokens):
        with torch.inference_mode():
            out = theirs.generate(t_ids, attention_mask=torch.ones_like(t_ids), max_new_tokens=n,
                                  min_new_tokens=n, do_sample=False, pad_token_id=0)
        sync()
        return out

    def run_ours(n=new_tokens):
        return ours.generate(ids, max_new_tokens=n)

    run_ours(4), run_theirs(4)  # warm-up
    generated = run_ours().shape[1] - PROMPT_LEN  # fewer than asked if the random model hits eos
    t_ours = median_seconds(run_ours, repeats=3, warmup=0)
    t_theirs = median_seconds(run_theirs, repeats=3, warmup=0)
    return [row("gpt2-124m", f"greedy decode batch 1, {device} {dtype}", generated / t_ours, new_tokens / t_theirs, "tok/s")]


def run(device: str = "cuda", dtype: str = "float16", quick: bool = False) -> list:
    repeats = 3 if quick else 10
    return encoder_rows(device, dtype, repeats) + decode_rows(device, dtype, 32 if quick else NEW_TOKENS)


if __name__ == "__main__":
    import argparse

    from run import print_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_table(run(args.device, args.dtype, args.quick))
