"""The package surface: version, devices, output objects."""

import re

import numpy as np

import candle_port
from candle_port import ModelOutput


def test_version_and_devices():
    assert re.fullmatch(r"\d+\.\d+\.\d+", candle_port.__version__)
    devices = candle_port.available_devices()
    assert devices[0] == "cpu"
    assert all(re.fullmatch(r"cpu|cuda:\d+|metal:\d+", d) for d in devices)


def test_model_output_reads_like_transformers():
    out = ModelOutput({"logits": np.zeros((1, 2), np.float32)})
    assert out.logits is out["logits"]
    assert out.pooler_output is None
    assert list(out) == ["logits"] and len(out) == 1
    assert out.to_tuple()[0] is out.logits


def test_thread_count_follows_set_num_threads():
    import os

    import pytest

    before = candle_port.get_num_threads()
    assert before >= 1
    try:
        candle_port.set_num_threads(1)
        assert candle_port.get_num_threads() == 1
    finally:
        os.environ["RAYON_NUM_THREADS"] = str(before)
    with pytest.raises(ValueError):
        candle_port.set_num_threads(0)


def test_missing_cuda_libraries_get_a_hint():
    from candle_port._native import cuda_import_hint

    hint = cuda_import_hint(ImportError("libcuda.so.1: cannot open shared object file: No such file or directory"))
    assert hint.startswith("libcuda.so.1: cannot open") and "LD_LIBRARY_PATH" in hint and "CPU" in hint
    assert cuda_import_hint(ImportError("libcublas.so.13: cannot open shared object file")) is not None
    assert cuda_import_hint(ImportError("cannot import name 'x' from 'candle_port._core'")) is None
