"""The load guardrail and the best variant that fits, with the machine's memory made up."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gguf
import pytest

from lm_jupyter.engine.guardrail import LoadPlan, MemoryGuard, evictable, projector_bytes
from lm_jupyter.engine.hardware import GIB, GPU, Memory
from lm_jupyter.engine.registry import LocalModel, Registry
from tests.tiny_gguf import write_tiny_model

MIB = 1 << 20


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """One model in two variants: a wide Q8_0 and a narrow Q4_K_M (the labels are what count
    for "best quantization"; the widths make the estimates differ)."""
    root = tmp_path_factory.mktemp("models")
    folder = root / "me" / "tiny-GGUF"
    write_tiny_model(folder / "tiny-Q8_0.gguf", n_embd=256, file_type=gguf.LlamaFileType.MOSTLY_Q8_0)
    write_tiny_model(folder / "tiny-Q4_K_M.gguf", n_embd=64, file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    return Registry(root)


def guard_with(mode: str, memory: Memory, *, offload: bool = False, max_memory: int = 0) -> MemoryGuard:
    guard = MemoryGuard(mode, max_memory=max_memory)
    guard.memory = lambda: memory  # type: ignore[method-assign]
    guard.offload.reported = offload
    return guard


def ram(available: int, swap: int = 0) -> Memory:
    return Memory(ram_total_bytes=64 * GIB, ram_available_bytes=available, swap_free_bytes=swap)


def variant(registry: Registry, quant: str) -> LocalModel:
    model = registry.find(f"me/tiny@{quant}")
    assert model is not None
    return model


def test_plan_passes_and_refuses(registry: Registry) -> None:
    model = variant(registry, "q8_0")
    roomy = guard_with("relaxed", ram(8 * GIB)).plan(model, 4096, 0.0, False)
    assert roomy.passes and roomy.shortfall is None and roomy.ram_room == 8 * GIB
    need = roomy.estimate.total_bytes
    assert roomy.ram_needed == need and roomy.estimate.total_vram_bytes == 0

    tight = guard_with("relaxed", ram(need - 1)).plan(model, 4096, 0.0, False)
    assert not tight.passes and tight.shortfall == "ram"
    error = tight.refusal()
    assert error.status == 400 and error.code == "insufficient_system_resources"
    message = error.message
    assert message.startswith("Model loading was stopped due to insufficient system resources")
    assert "me/tiny@q8_0 with a 4,096-token context" in message
    assert f"{need / GIB:.2f} GiB of RAM" in message and "(guardrails: relaxed)" in message
    assert "--force" in message and "--context-length" in message and "lmj ls --variants" in message

    body = tight.to_json()
    assert body["passesGuardrails"] is False and body["memory"]["totalBytes"] == need
    assert body["available"] == {"ram_bytes": need - 1, "vram_bytes": 0}


def test_modes(registry: Registry) -> None:
    model = variant(registry, "q8_0")
    need = guard_with("off", ram(0)).plan(model, 4096, 0.0, False).estimate.total_bytes
    short = ram(need // 2, swap=need)  # fits only if swap counts
    assert guard_with("relaxed", short).plan(model, 4096, 0.0, False).passes
    assert not guard_with("strict", short).plan(model, 4096, 0.0, False).passes
    assert guard_with("off", ram(0)).plan(model, 4096, 0.0, False).passes
    with pytest.raises(ValueError, match="guardrails must be one of"):
        MemoryGuard("lenient")


def test_max_memory_budget(registry: Registry) -> None:
    model = variant(registry, "q8_0")
    need = guard_with("off", ram(0)).plan(model, 4096, 0.0, False).estimate.total_bytes
    guard = guard_with("strict", ram(32 * GIB), max_memory=need + 100 * MIB)
    assert guard.plan(model, 4096, 0.0, False).passes
    # 200 MiB already held by loaded workers leaves too little under the cap...
    assert not guard.plan(model, 4096, 0.0, False, in_use=200 * MIB).passes
    # ...unless auto-evict is about to free them.
    assert guard.plan(model, 4096, 0.0, False, in_use=200 * MIB, freed=200 * MIB).passes


def test_gpu_memory(registry: Registry) -> None:
    model = variant(registry, "q8_0")
    probe = Memory(ram_total_bytes=64 * GIB, ram_available_bytes=32 * GIB, gpus=(GPU("T", GIB, GIB),))
    vram = guard_with("off", probe, offload=True).plan(model, 4096, 1.0, False).estimate.total_vram_bytes
    # A GPU with room for the model in total, but only half of it free right now:
    gpu = Memory(
        ram_total_bytes=64 * GIB, ram_available_bytes=32 * GIB, gpus=(GPU("T", 2 * vram, vram // 2),)
    )
    plan = guard_with("strict", gpu, offload=True).plan(model, 4096, 1.0, False)
    assert plan.gpu_offload == 1.0 and plan.estimate.total_vram_bytes == vram
    assert not plan.passes and plan.shortfall == "vram"
    assert "of GPU memory" in plan.refusal().message and "lower --gpu" in plan.refusal().message
    # relaxed: other processes may free the GPU; only more than its total memory is refused
    assert guard_with("relaxed", gpu, offload=True).plan(model, 4096, 1.0, False).passes
    # a build without offload runs it all on the CPU: nothing on the GPU, a note says so
    cpu = guard_with("strict", gpu, offload=False).plan(model, 4096, 1.0, False)
    assert cpu.gpu_offload == 0.0 and cpu.estimate.total_vram_bytes == 0 and cpu.passes
    assert "estimate is for the CPU" in cpu.to_json()["message"]


def test_gpu_by_default_offloads_what_fits(registry: Registry) -> None:
    """No ``--gpu``: every layer where the model fits in the GPU memory free now, else the most
    blocks that fit, else the CPU; a CPU build or a machine without a GPU offloads nothing."""
    model = variant(registry, "q8_0")
    probe = Memory(ram_total_bytes=64 * GIB, ram_available_bytes=32 * GIB, gpus=(GPU("T", GIB, GIB),))
    whole = guard_with("off", probe, offload=True).plan(model, 4096, 1.0, False).estimate.total_vram_bytes
    blocks = model.meta.arch_field("block_count", 0)
    assert blocks >= 2

    def auto(free: int, *, offload: bool = True, gpus: int = 1) -> LoadPlan:
        memory = Memory(
            ram_total_bytes=64 * GIB, ram_available_bytes=32 * GIB, gpus=(GPU("T", 4 * whole, free),) * gpus
        )
        return guard_with("relaxed", memory, offload=offload).plan(model, 4096, None, False)

    roomy = auto(2 * whole)
    assert roomy.gpu_offload == 1.0 and roomy.requested_gpu is None and roomy.passes
    assert roomy.estimate.total_vram_bytes == whole and roomy.to_json()["gpu_offload"] == 1.0
    assert roomy.to_json()["gpu_usable"]
    # Exactly the whole model still fits; one byte less does not.
    assert auto(whole).gpu_offload == 1.0
    partial = auto(whole - 1)
    assert 0 < partial.gpu_offload < 1 and partial.estimate.total_vram_bytes <= whole - 1
    # The fraction is whole blocks, the most that fit: one block more would not.
    layers = round(partial.gpu_offload * blocks)
    assert partial.gpu_offload == layers / blocks
    one_more = guard_with("off", probe, offload=True).plan(model, 4096, (layers + 1) / blocks, False)
    assert layers + 1 == blocks or one_more.estimate.total_vram_bytes > whole - 1
    assert auto(0).gpu_offload == 0.0 and auto(0).estimate.total_vram_bytes == 0
    cpu_build, no_gpu = auto(2 * whole, offload=False), auto(2 * whole, gpus=0)
    assert cpu_build.gpu_offload == no_gpu.gpu_offload == 0.0
    assert not cpu_build.to_json()["gpu_usable"] and not no_gpu.to_json()["gpu_usable"]
    # An explicit choice is kept, "off" included.
    explicit = guard_with("relaxed", probe, offload=True)
    assert explicit.plan(model, 4096, 0.0, False).gpu_offload == 0.0
    assert explicit.plan(model, 4096, 0.5, False).gpu_offload == 0.5


def test_unified_memory_counts_the_gpu_part_as_ram(registry: Registry) -> None:
    model = variant(registry, "q8_0")
    mac = Memory(
        ram_total_bytes=16 * GIB, ram_available_bytes=8 * GIB, unified=True, unified_gpu_bytes=10 * GIB
    )
    plan = guard_with("strict", mac, offload=True).plan(model, 4096, 1.0, False)
    assert plan.estimate.total_vram_bytes > 0
    assert plan.ram_needed == plan.estimate.total_bytes and plan.vram_room == 8 * GIB


def test_best_variant_that_fits(registry: Registry) -> None:
    small = variant(registry, "q4_k_m")
    big = variant(registry, "q8_0")
    probe = guard_with("off", ram(0))
    small_need = probe.plan(small, 4096, 0.0, False).estimate.total_bytes
    big_need = probe.plan(big, 4096, 0.0, False).estimate.total_bytes
    assert small_need < big_need
    assert registry.find("me/tiny") == big  # no predicate: the best quantization

    def fits(memory: Memory) -> object:
        return guard_with("strict", memory).fits(lambda model: 4096, 0.0, False)

    assert registry.find("me/tiny", fits(ram(big_need))) == big
    assert registry.find("me/tiny", fits(ram((small_need + big_need) // 2))) == small
    # Nothing fits: the smallest file, which the guardrail then refuses with its message.
    assert registry.find("me/tiny", fits(ram(1))).facts.size_bytes == min(
        small.facts.size_bytes, big.facts.size_bytes
    )
    assert guard_with("off", ram(1)).fits(lambda model: 4096, 0.0, False) is None


def test_projector_next_to_the_model(tmp_path: Path) -> None:
    model = tmp_path / "m-Q4_K_M.gguf"
    model.write_bytes(b"x")
    assert projector_bytes(model) == 0
    (tmp_path / "mmproj-m-F16.gguf").write_bytes(b"p" * 1234)
    assert projector_bytes(model) == 1234


def test_evictable_matches_auto_evict() -> None:
    a, b, c = (SimpleNamespace(jit=True, last_used=t) for t in (3.0, 1.0, 2.0))
    pinned = SimpleNamespace(jit=False, last_used=0.0)
    assert evictable([a, b, c, pinned], keep=0) == [b, c, a]  # least recently used first
    assert evictable([a, b, c, pinned], keep=2) == [b]
    assert evictable([pinned], keep=0) == []
