"""What every model class shares: loading from a directory or a hub repo id, config, repr."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from .config import Config
from .hub import resolve_model_dir

PathLike = Union[str, "os.PathLike[str]"]


class PreTrainedModel:
    """Base of the model classes. Subclasses set ``_core_class`` (the native class) and
    ``_head`` (which head of the checkpoint it builds)."""

    _core_class: Any = None
    _head: str = "base"

    def __init__(self, core: Any, device: str, dtype: str, name_or_path: str) -> None:
        self._core = core
        self.name_or_path = name_or_path
        self.config = Config.from_json(core.config_json)
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: PathLike,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        revision: Optional[str] = None,
        cache_dir: Optional[PathLike] = None,
        token: Optional[str] = None,
        local_files_only: bool = False,
    ):
        """Loads a checkpoint holding ``config.json`` and ``model.safetensors``,
        ``model.safetensors.index.json`` (shards) or ``pytorch_model.bin``, with or without the
        base model's prefix (``roberta.`` / ``transformer.``).

        Args:
            pretrained_model_name_or_path: a local model directory, or a hub repo id
                (``"name"`` or ``"org/name"``), downloaded as by ``candle_port.hub.snapshot_download``.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"metal"``.
            dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
            revision, cache_dir, token, local_files_only: hub options, see ``candle_port.hub``.

        Raises:
            FileNotFoundError: the directory, config.json or the weights are missing (locally or
                on the hub).
            PermissionError, ConnectionError: the hub refused access or could not be reached.
            KeyError: a tensor the model needs is not in the checkpoint.
            ValueError: an unsupported config or a corrupt / misshaped checkpoint.
            RuntimeError: the device is not available in this build or on this machine.
        """
        path = resolve_model_dir(
            pretrained_model_name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
        )
        core = cls._core_class.from_pretrained(path, cls._head, device, dtype)
        return cls(core, device, dtype, path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"
