"""Build (once per machine and flag set) and install the llama-cpp-python wheel this project pins.

    python scripts/build_llama.py install   # build or reuse the wheel, install it into this Python
    python scripts/build_llama.py flags     # print the compiler flags the build adds, and why

Why not a plain ``pip install llama-cpp-python``: its default build is ``-march=native``, which on
Intel CPUs with AMX (Sapphire Rapids and newer) compiles ggml's AMX matmul kernels in, and those
crash with SIGILL on the machine that built them (ggml requests the tile permission on one thread
only and its tile configuration can be optimised away: llama.cpp PR #26954, still open). So on
x86-64 the build keeps ``-march=native`` for everything else (AVX2, AVX-512, VNNI where the CPU
has them) and switches the AMX extensions off with ``-mno-amx-*`` in ``CFLAGS``/``CXXFLAGS``.
GCC and Clang let an explicit ``-mno-X`` win over what ``-march`` implies, whatever the order.

A user's ``CMAKE_ARGS`` (``-DGGML_CUDA=on``, ``-DGGML_METAL=on``, ...) pass through untouched;
the CPU flags travel in the environment's ``CFLAGS``/``CXXFLAGS``, which CMake reads as the
initial ``CMAKE_C_FLAGS``/``CMAKE_CXX_FLAGS`` (a ``-DCMAKE_C_FLAGS=...`` in ``CMAKE_ARGS``
replaces them, and then the user chose).

The wheel is kept in ``~/.cache/lm_jupyter/llama-wheels/<key>/``, keyed by the version, the flags, the user's
``CMAKE_ARGS`` and this CPU's feature list, so a new ``.venv`` reinstalls in seconds and a wheel
built elsewhere, or with other flags, is never picked up (pip's own wheel cache ignores flags).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Outside the checkout, so every clone on this machine (and CI's fresh clone) reuses the build.
WHEELS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lm_jupyter" / "llama-wheels"

# The AMX extensions GCC >= 11 and Clang >= 12 know; switching off amx-tile alone would also
# drop the others (they depend on it), but naming all three keeps the intent plain.
NO_AMX = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
X86 = {"x86_64", "amd64", "i386", "i686", "x86"}


def pinned_version(pyproject: str) -> str:
    """The ``llama-cpp-python==X`` pin from pyproject.toml: the one place the version is written."""
    match = re.search(r'"llama-cpp-python==([^"]+)"', pyproject)
    if not match:
        raise SystemExit("pyproject.toml pins no llama-cpp-python version")
    return match.group(1)


def cpu_flags(machine: str) -> list[str]:
    """Compiler flags to add for this processor architecture (empty where AMX cannot exist)."""
    return list(NO_AMX) if machine.lower() in X86 else []


def merged(existing: str, extra: list[str]) -> str:
    """``existing`` with ``extra`` appended, each flag once."""
    words = existing.split()
    return " ".join(words + [flag for flag in extra if flag not in words])


def build_env(environ: dict[str, str], machine: str) -> dict[str, str]:
    """The environment for the wheel build: the caller's, with the CPU flags added to
    CFLAGS/CXXFLAGS and CMAKE_ARGS left exactly as given."""
    env = dict(environ)
    extra = cpu_flags(machine)
    if extra:
        env["CFLAGS"] = merged(environ.get("CFLAGS", ""), extra)
        env["CXXFLAGS"] = merged(environ.get("CXXFLAGS", ""), extra)
    return env


def cpu_features(cpuinfo: str) -> str:
    """The first ``flags`` line of /proc/cpuinfo (what ``-march=native`` sees), or ''."""
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return " ".join(sorted(line.split(":", 1)[1].split()))
    return ""


def wheel_key(version: str, env: dict[str, str], machine: str, features: str) -> str:
    parts = [
        version,
        machine,
        env.get("CFLAGS", ""),
        env.get("CXXFLAGS", ""),
        env.get("CMAKE_ARGS", ""),
        features,
    ]
    return f"{version}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def install(python: str) -> Path:
    version = pinned_version((ROOT / "pyproject.toml").read_text())
    machine = platform.machine()
    env = build_env(dict(os.environ), machine)
    folder = WHEELS / wheel_key(version, env, machine, cpu_features(_read_cpuinfo()))
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        print(f"[build_llama] building llama-cpp-python {version} (about 9 minutes)", flush=True)
        print(
            f"[build_llama] CFLAGS={env.get('CFLAGS', '')!r} CMAKE_ARGS={env.get('CMAKE_ARGS', '')!r}",
            flush=True,
        )
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                python,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-cache-dir",
                "--no-binary",
                "llama-cpp-python",
                "-w",
                str(folder),
                f"llama-cpp-python=={version}",
            ],
            env=env,
            check=True,
        )
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        raise SystemExit(f"no wheel was built in {folder}")
    subprocess.run(
        [python, "-m", "pip", "install", "--force-reinstall", "--no-deps", str(wheels[-1])], check=True
    )
    return wheels[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "flags"])
    parser.add_argument("--python", default=sys.executable, help="the Python to install into")
    args = parser.parse_args(argv)
    if args.command == "flags":
        print(" ".join(cpu_flags(platform.machine())))
        return
    print(f"[build_llama] installed {install(args.python).name}")


if __name__ == "__main__":
    main()
