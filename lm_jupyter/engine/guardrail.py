"""The load guardrail: estimate a load, compare it with the memory that is free, and refuse
what cannot fit before a worker tries (and takes the machine, or the user's notebooks, down
with it when the kernel's OOM killer picks a victim).

Modes (``ModelManager.guardrails``):

- ``strict``: the RAM part must fit in available RAM (``MemAvailable``, capped by the
  container's cgroup limit), the GPU part in free GPU memory.
- ``relaxed`` (default): free swap counts as RAM, and the GPU part need only fit in the GPU's
  *total* memory. Running out of RAM is what gets processes killed, so RAM is checked
  against what really is free; a GPU that is short of memory fails the allocation cleanly
  (the load reports llama.cpp's error and nothing else is hurt), and GPU memory that other
  processes hold now may be released, so only an impossible GPU load is refused.
- ``off``: never refuse.

``ModelManager.max_memory`` caps what all loaded models together may take (shared
JupyterHub nodes): the room is then also at most that cap minus what the loaded workers
already hold.

A refused load is a **400** (``insufficient_system_resources``), not a 5xx: the request as
sent can never succeed on this machine, and OpenAI SDKs retry 5xx answers automatically,
which would only repeat the refusal. The fix is in the request: ``force``, a smaller
``context_length``, less GPU offload, or a smaller variant.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..api.errors import APIError
from .estimate import Estimate, EstimateOptions, estimate, n_gpu_layers
from .gguf_meta import GGUFMetadata
from .hardware import GIB, Memory, OffloadSupport, process_rss, system_memory
from .mlx_meta import MLXMetadata, estimate_mlx
from .registry import LocalModel

Mode = Literal["off", "relaxed", "strict"]
MODES: tuple[Mode, ...] = ("off", "relaxed", "strict")
_MEMORY_TTL = 2.0  # seconds a memory reading is reused (listing models estimates every variant)


@dataclass(frozen=True)
class LoadPlan:
    """What one load would cost and whether the guardrail lets it through."""

    model: LocalModel
    context_length: int  # as requested (or the default); llama.cpp pads it to ``estimate.n_ctx``
    requested_gpu: float | None  # None: automatic (as much as fits, everything where it does)
    gpu_offload: float  # what will really be offloaded: 0 without a GPU this build can use
    estimate: Estimate
    mode: Mode
    ram_needed: int  # the RAM part, or everything on unified memory
    ram_room: int
    vram_room: int
    passes: bool
    shortfall: Literal["ram", "vram"] | None
    gpu_usable: bool = False  # a GPU is here and this llama.cpp build can offload to it

    def to_json(self) -> dict[str, Any]:
        """``POST /api/v1/models/estimate``: LM Studio's ``{memory, passesGuardrails}`` plus
        what the verdict was measured against."""
        body: dict[str, Any] = {
            "model": self.model.facts.key,
            "context_length": self.context_length,
            "gpu_offload": self.gpu_offload,
            "gpu_usable": self.gpu_usable,  # ours: whether a GPU control means anything here
            "memory": self.estimate.memory(),
            "passesGuardrails": self.passes,
            "guardrails": self.mode,
            "available": {"ram_bytes": self.ram_room, "vram_bytes": self.vram_room},
            "breakdown": self.estimate.parts,
        }
        if self.requested_gpu and self.gpu_offload == 0:
            body["message"] = "No GPU this llama.cpp build can use was found: the estimate is for the CPU."
        if self.estimate.notes:
            body["notes"] = list(self.estimate.notes)
        return body

    def refusal(self) -> APIError:
        key = self.model.facts.key
        est = self.estimate
        if self.shortfall == "vram":
            need = f"{_gib(est.total_vram_bytes)} of GPU memory"
            room = f"{_gib(self.vram_room)} is {'free' if self.mode == 'strict' else 'there'}"
            fixes = "lower --gpu"
        else:
            need = f"{_gib(self.ram_needed)} of RAM"
            room = f"{_gib(self.ram_room)} is available"
            fixes = "choose a smaller --context-length"
        return APIError(
            "Model loading was stopped due to insufficient system resources: "
            f"{key} with a {self.context_length:,}-token context needs an estimated {need}, but "
            f"only {room} (guardrails: {self.mode}). Load it anyway with `lmj load {key} --force` "
            f'(`"force": true`), {fixes}, or pick a smaller variant (`lmj ls --variants`).',
            status=400,
            code="insufficient_system_resources",
        )


class MemoryGuard:
    """Estimates loads and enforces the guardrail mode; owned by the ModelManager."""

    def __init__(self, mode: str = "relaxed", *, max_memory: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"guardrails must be one of {', '.join(MODES)}, not '{mode}'")
        self.mode: Mode = mode  # type: ignore[assignment]
        self.max_memory = max_memory
        self.offload = OffloadSupport()
        self._memory: tuple[float, Memory] | None = None

    def gpu_usable(self, memory: Memory) -> bool:
        """A GPU is there and this llama.cpp build can offload to it."""
        return memory.has_gpu and self.offload()

    def memory(self) -> Memory:
        now = time.monotonic()
        if self._memory is None or now - self._memory[0] > _MEMORY_TTL:
            self._memory = (now, system_memory())
        return self._memory[1]

    def estimate(
        self,
        model: LocalModel,
        context_length: int,
        gpu: float | None,
        flash_attention: bool,
        memory: Memory,
    ) -> tuple[Estimate, float]:
        """The estimate for a load as the worker will really run it, and the GPU fraction used."""
        if isinstance(model.meta, MLXMetadata):  # MLX puts everything where Metal is: no split
            return estimate_mlx(model.meta, context_length), 0.0
        return self.estimate_header(
            model.meta,
            model.facts.size_bytes,
            embedding=model.facts.pooled,
            projector=projector_bytes(model.file),
            context_length=context_length,
            gpu=gpu,
            flash_attention=flash_attention,
            memory=memory,
        )

    def estimate_header(
        self,
        meta: GGUFMetadata,
        file_size: int,
        *,
        embedding: bool,
        projector: int,
        context_length: int,
        gpu: float | None,
        flash_attention: bool,
        memory: Memory,
    ) -> tuple[Estimate, float]:
        """``estimate`` from a header alone: also for a file still on the Hub (``lmj get``
        picks the variant that fits before downloading it).

        The batch sizes mirror ``LlamaBackend`` (``n_ubatch`` 512, or the whole context for
        embedding models), and the worker runs one sequence with a full-size SWA cache.
        ``gpu`` None is LM Studio's default: every layer on the GPU where the estimate fits
        in the GPU memory free now, else as many layers as fit (``auto_offload``).
        """
        block_count = meta.arch_field("block_count", 0) or 0

        @functools.cache  # auto_offload has already estimated the fraction it picks
        def at(offload: float) -> Estimate:
            options = EstimateOptions(
                context_length=context_length,
                gpu_layers=n_gpu_layers(offload, block_count),
                flash_attention=flash_attention,
                n_ubatch=context_length if embedding else min(512, context_length),
                projector_bytes=projector,
            )
            return estimate(meta, file_size, options)

        if not self.gpu_usable(memory):
            offload = 0.0
        elif gpu is None:
            offload = auto_offload(at, block_count, memory.vram_available_bytes)
        else:
            offload = gpu
        return at(offload), offload

    def verdict(
        self, est: Estimate, offload: float, memory: Memory, *, in_use: int = 0, freed: int = 0
    ) -> tuple[int, int, int, Literal["ram", "vram"] | None]:
        """RAM needed, RAM and GPU room, and what falls short (None: it fits)."""
        ram_room, vram_room = self.room(memory, in_use=in_use, freed=freed)
        # On unified memory the GPU's share comes out of RAM too.
        ram_needed = est.total_bytes if memory.unified and offload > 0 else est.ram_bytes
        shortfall: Literal["ram", "vram"] | None = None
        if self.mode != "off":
            if ram_needed > ram_room:
                shortfall = "ram"
            elif est.total_vram_bytes > vram_room:
                shortfall = "vram"
        return ram_needed, ram_room, vram_room, shortfall

    def plan(
        self,
        model: LocalModel,
        context_length: int,
        gpu: float | None,
        flash_attention: bool,
        *,
        in_use: int = 0,
        freed: int = 0,
    ) -> LoadPlan:
        """Estimate a load and judge it. ``in_use``: RAM the loaded workers hold (counted
        against ``max_memory``); ``freed``: RAM that auto-evict will release first."""
        memory = self.memory()
        est, offload = self.estimate(model, context_length, gpu, flash_attention, memory)
        ram_needed, ram_room, vram_room, shortfall = self.verdict(
            est, offload, memory, in_use=in_use, freed=freed
        )
        return LoadPlan(
            model=model,
            context_length=context_length,
            requested_gpu=gpu,
            gpu_offload=offload,
            estimate=est,
            mode=self.mode,
            ram_needed=ram_needed,
            ram_room=ram_room,
            vram_room=vram_room,
            passes=shortfall is None,
            shortfall=shortfall,
            gpu_usable=self.gpu_usable(memory),
        )

    def room(self, memory: Memory, *, in_use: int = 0, freed: int = 0) -> tuple[int, int]:
        """RAM and GPU memory a new load may take under this mode."""
        ram = memory.ram_available_bytes + freed
        if self.mode != "strict":
            ram += memory.swap_free_bytes
        if self.max_memory:
            ram = min(ram, max(0, self.max_memory - in_use + freed))
        if memory.unified:
            vram = memory.vram_available_bytes if self.mode == "strict" else memory.unified_gpu_bytes
        else:
            vram = memory.vram_available_bytes if self.mode == "strict" else memory.vram_total_bytes
        return ram, vram

    def fits(
        self,
        context_length: Callable[[LocalModel], int],
        gpu: float | None,
        flash_attention: bool,
        *,
        in_use: int = 0,
        freed: int = 0,
    ) -> Callable[[LocalModel], bool] | None:
        """A ``Registry.find`` predicate: does this variant pass the guardrail? None when the
        guardrail is off (then the best quantization wins, fitting or not)."""
        if self.mode == "off":
            return None

        def fits(model: LocalModel) -> bool:
            plan = self.plan(model, context_length(model), gpu, flash_attention, in_use=in_use, freed=freed)
            return plan.passes

        return fits


def auto_offload(at: Callable[[float], Estimate], block_count: int, vram_free: int) -> float:
    """The largest offload fraction whose GPU part fits in ``vram_free``: 1 (every layer and
    the output) where the whole model fits, else the most whole blocks that do (the GPU part
    grows with each block, so a bisection finds it), else 0."""
    if at(1.0).total_vram_bytes <= vram_free:
        return 1.0
    if block_count <= 0:
        return 0.0
    low, high = 0, block_count  # at(low / n) fits (0 always does); at(high / n) does not
    while high - low > 1:
        middle = (low + high) // 2
        if at(middle / block_count).total_vram_bytes <= vram_free:
            low = middle
        else:
            high = middle
    return low / block_count


def usage(loaded: Iterable[Any], evicted: Iterable[Any]) -> tuple[int, int]:
    """RAM the loaded workers hold, and the part of it that evicting ``evicted`` frees."""
    held = {id(inst): process_rss(inst.worker.pid) if inst.worker.pid else 0 for inst in loaded}
    return sum(held.values()), sum(held.get(id(inst), 0) for inst in evicted)


def evictable(instances: Iterable[Any], keep: int) -> list[Any]:
    """The JIT instances auto-evict unloads before a JIT load
    (``lifecycle.evict_jit_instances``): all but the ``keep`` most recently used."""
    jit = sorted((inst for inst in instances if inst.jit), key=lambda inst: inst.last_used)
    return jit[: max(0, len(jit) - max(keep, 0))]


def projector_bytes(model_file: Path) -> int:
    """Size of a vision projector (``mmproj*.gguf``) next to the model, as LM Studio counts it."""
    try:
        sizes = [f.stat().st_size for f in model_file.parent.glob("*.gguf") if "mmproj" in f.name.lower()]
    except OSError:
        return 0
    return max(sizes, default=0)


def _gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB"
