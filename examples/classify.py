"""Classify a padded batch with a RoBERTa-family checkpoint in candle_port.

    python examples/classify.py                 # a small random demo checkpoint, made on the spot
    python examples/classify.py --model DIR     # your own checkpoint directory

The demo checkpoint is written with numpy alone (safetensors format), so this runs with the
package's only runtime dependency and no network.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
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


def make_demo_checkpoint(directory: Path) -> Path:
    """A random 2-layer RoBERTa sentiment classifier, laid out like cardiffnlp's checkpoint."""
    config = dict(
        model_type="roberta", architectures=["RobertaForSequenceClassification"], vocab_size=1000,
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
    write_safetensors(directory / "model.safetensors", tensors)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: a random demo model)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model_dir = args.model or make_demo_checkpoint(Path(tempfile.mkdtemp()) / "demo-roberta-sentiment")
    model = candle_port.AutoModelForSequenceClassification.from_pretrained(model_dir, device=args.device)
    print(f"candle_port {candle_port.__version__} on {candle_port.available_devices()}: {model} from {model_dir}")

    # Token ids of three sentences of different lengths, right-padded with pad_token_id=1.
    input_ids = np.array([[0, 713, 16, 137, 205, 328, 2], [0, 100, 33, 2, 1, 1, 1], [0, 42, 2, 1, 1, 1, 1]])
    attention_mask = (input_ids != 1).astype(np.int64)
    logits = model(input_ids, attention_mask=attention_mask).logits
    scores = np.exp(logits - logits.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    for row, probs in enumerate(scores):
        best = int(probs.argmax())
        print(f"row {row} ({int(attention_mask[row].sum())} tokens): {model.config.id2label[best]} {probs[best]:.3f}")


if __name__ == "__main__":
    main()
