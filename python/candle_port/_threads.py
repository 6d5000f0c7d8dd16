"""The CPU thread count, as ``torch.set_num_threads`` sets it."""

import os


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for CPU compute (matmuls and element-wise kernels).

    candle's thread pool starts with the first model call and keeps its size: call this before
    loading a model to grow it; afterwards only lowering the count takes effect (matmuls then use
    ``n`` of the pool's threads). Setting ``RAYON_NUM_THREADS`` in the environment does the same.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs a positive int, got {n!r}")
    os.environ["RAYON_NUM_THREADS"] = str(n)
