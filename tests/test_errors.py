"""Bad input gets a clear Python exception naming what is wrong — never a panic or a wrong answer."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import candle_port
from conftest import ROBERTA_CONFIGS, padded_batch


@pytest.fixture
def mlm_dir(roberta_checkpoint, tmp_path):
    """A private copy of a safetensors MLM checkpoint that a test may damage."""
    directory, _ = roberta_checkpoint("roberta", "masked-lm", "h60-5heads", "safetensors")
    return shutil.copytree(directory, tmp_path / "model")


@pytest.fixture
def bin_dir(roberta_checkpoint, tmp_path):
    directory, _ = roberta_checkpoint("roberta", "sequence-classification", "h60-5heads", "bin")
    return shutil.copytree(directory, tmp_path / "model")


@pytest.fixture(scope="module")
def model(roberta_checkpoint):
    directory, _ = roberta_checkpoint("roberta", "masked-lm", "h60-5heads", "safetensors")
    return candle_port.RobertaForMaskedLM.from_pretrained(directory)


def edit_config(directory, **changes):
    path = directory / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


# --- loading -------------------------------------------------------------------------------


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        candle_port.RobertaModel.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        candle_port.AutoModel.from_pretrained(tmp_path / "nope")


def test_missing_config(mlm_dir):
    (mlm_dir / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)
    with pytest.raises(FileNotFoundError, match="config.json"):
        candle_port.AutoModelForMaskedLM.from_pretrained(mlm_dir)


def test_missing_weights(mlm_dir):
    (mlm_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_unknown_model_type(mlm_dir):
    edit_config(mlm_dir, model_type="bert")
    with pytest.raises(ValueError, match="bert"):
        candle_port.AutoModelForMaskedLM.from_pretrained(mlm_dir)
    with pytest.raises(ValueError, match="not a RoBERTa-family model"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_unsupported_position_embedding_type(mlm_dir):
    edit_config(mlm_dir, position_embedding_type="relative_key")
    with pytest.raises(ValueError, match="relative_key"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_unknown_activation(mlm_dir):
    edit_config(mlm_dir, hidden_act="gelu_10")
    with pytest.raises(ValueError, match="gelu_10"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_corrupt_safetensors_header(mlm_dir):
    path = mlm_dir / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"not json"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.safetensors"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_truncated_safetensors(mlm_dir):
    path = mlm_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_truncated_bin(bin_dir):
    path = bin_dir / "pytorch_model.bin"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        candle_port.RobertaForSequenceClassification.from_pretrained(bin_dir)


def test_missing_tensor_names_tensor_and_file(mlm_dir):
    path = mlm_dir / "model.safetensors"
    tensors = load_file(path)
    del tensors["roberta.encoder.layer.1.attention.self.key.weight"]
    save_file(tensors, path)
    with pytest.raises(KeyError, match=r"roberta\.encoder\.layer\.1\.attention\.self\.key\.weight.*model\.safetensors"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


def test_misshaped_tensor_names_tensor_and_file(mlm_dir):
    path = mlm_dir / "model.safetensors"
    tensors = load_file(path)
    tensors["roberta.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(96, 60)
    save_file(tensors, path)
    with pytest.raises(ValueError, match=r"intermediate\.dense\.weight.*model\.safetensors"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir)


# The word embeddings of base and task checkpoints are read from the mapped file row by row
# (only masked-LM loads them whole); their errors must be as clear as the loaded tensors'.
WORD_EMBEDDINGS = "roberta.embeddings.word_embeddings.weight"


@pytest.fixture
def classifier_dir(roberta_checkpoint, tmp_path):
    directory, _ = roberta_checkpoint("roberta", "sequence-classification", "h60-5heads", "safetensors")
    return shutil.copytree(directory, tmp_path / "model")


def test_mapped_word_embeddings_missing_or_misshaped(classifier_dir):
    path = classifier_dir / "model.safetensors"
    tensors = load_file(path)
    table = tensors.pop(WORD_EMBEDDINGS)
    save_file(tensors, path)
    with pytest.raises(KeyError, match=r"word_embeddings\.weight.*model\.safetensors"):
        candle_port.RobertaForSequenceClassification.from_pretrained(classifier_dir)
    tensors[WORD_EMBEDDINGS] = table[:, :-1].contiguous()
    save_file(tensors, path)
    with pytest.raises(ValueError, match=r"word_embeddings\.weight.*model\.safetensors"):
        candle_port.RobertaForSequenceClassification.from_pretrained(classifier_dir)


def test_mapped_word_embeddings_cut_short(classifier_dir):
    """A file that ends one byte before the last row of the table."""
    path = classifier_dir / "model.safetensors"
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    _, end = json.loads(data[8 : 8 + header_len])[WORD_EMBEDDINGS]["data_offsets"]
    path.write_bytes(data[: 8 + header_len + end - 1])
    with pytest.raises(ValueError, match="model.safetensors"):
        candle_port.AutoModel.from_pretrained(classifier_dir)


class _RunsACommand:
    """Pickles to a call of os.system, like a booby-trapped checkpoint."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickle_that_calls_a_function_is_refused(bin_dir, tmp_path):
    marker = tmp_path / "pwned"
    state = torch.load(bin_dir / "pytorch_model.bin")
    state["evil"] = _RunsACommand(f"touch {marker}")
    torch.save(state, bin_dir / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"refusing to load .*pytorch_model\.bin.*system"):
        candle_port.RobertaForSequenceClassification.from_pretrained(bin_dir)
    assert not marker.exists()


