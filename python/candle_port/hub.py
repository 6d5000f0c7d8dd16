"""Downloads from the Hugging Face Hub, into the same cache as ``huggingface_hub``.

The cache is ``HF_HUB_CACHE``, else ``$HF_HOME/hub`` (default ``~/.cache/huggingface/hub``);
``HF_ENDPOINT`` picks the server, ``HF_TOKEN`` (or ``$HF_HOME/token``) the token, and
``HF_HUB_OFFLINE=1`` forbids any network access. Files already in the cache are used without a
request.

Errors: ``FileNotFoundError`` for a file the repo lacks or, offline, one the cache lacks;
``PermissionError`` when the hub refuses access (private or gated repo, bad token);
``ConnectionError`` when the hub cannot be reached or a download breaks off (retrying resumes);
``ValueError`` for a malformed repo id, file name or revision.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Union

from . import _core

PathLike = Union[str, "os.PathLike[str]"]

# "name" or "org/name", as the hub accepts them.
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$", re.ASCII)


def hf_hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    token: Optional[str] = None,
    local_files_only: bool = False,
) -> str:
    """Returns the local path of ``filename`` from the model repo ``repo_id``, downloading it
    into the cache unless it is already there.

    Args:
        repo_id: ``"name"`` or ``"org/name"``.
        filename: a path inside the repo, e.g. ``"config.json"``.
        revision: branch, tag or commit hash; ``"main"`` by default.
        cache_dir: the hub cache directory, instead of ``HF_HUB_CACHE`` / ``$HF_HOME/hub``.
        token: access token for private or gated repos, instead of ``HF_TOKEN``.
        local_files_only: use the cache only, as ``HF_HUB_OFFLINE=1`` does.
    """
    path = _core.hf_hub_download(repo_id, filename, revision, _fspath(cache_dir), token, local_files_only)
    return os.fspath(path)


def snapshot_download(
    repo_id: str,
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    token: Optional[str] = None,
    local_files_only: bool = False,
) -> str:
    """Returns a local directory holding what a model of ``repo_id`` needs, downloading what the
    cache lacks: ``config.json``; the weights (``model.safetensors``, else
    ``model.safetensors.index.json`` and its shards, else ``pytorch_model.bin``); and those of
    the generation config and tokenizer files the repo has. Other files of the repo are not
    downloaded.

    Arguments as in :func:`hf_hub_download`.
    """
    path = _core.snapshot_download(repo_id, revision, _fspath(cache_dir), token, local_files_only)
    return os.fspath(path)


def resolve_model_dir(pretrained_model_name_or_path: PathLike, **hub_kwargs) -> str:
    """The local model directory for a ``from_pretrained`` argument.

    An existing directory is returned as is; a hub repo id (``"name"`` or ``"org/name"``) is
    fetched with :func:`snapshot_download` (``hub_kwargs``: ``revision``, ``cache_dir``,
    ``token``, ``local_files_only``).

    Raises:
        FileNotFoundError: a local path (or anything that is not a repo id) that is not a
            directory.
    """
    path = os.fspath(pretrained_model_name_or_path)
    if os.path.isdir(path):
        return path
    if _looks_like_repo_id(path) and not os.path.exists(path):
        return snapshot_download(path, **hub_kwargs)
    raise FileNotFoundError(f"model directory not found: {path}")


def _looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and not name.startswith((".", "-")) and "--" not in name and ".." not in name


def _fspath(path: Optional[PathLike]) -> Optional[str]:
    return None if path is None else os.fspath(path)
