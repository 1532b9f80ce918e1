"""Model listings in OpenAI's, LM Studio v0's and LM Studio v1's shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    """What is known about one model file on disk, from its GGUF metadata alone."""

    key: str  # this file's key: the model key, plus "@variant" when the repo holds several files
    model_key: str
    path: str  # relative to the models folder: publisher/repo/file.gguf
    publisher: str
    arch: str
    type: str  # "llm" | "embeddings" | "reranker"

    @property
    def pooled(self) -> bool:
        """Embedding models and rerankers run on a pooling context, not the LLM scheduler."""
        return self.type != "llm"

    quantization: str
    size_bytes: int
    max_context_length: int
    params_string: str | None
    trained_for_tool_use: bool
    reasoning: bool
    display_name: str
    fill_in_middle: bool = False  # has FIM tokens: /v1/completions takes a `suffix`
    format: str = "gguf"  # "gguf" (a file, llama.cpp) or "mlx" (a folder, mlx-lm)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedInstance:
    """A model loaded in a worker, as the routes report it."""

    identifier: str
    key: str
    context_length: int
    status: str  # idle | generating | loading
    queued: int  # requests in the instance's queue, the running one included (as LM Studio counts)
    jit: bool
    ttl_seconds: float | None
    ttl_remaining_seconds: float | None
    memory_bytes: int | None
    parallel: int
    gpu_offload: float | None  # None: still loading, offload chosen by what fits
    flash_attention: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.identifier,
            "variant": self.key,
            "config": {
                "context_length": self.context_length,
                "parallel": self.parallel,
                "flash_attention": self.flash_attention,
                "gpu_offload": self.gpu_offload,
            },
            "device": device(self.gpu_offload),
            "status": self.status,
            "queued": self.queued,
            "loaded_by": "jit" if self.jit else "explicit",
            "ttl_seconds": self.ttl_seconds,
            "ttl_remaining_seconds": self.ttl_remaining_seconds,
            "memory_bytes": self.memory_bytes,
        }


def device(gpu_offload: float | None) -> str | None:
    """Where an instance runs, from the fraction of its layers on the GPU."""
    if gpu_offload is None:
        return None
    return "cpu" if gpu_offload <= 0 else "gpu" if gpu_offload >= 1 else "gpu+cpu"


def openai_models(ids: list[str]) -> dict[str, Any]:
    return {
        "data": [{"id": model_id, "object": "model", "owned_by": "organization_owner"} for model_id in ids],
        "object": "list",
    }


def v0_model(
    facts: ModelFacts, instance: LoadedInstance | None, last_error: str | None = None
) -> dict[str, Any]:
    """One model (or loaded instance); ``last_error`` is ours: why its worker last died, shown
    while it is not loaded again."""
    body: dict[str, Any] = {
        "id": instance.identifier if instance else facts.model_key,
        "object": "model",
        "type": facts.type,
        "publisher": facts.publisher,
        "arch": facts.arch,
        "compatibility_type": facts.format,
        "quantization": facts.quantization,
        "state": "loaded" if instance else "not-loaded",
        "max_context_length": facts.max_context_length,
    }
    if instance:
        body["loaded_context_length"] = instance.context_length
        body["device"] = device(instance.gpu_offload)  # ours: where it runs (cpu, gpu, gpu+cpu)
    elif last_error:
        body["last_error"] = last_error
    capabilities = [
        name
        for name, present in (("tool_use", facts.trained_for_tool_use), ("reasoning", facts.reasoning))
        if present and facts.type == "llm"
    ]
    if capabilities:  # LM Studio leaves the key out rather than sending an empty list
        body["capabilities"] = capabilities
    return body


def v1_model(
    facts: ModelFacts,
    instances: list[LoadedInstance],
    variants: list[ModelFacts],
    last_error: str | None = None,
) -> dict[str, Any]:
    """One model (all its variants); ``facts`` are those of its default variant.

    ``variant_details`` is ours: ``lmj ls --variants`` shows each variant's quantization and size;
    so is ``last_error``, why a worker of it last died, while none is loaded.
    """
    body: dict[str, Any] = {
        "type": V1_TYPES[facts.type],
        "publisher": facts.publisher,
        "key": facts.model_key,
        "display_name": facts.display_name,
        "quantization": {"name": facts.quantization, "bits_per_weight": quant_bits(facts.quantization)},
        "size_bytes": facts.size_bytes,
        "params_string": facts.params_string,
        "loaded_instances": [inst.to_json() for inst in instances],
        "max_context_length": facts.max_context_length,
        "format": facts.format,
        "path": facts.path,
        "variants": [variant.key for variant in variants],
        "selected_variant": facts.key,
        "variant_details": [
            {"key": v.key, "quantization": v.quantization, "size_bytes": v.size_bytes, "path": v.path}
            for v in variants
        ],
    }
    if last_error and not instances:
        body["last_error"] = last_error
    if facts.type == "llm":
        body["architecture"] = facts.arch
        body["capabilities"] = {
            "vision": False,
            "trained_for_tool_use": facts.trained_for_tool_use,
            "fill_in_middle": facts.fill_in_middle,
        }
        if facts.reasoning:
            body["capabilities"]["reasoning"] = {"allowed_options": ["off", "on"], "default": "on"}
    return body


# LM Studio's REST v1 says "embedding" where v0 says "embeddings"; rerankers are ours.
V1_TYPES = {"llm": "llm", "embeddings": "embedding", "reranker": "reranker"}


def quant_bits(name: str) -> float | None:
    """Nominal bits per weight of a llama.cpp quantization name (Q4_K_M -> 4)."""
    upper = name.upper()
    if upper in {"F32"}:
        return 32
    if upper in {"F16", "BF16"}:
        return 16
    digits = "".join(ch for ch in upper.split("_")[0] if ch.isdigit())
    return int(digits) if digits else None
