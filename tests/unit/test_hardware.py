"""Memory probes: the parsers get text captured from real machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from lm_jupyter.engine import hardware
from lm_jupyter.engine.hardware import (
    GIB,
    GPU,
    Memory,
    OffloadSupport,
    apple_gpu_budget,
    llama_backends,
    parse_cgroup_limit,
    parse_meminfo,
    parse_size,
    parse_vm_stat,
)

MEMINFO = """MemTotal:       24684096 kB
MemFree:        22165492 kB
MemAvailable:   23854740 kB
Buffers:           22000 kB
Cached:          1800800 kB
SwapTotal:       2097148 kB
SwapFree:        1048576 kB
HugePages_Total:       0
"""

VM_STAT = """Mach Virtual Memory Statistics: (page size of 16384 bytes)
Pages free:                               12345.
Pages active:                            500000.
Pages inactive:                          200000.
Pages speculative:                         5000.
Pages throttled:                              0.
Pages wired down:                        150000.
Pages purgeable:                           1000.
"Translation faults":                 123456789.
"""


def test_meminfo() -> None:
    info = parse_meminfo(MEMINFO)
    assert info["MemTotal"] == 24684096 * 1024
    assert info["MemAvailable"] == 23854740 * 1024
    assert info["SwapFree"] == GIB
    assert info["HugePages_Total"] == 0  # a count, not kB


def test_vm_stat() -> None:
    # free + inactive + speculative + purgeable pages, 16 KiB each (Apple silicon)
    assert parse_vm_stat(VM_STAT) == (12345 + 200000 + 5000 + 1000) * 16384
    assert parse_vm_stat("Pages free: 10.\n") == 10 * 4096  # no header: 4 KiB pages


def test_cgroup_limits() -> None:
    # v2: 8 GiB limit, 3 GiB charged of which 1 GiB is inactive file cache
    assert parse_cgroup_limit("8589934592\n", "3221225472\n", "anon 1\ninactive_file 1073741824\n") == 6 * GIB
    # v1 names its counter total_inactive_file; v1 "no limit" is a huge number, v2 says max
    assert parse_cgroup_limit("4294967296", "1073741824", "total_inactive_file 0") == 3 * GIB
    assert parse_cgroup_limit("9223372036854771712", "1", "") is None
    assert parse_cgroup_limit("max\n", "1", "") is None
    assert parse_cgroup_limit("1000", "5000", "") == 0  # over the limit already


def test_apple_budget() -> None:
    assert apple_gpu_budget(16 * GIB) == 16 * GIB * 2 // 3
    assert apple_gpu_budget(64 * GIB) == 48 * GIB


def test_sizes() -> None:
    assert parse_size("8GB") == 8_000_000_000
    assert parse_size("8GiB") == 8 * GIB
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("1.5g") == 1_500_000_000
    assert parse_size("1024") == 1024
    assert parse_size(77) == 77
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


def test_memory_views() -> None:
    discrete = Memory(
        ram_total_bytes=64 * GIB,
        ram_available_bytes=40 * GIB,
        gpus=(GPU("A", 24 * GIB, 20 * GIB), GPU("B", 24 * GIB, 10 * GIB)),
    )
    assert discrete.has_gpu and discrete.vram_total_bytes == 48 * GIB
    assert discrete.vram_available_bytes == 30 * GIB
    unified = Memory(
        ram_total_bytes=32 * GIB, ram_available_bytes=8 * GIB, unified=True, unified_gpu_bytes=21 * GIB
    )
    assert unified.has_gpu and unified.vram_total_bytes == 21 * GIB
    assert unified.vram_available_bytes == 8 * GIB  # it comes out of the same free RAM
    assert not Memory(ram_total_bytes=1, ram_available_bytes=1).has_gpu


def test_backends_are_found_without_importing_llama_cpp(tmp_path: Path) -> None:
    for name in ("libggml-base.so", "libggml-cpu.so", "libllama.so"):
        (tmp_path / name).touch()
    assert llama_backends(tmp_path) == set()
    (tmp_path / "libggml-cuda.so").touch()
    assert llama_backends(tmp_path) == {"cuda"}
    assert llama_backends(tmp_path / "missing") == set()


def test_offload_support_prefers_the_workers_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "llama_backends", lambda: {"cuda"})
    support = OffloadSupport()
    assert support() is True  # guessed from the shipped libraries
    support.reported = False  # a worker said this build cannot offload
    assert support() is False


def test_probes_run_here() -> None:
    """On this machine (whatever it is) the probes answer without raising."""
    memory = hardware.system_memory()
    assert memory.ram_total_bytes > 0 and 0 < memory.ram_available_bytes <= memory.ram_total_bytes
    assert hardware.process_rss() > 0
    assert isinstance(hardware.nvidia_gpus(), list)
