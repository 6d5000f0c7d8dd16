"""candle_port vs transformers, side by side in one run.

    python benches/run.py [--quick] [--json results.json]
    python benches/run.py --device cuda [--dtype float16]   (an accelerator: bench_device only)

Builds random-weight checkpoints at real shapes with transformers (cached between runs in
$CANDLE_PORT_BENCH_CACHE, default /tmp/candle_port_bench), runs both libraries with the same
thread count ($BENCH_THREADS, default all cores), prints a table with the ratio and writes JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

SUITES = ["bench_encoder", "bench_gpt2", "bench_tokenizer", "bench_qa"]


def print_table(rows: list) -> None:
    print(f"{'section':<18} {'metric':<40} {'candle_port':>12} {'transformers':>13} {'unit':<8} {'speedup':>8}")
    for r in rows:
        speedup = "" if math.isnan(r["speedup"]) else f"{r['speedup']:.2f}x"
        print(f"{r['section']:<18} {r['metric']:<40} {r['candle_port']:>12.4g} {r['transformers']:>13.4g} {r['unit']:<8} {speedup:>8}")


def wheel_rows() -> list:
    import candle_port._core as core

    size = Path(core.__file__).stat().st_size / 2**20
    return [dict(section="package", metric="native module size", candle_port=size, transformers=float("nan"), unit="MiB", speedup=float("nan"))]


def run_cpu_suites(rows: list, suites: list, quick: bool) -> None:
    for suite in suites:
        try:
            module = importlib.import_module(suite)
        except ModuleNotFoundError as err:
            if err.name != suite:
                raise
            continue
        rows.extend(module.run(quick=quick))
        print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, one model per family")
    parser.add_argument("--json", type=Path, default=Path("bench_results.json"))
    parser.add_argument("--only", nargs="*", choices=SUITES, help="run only these suites")
    parser.add_argument("--device", default="cpu", help="cuda / cuda:N: the accelerator suite instead")
    parser.add_argument("--dtype", default="float16", help="dtype of the accelerator suite")
    args = parser.parse_args()
    rows = wheel_rows()
    if args.device != "cpu":
        import bench_device

        rows.extend(bench_device.run(args.device, args.dtype, quick=args.quick))
        print_table(rows)
    else:
        run_cpu_suites(rows, args.only or SUITES, args.quick)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
