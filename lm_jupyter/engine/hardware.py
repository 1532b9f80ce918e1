"""How much memory this machine has free: RAM, GPU memory, Apple unified memory.

Used by the load guardrail and by ``POST /api/v1/models/estimate``. It never imports
llama_cpp (that would load llama.cpp's native libraries, and on a CUDA build initialise the
driver, inside the Jupyter server process): whether this build can offload to a GPU is read
from the backend libraries that ship with llama-cpp-python, and the worker's own answer
(``gpu_offload_supported`` in its ``loaded`` event) replaces that guess once a model loads.

Every parser takes text, so the unit tests feed it files from other machines.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1 << 30
GPU_BACKENDS = ("cuda", "metal", "vulkan", "hip", "sycl", "musa", "opencl", "cann", "kompute")


@dataclass(frozen=True)
class GPU:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class Memory:
    """Free and total memory. On Apple silicon the GPU shares RAM (``unified``): its budget is
    Metal's working-set limit, and what it uses comes out of ``ram_available_bytes``."""

    ram_total_bytes: int
    ram_available_bytes: int
    swap_free_bytes: int = 0
    gpus: tuple[GPU, ...] = ()
    unified: bool = False
    unified_gpu_bytes: int = 0

    @property
    def vram_total_bytes(self) -> int:
        return self.unified_gpu_bytes if self.unified else sum(g.total_bytes for g in self.gpus)

    @property
    def vram_available_bytes(self) -> int:
        if self.unified:
            return min(self.unified_gpu_bytes, self.ram_available_bytes)
        return sum(g.free_bytes for g in self.gpus)

    @property
    def has_gpu(self) -> bool:
        return self.unified or bool(self.gpus)


# -- parsers (text in, numbers out) ------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per field (the file says kB and means KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            scale = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
            values[name.strip()] = int(parts[0]) * scale
    return values


def parse_vm_stat(text: str) -> int:
    """Bytes macOS can hand out now, from ``vm_stat``: free, inactive and speculative pages
    (inactive pages are file cache and idle memory the kernel reclaims first)."""
    match = re.search(r"page size of (\d+) bytes", text)
    page = int(match.group(1)) if match else 4096
    pages = 0
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() in ("Pages free", "Pages inactive", "Pages speculative", "Pages purgeable"):
            digits = rest.strip().rstrip(".")
            if digits.isdigit():
                pages += int(digits)
    return pages * page


def parse_cgroup_limit(limit: str, usage: str, stat: str) -> int | None:
    """Room left under a container's memory limit (cgroup v1 or v2), or None without one.

    ``usage`` counts page cache too; the inactive part of it is reclaimable, so it is given
    back, as ``MemAvailable`` does for the whole machine.
    """
    limit = limit.strip()
    if not limit or limit == "max" or not limit.isdigit() or int(limit) >= 1 << 60:
        return None
    used = int(usage.strip()) if usage.strip().isdigit() else 0
    reclaimable = 0
    for line in stat.splitlines():
        name, _, value = line.partition(" ")
        if name in ("inactive_file", "total_inactive_file") and value.strip().isdigit():
            reclaimable = int(value)
            break
    return max(0, int(limit) - used + reclaimable)


def apple_gpu_budget(memsize: int) -> int:
    """Metal's default ``recommendedMaxWorkingSetSize``: about 2/3 of RAM up to 36 GiB, 3/4
    above (raise it with ``sudo sysctl iogpu.wired_limit_mb``)."""
    return memsize * 3 // 4 if memsize > 36 * GIB else memsize * 2 // 3


_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str | int) -> int:
    """``8GB``, ``512MiB``, ``1.5g`` or a plain number of bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(i?)b?\s*", text.lower())
    if not match:
        raise ValueError(f"'{text}' is not a size; use bytes or a unit, e.g. 8GB or 512MiB")
    number, unit, binary = match.groups()
    scale = 1024 ** "bkmgt".index(unit) if binary or unit == "" else _UNITS[unit]
    return int(float(number) * scale)


# -- probes --------------------------------------------------------------------------------


def system_memory() -> Memory:
    """Free memory right now (Linux: /proc and cgroups; macOS: sysctl and vm_stat)."""
    gpus = tuple(nvidia_gpus())
    if sys.platform == "darwin":
        memsize = int(_run(["sysctl", "-n", "hw.memsize"]) or 0)
        available = parse_vm_stat(_run(["vm_stat"]))
        unified = platform.machine() == "arm64"
        return Memory(
            ram_total_bytes=memsize,
            ram_available_bytes=available,
            gpus=gpus,
            unified=unified,
            unified_gpu_bytes=apple_gpu_budget(memsize) if unified else 0,
        )
    info = parse_meminfo(_read("/proc/meminfo"))
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    room = _cgroup_room()
    if room is not None:
        available = min(available, room)
    return Memory(
        ram_total_bytes=total,
        ram_available_bytes=available,
        swap_free_bytes=info.get("SwapFree", 0),
        gpus=gpus,
    )


def _cgroup_room() -> int | None:
    v2 = Path("/sys/fs/cgroup")
    for own in _read("/proc/self/cgroup").splitlines():
        if own.startswith("0::"):
            folder = v2 / own[3:].lstrip("/")
            if (folder / "memory.max").exists():
                return parse_cgroup_limit(
                    _read(folder / "memory.max"),
                    _read(folder / "memory.current"),
                    _read(folder / "memory.stat"),
                )
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        return parse_cgroup_limit(
            _read(v1 / "memory.limit_in_bytes"),
            _read(v1 / "memory.usage_in_bytes"),
            _read(v1 / "memory.stat"),
        )
    return None


class _NvmlMemory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def nvidia_gpus() -> list[GPU]:
    """NVIDIA GPUs through NVML (the driver's libnvidia-ml, via ctypes; no Python package
    needed). An empty list where there is no driver."""
    lib = None
    for name in ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None or lib.nvmlInit_v2() != 0:
        return []
    gpus = []
    try:
        count = ctypes.c_uint(0)
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            memory = _NvmlMemory()
            label = ctypes.create_string_buffer(96)
            if lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
                continue
            if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
                continue
            lib.nvmlDeviceGetName(handle, label, 96)
            gpus.append(GPU(label.value.decode(errors="replace"), memory.total, memory.free))
    finally:
        lib.nvmlShutdown()
    return gpus


def llama_backends(lib_dir: Path | None = None) -> set[str]:
    """GPU backends this llama-cpp-python build ships (``libggml-cuda.so`` and friends),
    found without importing it."""
    if lib_dir is None:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or spec.origin is None:
            return set()
        lib_dir = Path(spec.origin).parent / "lib"
    found = set()
    if lib_dir.is_dir():
        for entry in lib_dir.iterdir():
            for backend in GPU_BACKENDS:
                if f"ggml-{backend}" in entry.name.lower():
                    found.add(backend)
    return found


@dataclass
class OffloadSupport:
    """Whether llama.cpp here can put layers on a GPU: the worker's answer once one has
    loaded a model, before that a guess from the shipped backend libraries."""

    reported: bool | None = None
    _guess: bool | None = field(default=None, repr=False)

    def __call__(self) -> bool:
        if self.reported is not None:
            return self.reported
        if self._guess is None:
            self._guess = bool(llama_backends())
        return self._guess


def process_rss(pid: int | None = None) -> int:
    """Resident memory of a process (default: this one): /proc on Linux, ``ps`` elsewhere."""
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    kib = _run(["ps", "-o", "rss=", "-p", str(pid or os.getpid())]).strip()
    return int(kib) * 1024 if kib.isdigit() else 0


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
