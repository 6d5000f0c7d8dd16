#!/usr/bin/env bash
# Runs the GPU tests and the accelerator benchmark on a GPU machine that has PyTorch,
# transformers and NVIDIA's CUDA 13 wheels but no Rust (the lent H100/H200), with the wheel
# built here by scripts/build_cuda_wheel.sh:
#
#   scripts/gpu_check.sh [WHEEL_DIR] [RESULTS_DIR]      (defaults: dist, .)
#
# The wheel goes to a private site directory (PYTHONPATH), the CUDA libraries of NVIDIA's
# wheels onto LD_LIBRARY_PATH; results: gpu-tests.log, bench-float16.json, bench-float32.json.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls -t "${1:-dist}"/candle_port-*.whl | head -n 1)
results=${2:-.}
site=$(mktemp -d)
python3 -m pip install --quiet --no-index --no-deps --target "$site" "$wheel"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
cuda_lib=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))')
export LD_LIBRARY_PATH="$cuda_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -c 'import candle_port; print("candle_port", candle_port.__version__, candle_port.available_devices())'
# The benchmark runs even when a test fails; the exit status is the first failure's.
status=0
python3 -m pytest -q -rs tests/test_gpu.py tests/test_package.py 2>&1 | tee "$results/gpu-tests.log" \
    || status=$?
for dtype in float16 float32; do
    python3 benches/run.py --device cuda --dtype "$dtype" --json "$results/bench-$dtype.json" \
        || { rc=$?; [[ $status != 0 ]] || status=$rc; }
done
exit $status
