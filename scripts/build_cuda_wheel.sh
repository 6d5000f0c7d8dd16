#!/usr/bin/env bash
# Builds an abi3 candle_port wheel with `--features cuda` on a machine with no CUDA toolkit:
# nvcc, the CUDA headers and libraries come from NVIDIA's CUDA 13 wheels on PyPI.
#
#   scripts/build_cuda_wheel.sh [--features cuda,cudnn] [OUT_DIR]
#
# Environment: CUDA_COMPUTE_CAP (default 90: H100/H200), CUDA_WHEELS_VERSION (default 13.0.*),
# CUDA_BUILD_VENV (default .cuda-build-venv), CARGO_TARGET_DIR (default target/cuda).
# candle links the wheel against libcuda, cudart, cuBLAS and cuRAND (cudarc's `dynamic-linking`):
# they must be on the loader path when candle_port is imported. On the GPU machine they come from
# the driver and from the same NVIDIA wheels (e.g. PyTorch's), so put their lib directory on
# LD_LIBRARY_PATH there (the script prints the line to use). Without them, the import fails with
# an ImportError saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

features=cuda
if [[ "${1:-}" == "--features" ]]; then features=$2; shift 2; fi
out_dir=${1:-dist}
venv=${CUDA_BUILD_VENV:-.cuda-build-venv}
cuda_version=${CUDA_WHEELS_VERSION:-13.0.*}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}

python3 -m venv "$venv"
# nvcc's own dependencies (nvvm's cicc, crt headers) are pinned too: unpinned, pip takes the newest,
# whose PTX the older ptxas rejects. cuBLAS / cuRAND are not needed to build, only to run.
"$venv/bin/pip" install --quiet "maturin>=1.7,<2" \
    "nvidia-cuda-nvcc==$cuda_version" "nvidia-nvvm==$cuda_version" "nvidia-cuda-crt==$cuda_version" \
    "nvidia-cuda-runtime==$cuda_version" "nvidia-cuda-cccl==$cuda_version" \
    "nvidia-cuda-nvrtc==$cuda_version" "nvidia-cublas==13.*" "nvidia-curand==10.*"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda_root="$site/nvidia/cu13"
[[ -x "$cuda_root/bin/nvcc" ]] || { echo "nvcc not found under $cuda_root/bin" >&2; exit 1; }

# nvcc, headers and libraries as a CUDA install would lay them out.
export PATH="$cuda_root/bin:$PATH"
export CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_HOME="$cuda_root"
export LIBRARY_PATH="$cuda_root/lib:${LIBRARY_PATH:-}"
export LD_LIBRARY_PATH="$cuda_root/lib:${LD_LIBRARY_PATH:-}"
# The linker wants unversioned names (libcublas.so) that the wheels do not ship, and libcuda.so,
# which comes with the driver, not with any wheel: link against a stub with the driver's soname
# (what the CUDA toolkit's lib/stubs does); the real libcuda.so.1 is loaded at run time. Every
# stub function answers CUDA_ERROR_NO_DEVICE (100), what a driver on a machine without a GPU
# answers, so the stub can also stand in for the driver to check the wheel on a CPU machine.
link_dir="$PWD/$CARGO_TARGET_DIR/cuda-link"
mkdir -p "$link_dir"
for lib in "$site"/nvidia/cu13/lib/lib*.so.* "$site"/nvidia/cu13/lib/*/lib*.so.*; do
    [[ -e "$lib" ]] && ln -sf "$lib" "$link_dir/$(basename "${lib%%.so.*}").so"
done
grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "$cuda_root/include/cuda.h" | sort -u \
    | sed 's/.*/int &(void) { return 100; }/' > "$link_dir/libcuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link_dir/libcuda.so" "$link_dir/libcuda_stub.c"
export LIBRARY_PATH="$link_dir:$LIBRARY_PATH"  # the C compiler driving the link passes it on

# nvcc looks for the host compiler's headers next to its own; the CCCL wheel keeps cub/thrust apart.
export NVCC_PREPEND_FLAGS="-I$cuda_root/include -I$cuda_root/include/cccl ${NVCC_PREPEND_FLAGS:-}"
nvcc --version | tail -n 2

# --features replaces pyproject's list, so the Python bindings feature is named again.
# No auditwheel repair: the CUDA libraries and the driver come from the GPU machine, not the wheel.
"$venv/bin/maturin" build --release --features "python,$features" --auditwheel skip --out "$out_dir"
echo
echo "Built $(ls -t "$out_dir"/candle_port-*.whl | head -n 1) for compute capability $CUDA_COMPUTE_CAP."
echo "On the GPU machine: export LD_LIBRARY_PATH=\"\$(python -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], \"cu13\", \"lib\"))'):\$LD_LIBRARY_PATH\""
