"""transformers' question-answering pipeline, which transformers 5 removed, run from an
install of transformers 4.57.6 in its own directory: ``reference_answers(models, cases)``
installs it once (cached by version), runs every case in one subprocess and returns the
results. Run as a script, it is that subprocess (JSON job on stdin, JSON results on stdout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

REFERENCE_VERSION = "4.57.6"
# transformers 4.57 wants tokenizers < 0.23 and huggingface_hub < 1, which needs requests; the
# rest (torch, numpy, safetensors, ...) comes from the test environment.
PACKAGES = [
    f"transformers=={REFERENCE_VERSION}",
    "tokenizers>=0.22,<0.23",
    "huggingface_hub>=0.34,<1",
    "requests",
    "urllib3",
    "certifi",
    "charset-normalizer",
    "idna",
]


def install_reference(cache_root: Optional[Path] = None) -> Path:
    """The directory holding transformers 4.57.6, installed with pip on first use (into a
    temporary directory then renamed, so an interrupted install is never used)."""
    root = cache_root or Path(tempfile.gettempdir())
    target = root / f"candle-port-transformers-{REFERENCE_VERSION}"
    if (target / "transformers" / "__init__.py").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="transformers-install-", dir=root))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(staging), *PACKAGES]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"cannot install the reference transformers {REFERENCE_VERSION}:\n{result.stderr}")
    try:
        staging.rename(target)
    except OSError:  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def reference_answers(models: Dict[str, str], cases: Dict[str, dict], cache_root: Optional[Path] = None) -> Dict[str, Any]:
    """Runs ``cases`` ({name: {"model", "kwargs", "max_length"}}) through transformers 4.57.6's
    ``pipeline("question-answering")`` on ``models`` ({key: directory}); each result is the
    pipeline's answer or {"error": ...}."""
    target = install_reference(cache_root)
    env = dict(os.environ, PYTHONPATH=str(target), TRANSFORMERS_VERBOSITY="error", HF_HUB_OFFLINE="1")
    job = json.dumps({"models": models, "cases": cases})
    result = subprocess.run([sys.executable, __file__], input=job, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"the reference pipeline failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)


def _run_job() -> None:
    import warnings

    import torch
    import transformers

    assert transformers.__version__ == REFERENCE_VERSION, transformers.__version__
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)  # one window per forward: threads only slow tiny models down
    job = json.load(sys.stdin)
    pipelines = {}
    results = {}
    for name, case in job["cases"].items():
        key = (case["model"], case.get("max_length"))
        if key not in pipelines:
            directory = job["models"][case["model"]]
            extra = {} if case.get("max_length") is None else {"model_max_length": case["max_length"]}
            tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **extra)
            pipelines[key] = transformers.pipeline("question-answering", model=directory, tokenizer=tokenizer)
        try:
            results[name] = pipelines[key](*case.get("args", []), **case.get("kwargs", {}))
        except Exception as error:  # the reference's own refusals are compared too
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    _run_job()
