"""The ``candle-port`` command line (also ``python -m candle_port``).

Each subcommand is a function taking the parsed arguments; ``build_parser`` registers them.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def parse_ids(text: str) -> List[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ids:
        raise argparse.ArgumentTypeError("the prompt needs at least one id")
    return ids


def generate(args: argparse.Namespace) -> int:
    """Streams the generated ids to stdout, space-separated, as they are produced."""
    from .auto import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, device=args.device, dtype=args.dtype)
    stream = model.stream(
        [args.prompt_ids],
        max_new_tokens=args.max_new_tokens,
        do_sample=args.temperature is not None or args.top_k is not None or args.top_p is not None,
        temperature=1.0 if args.temperature is None else args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
    )
    for step in stream:
        print(int(step[0]), end=" ", flush=True)
    print()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="candle-port", description="Run candle_port models.")
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser(
        "generate",
        help="generate token ids with a causal language model",
        description="Greedy by default; any of --temperature, --top-k, --top-p turns sampling on.",
    )
    gen.add_argument("--model", required=True, help="model directory (config.json + weights)")
    gen.add_argument("--prompt-ids", required=True, type=parse_ids, help='comma-separated ids, e.g. "1,2,3"')
    gen.add_argument("--max-new-tokens", type=int, default=20)
    gen.add_argument("--temperature", type=float)
    gen.add_argument("--top-k", type=int)
    gen.add_argument("--top-p", type=float)
    gen.add_argument("--repetition-penalty", type=float, default=1.0)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--dtype", default="float32")
    gen.set_defaults(run=generate)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``candle-port`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"candle-port: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
