"""The llama.cpp build cannot crash on the CPU that built it: AMX stays out, the rest stays native."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_llama", REPO / "scripts" / "build_llama.py")
assert _spec and _spec.loader
build_llama = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_llama)

# ggml's AMX kernels (ggml-cpu/amx/) are the only code that emits these.
AMX_MNEMONICS = ("tilezero", "tileloadd", "tilestored", "tdpbssd", "tdpbusd", "tdpbf16ps", "ldtilecfg")


def test_x86_builds_get_amx_switched_off_and_cmake_args_pass_through() -> None:
    env = build_llama.build_env({"CMAKE_ARGS": "-DGGML_CUDA=on", "CFLAGS": "-O2", "PATH": "/bin"}, "x86_64")
    assert env["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    assert env["CFLAGS"] == "-O2 -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    assert env["CXXFLAGS"] == "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    assert env["PATH"] == "/bin"


def test_flags_are_added_once_and_not_on_arm() -> None:
    once = build_llama.build_env({"CFLAGS": "-mno-amx-tile"}, "AMD64")
    assert once["CFLAGS"].split().count("-mno-amx-tile") == 1
    assert build_llama.build_env({"CMAKE_ARGS": "-DGGML_METAL=on"}, "arm64") == {
        "CMAKE_ARGS": "-DGGML_METAL=on"
    }


def test_the_wheel_cache_key_follows_flags_cmake_args_and_cpu() -> None:
    env = build_llama.build_env({}, "x86_64")
    key = build_llama.wheel_key("0.3.36", env, "x86_64", "avx2 fma")
    assert key.startswith("0.3.36-")
    assert key != build_llama.wheel_key(
        "0.3.36", {**env, "CMAKE_ARGS": "-DGGML_CUDA=on"}, "x86_64", "avx2 fma"
    )
    assert key != build_llama.wheel_key("0.3.36", env, "x86_64", "avx2 fma amx_tile")
    assert key == build_llama.wheel_key("0.3.36", dict(env), "x86_64", "avx2 fma")


def test_cpu_features_and_the_pinned_version_are_read_from_their_files() -> None:
    cpuinfo = "processor : 0\nflags\t\t: fpu avx2 amx_tile\nprocessor : 1\nflags : fpu avx2 amx_tile\n"
    assert build_llama.cpu_features(cpuinfo) == "amx_tile avx2 fpu"
    version = build_llama.pinned_version((REPO / "pyproject.toml").read_text())
    from importlib.metadata import version as installed

    assert installed("llama-cpp-python") == version


def _macros(*flags: str) -> set[str]:
    out = subprocess.run(
        ["gcc", *flags, "-dM", "-E", "-"], input="", capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("#define")}


def test_the_flags_beat_march_on_a_cpu_with_amx() -> None:
    """ggml adds ``-march=native`` after CFLAGS; on a Sapphire Rapids the flags must still win,
    which GCC guarantees for explicit ``-mno-X`` whatever the order. Checked here by compiling for
    that CPU, so it holds on any x86 build machine (elsewhere no flag is added at all)."""
    flags = build_llama.cpu_flags(platform.machine())
    if platform.machine().lower() not in build_llama.X86:
        assert flags == []
        return
    plain = _macros("-march=sapphirerapids")
    assert {"__AMX_TILE__", "__AMX_INT8__", "__AMX_BF16__"} <= plain
    ours = _macros(*flags, "-march=sapphirerapids")
    assert not {m for m in ours if m.startswith("__AMX")}
    # Everything else Sapphire Rapids has stays on: the build is as fast as a native one.
    assert {"__AVX512F__", "__AVX512VNNI__", "__AVX512BF16__", "__AVX2__", "__FMA__"} <= ours


def test_the_installed_cpu_library_has_no_amx_instructions() -> None:
    import llama_cpp

    libs = sorted((Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu*.so"))
    assert libs, "llama_cpp ships no libggml-cpu library"
    assert shutil.which("objdump"), "objdump (binutils) is needed"
    for lib in libs:
        text = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=True
        ).stdout
        found = {m for m in AMX_MNEMONICS if f"\t{m} " in text or f"\t{m}\n" in text}
        assert not found, (
            f"{lib.name} contains AMX instructions {sorted(found)}: rebuild with scripts/build_llama.py"
        )
