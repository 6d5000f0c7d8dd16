"""What to do when the native module cannot be loaded."""

from __future__ import annotations

from typing import Optional

# Shared libraries a CUDA build of the native module is linked against (candle links them at
# build time, so they must be found when the module is imported, GPU or not).
CUDA_LIBRARIES = ("libcuda.so", "libcudart.so", "libcublas", "libcurand", "libnvrtc")


def cuda_import_hint(error: ImportError) -> Optional[str]:
    """The message to raise instead of `error` when a CUDA build misses its libraries."""
    missing = str(error)
    if not any(name in missing for name in CUDA_LIBRARIES):
        return None
    return (
        f"{missing}. This candle_port was built with CUDA: it needs the NVIDIA driver "
        "(libcuda.so.1) and the CUDA 13 cudart, cuBLAS and cuRAND libraries on the loader path. "
        "On a GPU machine, add the lib directory of NVIDIA's CUDA wheels to LD_LIBRARY_PATH "
        "(README, 'Building'); on a machine without an NVIDIA GPU, install the default (CPU) build."
    )
