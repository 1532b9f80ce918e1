"""The models folder and LM Studio's ``publisher/repo/file.gguf`` layout.

Shared by the server (which lists the folder) and ``lmj import`` (which writes to it without
needing a running server).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import gguf

DEFAULT_MODELS_DIR = Path.home() / ".lm_jupyter" / "models"
QUANT_IN_NAME = re.compile(r"(?i)[-_.](I?Q\d(?:_[A-Z0-9]+)*|F16|BF16|F32)(?=\.gguf$)")


def models_dir_from_env() -> Path:
    return Path(os.environ.get("LM_JUPYTER_MODELS_DIR") or DEFAULT_MODELS_DIR).expanduser()


def is_gguf(path: Path) -> bool:
    with path.open("rb") as handle:
        magic = handle.read(4)
    return len(magic) == 4 and int.from_bytes(magic, "little") == gguf.GGUF_MAGIC


def import_model(
    source: Path,
    root: Path,
    *,
    publisher: str | None = None,
    repo: str | None = None,
    copy: bool = False,
) -> Path:
    """Place a GGUF file into the models folder, hard-linking when the filesystem allows.

    The file appears under its final name only once complete, so a crash mid-copy never
    leaves a half-written model that ``ls`` would show.
    """
    source = source.expanduser().resolve()
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    if not is_gguf(source):
        raise ValueError(f"{source} is not a GGUF file")
    repo = repo or QUANT_IN_NAME.sub("", source.name).removesuffix(".gguf") or source.stem
    target = root / (publisher or "local") / repo / source.name
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    linked = False
    if not copy:
        try:
            os.link(source, partial)
            linked = True
        except OSError:
            linked = False
    if not linked:
        shutil.copyfile(source, partial)
    partial.rename(target)
    return target
