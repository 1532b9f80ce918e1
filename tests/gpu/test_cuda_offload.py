"""GPU offload on a real NVIDIA GPU with a CUDA build of llama-cpp-python.

These tests need hardware that CI does not have, so they skip unless llama.cpp can offload and
NVML sees a GPU. They run on a lent GPU machine with the engine alone (no Jupyter server):

    python -m pytest --noconftest -p no:cacheprovider -s tests/gpu

They check what only a GPU shows: that ``--gpu`` really moves layers to VRAM, that the memory
estimate's GPU part matches the buffers llama.cpp allocates there (the CPU tests compare RAM),
that NVML's reading matches ``nvidia-smi``, and that the batching scheduler's outputs on CUDA
match one request run alone. ``LM_JUPYTER_GPU_REPORT`` names a JSON file for the figures
(docs/benchmarks.md records them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tiny_gguf (no conftest)

llama_cpp = pytest.importorskip("llama_cpp")

from lm_jupyter.api.requests import CompletionRequest  # noqa: E402
from lm_jupyter.engine.hardware import nvidia_gpus  # noqa: E402
from lm_jupyter.engine.instance import LoadOptions  # noqa: E402
from lm_jupyter.engine.manager import ModelManager  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not llama_cpp.llama_supports_gpu_offload() or not nvidia_gpus(),
        reason="needs an NVIDIA GPU and a CUDA build of llama-cpp-python",
    ),
]

MIB = 1 << 20
REPORT: dict[str, Any] = {}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_gguf import write_tiny_model

    root = tmp_path_factory.mktemp("models")
    # Big enough that buffer sizes are not dominated by llama.cpp's fixed allocations
    # (24 layers of 1024 wide: about 1.3 GB of F32 weights).
    write_tiny_model(root / "test" / "mid" / "mid-f32.gguf", name="mid", n_embd=1024, n_layer=24)
    return root


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def load_and_measure(
    models: Path, gpu: float | None, flash_attention: bool = False
) -> dict[str, Any]:
    manager = ModelManager(models, guardrails="off")
    options = LoadOptions(context_length=4096, gpu=gpu, parallel=1, flash_attention=flash_attention)
    try:
        instance = await manager.load("test/mid", options)
        memory = dict(instance.memory)
        memory["on_gpu"] = instance.on_gpu
        memory["gpu_offload"] = instance.gpu_offload
        return memory
    finally:
        await manager.shutdown()


def buffers(memory: dict[str, Any], prefix: str, kind: str) -> int:
    sizes = memory["buffers"].items()
    return sum(size for name, size in sizes if name.startswith(prefix) and name.endswith(kind))


def record(name: str, value: Any) -> None:
    REPORT[name] = value
    print(f"{name}: {value}")
    target = os.environ.get("LM_JUPYTER_GPU_REPORT")
    if target:
        Path(target).write_text(json.dumps(REPORT, indent=2))


def test_nvml_total_matches_nvidia_smi() -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi is not installed")
    out = subprocess.run(
        [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()[0]
    name, total_mib = (part.strip() for part in out.split(","))
    gpu = nvidia_gpus()[0]
    record("nvml", {"name": gpu.name, "total_mib": gpu.total_bytes // MIB, "smi_total_mib": int(total_mib)})
    assert gpu.name == name
    assert abs(gpu.total_bytes // MIB - int(total_mib)) <= 1
    assert 0 < gpu.free_bytes <= gpu.total_bytes


@pytest.mark.parametrize("flash_attention", [False, True])
def test_full_offload_puts_weights_and_kv_on_the_gpu(models: Path, flash_attention: bool) -> None:
    memory = run(load_and_measure(models, 1.0, flash_attention))
    estimate = memory["estimate"]["breakdown"]
    cuda_model = buffers(memory, "CUDA0", "model")
    cuda_kv = buffers(memory, "CUDA0", "KV")
    cuda_compute = buffers(memory, "CUDA0", "compute")
    record(
        f"full_offload{'_flash' if flash_attention else ''}",
        {
            "buffers_mib": {k: round(v / MIB, 2) for k, v in memory["buffers"].items()},
            "estimate_mib": {k: round(v / MIB, 2) for k, v in estimate.items()},
        },
    )
    assert memory["on_gpu"]
    assert cuda_model > 0 and cuda_kv > 0
    # Weights and KV are sized exactly by the estimate on CPU; on CUDA they must be too (MiB
    # rounding in llama.cpp's log is the only slack).
    assert abs(estimate["weights_gpu"] - cuda_model) <= 0.01 * cuda_model + MIB
    assert abs(estimate["kv_gpu"] - cuda_kv) <= 0.01 * cuda_kv + MIB
    assert estimate["kv_cpu"] == 0
    # The compute buffer is modelled from the graph's largest stage, not taken from a dry run:
    # it may overshoot (it does on CPU for narrow models), but it must be the right size.
    assert cuda_compute > 0
    assert 0.5 * cuda_compute <= estimate["compute_gpu"] <= 2 * cuda_compute + MIB


def test_gpu_is_the_default_where_the_model_fits(models: Path) -> None:
    """No ``gpu`` option (an OpenAI client's JIT load, ``lmj load`` without ``--gpu``): every
    layer goes to the GPU, as LM Studio does, because the model fits in its free memory."""
    memory = run(load_and_measure(models, None))
    record("default_offload", {"gpu_offload": memory["gpu_offload"]})
    assert memory["on_gpu"] and memory["gpu_offload"] == 1.0
    assert buffers(memory, "CUDA0", "model") > 0 and buffers(memory, "CUDA0", "KV") > 0


def test_partial_offload_splits_layers(models: Path) -> None:
    memory = run(load_and_measure(models, 0.5))
    estimate = memory["estimate"]["breakdown"]
    cuda_model = buffers(memory, "CUDA0", "model")
    cpu_model = buffers(memory, "CPU", "model")
    record(
        "half_offload",
        {
            "buffers_mib": {k: round(v / MIB, 2) for k, v in memory["buffers"].items()},
            "estimate_mib": {k: round(v / MIB, 2) for k, v in estimate.items()},
        },
    )
    assert cuda_model > 0 and cpu_model > 0
    assert abs(estimate["weights_gpu"] - cuda_model) <= 0.01 * cuda_model + MIB
    assert abs(estimate["kv_gpu"] - buffers(memory, "CUDA0", "KV")) <= 0.01 * estimate["kv_gpu"] + MIB
    assert abs(estimate["kv_cpu"] - buffers(memory, "CPU", "KV")) <= 0.01 * estimate["kv_cpu"] + MIB


async def greedy(manager: ModelManager, prompts: list[str]) -> list[str]:
    async def one(text: str) -> str:
        request = CompletionRequest(model="gpu-mid", prompt=text, max_tokens=24, temperature=0, seed=1)
        _, turn = await manager.complete(request)
        return "".join([delta.get("content", "") async for delta in turn])

    return list(await asyncio.gather(*(one(text) for text in prompts)))


def test_batched_generation_on_cuda_matches_solo(models: Path) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        manager = ModelManager(models, guardrails="off")
        try:
            await manager.load("test/mid", LoadOptions(identifier="gpu-mid", gpu=1.0, parallel=4))
            prompts = [f"The GPU says {i}" for i in range(4)]
            together = await greedy(manager, prompts)
            alone = [(await greedy(manager, [text]))[0] for text in prompts]
            return together, alone
        finally:
            await manager.shutdown()

    together, alone = run(scenario())
    record("batched_vs_solo", {"together": together, "alone": alone})
    assert all(text for text in together)
    # Batch shapes change summation order on GPUs too; the first tokens must agree.
    for a, b in zip(together, alone, strict=True):
        assert a[:8] == b[:8]
