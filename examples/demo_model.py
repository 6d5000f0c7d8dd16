"""Write a small random RoBERTa sentiment checkpoint with a byte-level tokenizer, then use it.

    python examples/demo_model.py demo-model
    candle-port classify --model demo-model "I love this" "This is terrible"

Laid out like cardiffnlp/twitter-roberta-base-sentiment-latest (config.json, model.safetensors,
vocab.json + merges.txt), but tiny and untrained: the labels are arbitrary. Written with numpy
alone, so it needs only the package's runtime dependency and no network.
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import numpy as np

import candle_port


def write_safetensors(path: Path, tensors: dict) -> None:
    """The safetensors layout: 8-byte header length, JSON header, raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header_bytes = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(header_bytes)) + header_bytes + b"".join(blobs))


def byte_symbols() -> list:
    """GPT-2's printable stand-ins for the 256 byte values (byte-level BPE's alphabet)."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


# RoBERTa's layout: <s>, <pad>, </s>, <unk>, then the vocabulary (here: single bytes), <mask> last.
VOCAB = ["<s>", "<pad>", "</s>", "<unk>", *byte_symbols(), "<mask>"]


def make_demo_checkpoint(directory: Path) -> Path:
    """A random 2-layer RoBERTa sentiment classifier, laid out like cardiffnlp's checkpoint."""
    config = dict(
        model_type="roberta", architectures=["RobertaForSequenceClassification"], vocab_size=len(VOCAB),
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=130, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1,
        id2label={"0": "negative", "1": "neutral", "2": "positive"},
    )
    rng = np.random.default_rng(0)
    h, i = config["hidden_size"], config["intermediate_size"]

    def dense(prefix, n_in, n_out):
        return {f"{prefix}.weight": rng.normal(0, 0.05, (n_out, n_in)), f"{prefix}.bias": np.zeros(n_out)}

    def norm(prefix):
        return {f"{prefix}.weight": np.ones(h), f"{prefix}.bias": np.zeros(h)}

    tensors = {
        "roberta.embeddings.word_embeddings.weight": rng.normal(0, 0.05, (config["vocab_size"], h)),
        "roberta.embeddings.position_embeddings.weight": rng.normal(0, 0.05, (config["max_position_embeddings"], h)),
        "roberta.embeddings.token_type_embeddings.weight": rng.normal(0, 0.05, (1, h)),
        **norm("roberta.embeddings.LayerNorm"),
        **dense("classifier.dense", h, h),
        **dense("classifier.out_proj", h, 3),
    }
    for layer in range(config["num_hidden_layers"]):
        p = f"roberta.encoder.layer.{layer}"
        for part in ("query", "key", "value"):
            tensors.update(dense(f"{p}.attention.self.{part}", h, h))
        tensors.update(dense(f"{p}.attention.output.dense", h, h))
        tensors.update(norm(f"{p}.attention.output.LayerNorm"))
        tensors.update(dense(f"{p}.intermediate.dense", h, i))
        tensors.update(dense(f"{p}.output.dense", i, h))
        tensors.update(norm(f"{p}.output.LayerNorm"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    (directory / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(VOCAB)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")  # no merges: one token per byte
    write_safetensors(directory / "model.safetensors", tensors)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="where to write the checkpoint")
    args = parser.parse_args()
    make_demo_checkpoint(args.directory)
    model = candle_port.AutoModelForSequenceClassification.from_pretrained(args.directory)
    print(f"wrote {args.directory}: {model} (candle_port {candle_port.__version__}, devices {candle_port.available_devices()})")


if __name__ == "__main__":
    main()
