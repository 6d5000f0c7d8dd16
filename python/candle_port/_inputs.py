"""Turning user inputs (numpy arrays, nested lists) into the int64 matrices the core takes."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np


def as_id_matrix(name: str, values: Any) -> np.ndarray:
    """``values`` as a C-contiguous int64 (batch, seq) array; 1-D input is one sequence.

    Raises ValueError for ragged or non-integer input and for anything but 1-D or 2-D.
    """
    try:
        array = np.asarray(values)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array of ints: {err}") from None
    if array.dtype == object:
        raise ValueError(f"{name} must be a rectangular array of ints (got ragged or mixed values)")
    if array.size and not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
        raise ValueError(f"{name} must contain integers, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (batch, sequence), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.int64)


def optional_id_matrix(name: str, values: Optional[Any]) -> Optional[np.ndarray]:
    return None if values is None else as_id_matrix(name, values)