def test_invalid_device_and_dtype(mlm_dir):
    with pytest.raises(ValueError, match="device"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir, device="gpu")
    with pytest.raises(ValueError, match="dtype"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir, dtype="int8")


@pytest.mark.skipif("cuda:0" in candle_port.available_devices(), reason="this build has a GPU")
def test_cuda_without_cuda_is_a_clear_error(mlm_dir):
    with pytest.raises(RuntimeError, match="CUDA"):
        candle_port.RobertaForMaskedLM.from_pretrained(mlm_dir, device="cuda")


# --- inputs --------------------------------------------------------------------------------


def test_input_id_out_of_vocabulary(model):
    with pytest.raises(ValueError, match="101.*vocab_size 101"):
        model([[0, 5, 101, 2]])


def test_negative_input_id(model):
    with pytest.raises(ValueError, match="-4"):
        model([[0, -4, 2]])


def test_sequence_longer_than_positions(model):
    limit = ROBERTA_CONFIGS["h60-5heads"]["max_position_embeddings"] - 2
    model(np.full((1, limit), 5))
    with pytest.raises(ValueError, match=f"exceeds the model's maximum of {limit}"):
        model(np.full((1, limit + 1), 5))


@pytest.mark.parametrize("empty", [[], [[]], np.zeros((0, 4), np.int64)])
def test_empty_batch(model, empty):
    with pytest.raises(ValueError, match="empty"):
        model(empty)


def test_ragged_lists(model):
    with pytest.raises(ValueError, match="rectangular"):
        model([[0, 5, 2], [0, 2]])


def test_wrong_dtype(model):
    with pytest.raises(ValueError, match="integers"):
        model(np.array([[0.0, 5.0, 2.0]]))
    with pytest.raises(ValueError, match="integers"):
        model([["a", "b"]])


def test_wrong_rank(model):
    with pytest.raises(ValueError, match="1-D or 2-D"):
        model(np.zeros((1, 2, 3), np.int64))


def test_mask_shape_mismatch(model):
    ids, mask, _ = padded_batch(ROBERTA_CONFIGS["h60-5heads"], lengths=[6, 4])
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=mask[:, :3])


def test_token_type_out_of_range(model):
    with pytest.raises(ValueError, match="type_vocab_size 1"):
        model([[0, 5, 2]], token_type_ids=[[0, 1, 0]])
