"""Model listings in OpenAI's, LM Studio v0's and LM Studio v1's shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFacts:
    """What is known about one model file on disk, from its GGUF metadata alone."""

    key: str
    path: str  # relative to the models folder: publisher/repo/file.gguf
    publisher: str
    arch: str
    type: str  # "llm" | "embeddings"
    quantization: str
    size_bytes: int
    max_context_length: int
    params_string: str | None
    trained_for_tool_use: bool
    display_name: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedInstance:
    """A model loaded in a worker, as the routes report it."""

    identifier: str
    key: str
    context_length: int
    status: str  # idle | generating | processingPrompt | loading
    queued: int


def openai_models(ids: list[str]) -> dict[str, Any]:
    return {
        "data": [{"id": model_id, "object": "model", "owned_by": "organization_owner"} for model_id in ids],
        "object": "list",
    }


def v0_model(facts: ModelFacts, instance: LoadedInstance | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": instance.identifier if instance else facts.key,
        "object": "model",
        "type": facts.type,
        "publisher": facts.publisher,
        "arch": facts.arch,
        "compatibility_type": "gguf",
        "quantization": facts.quantization,
        "state": "loaded" if instance else "not-loaded",
        "max_context_length": facts.max_context_length,
    }
    if instance:
        body["loaded_context_length"] = instance.context_length
    if facts.type == "llm" and facts.trained_for_tool_use:
        body["capabilities"] = ["tool_use"]
    return body


def v1_model(facts: ModelFacts, instances: list[LoadedInstance]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "embedding" if facts.type == "embeddings" else "llm",
        "publisher": facts.publisher,
        "key": facts.key,
        "display_name": facts.display_name,
        "quantization": {"name": facts.quantization, "bits_per_weight": quant_bits(facts.quantization)},
        "size_bytes": facts.size_bytes,
        "params_string": facts.params_string,
        "loaded_instances": [
            {
                "id": inst.identifier,
                "config": {"context_length": inst.context_length},
                "status": inst.status,
                "queued": inst.queued,
            }
            for inst in instances
        ],
        "max_context_length": facts.max_context_length,
        "format": "gguf",
        "path": facts.path,
    }
    if facts.type == "llm":
        body["architecture"] = facts.arch
        body["capabilities"] = {"vision": False, "trained_for_tool_use": facts.trained_for_tool_use}
    return body


def quant_bits(name: str) -> float | None:
    """Nominal bits per weight of a llama.cpp quantization name (Q4_K_M -> 4)."""
    upper = name.upper()
    if upper in {"F32"}:
        return 32
    if upper in {"F16", "BF16"}:
        return 16
    digits = "".join(ch for ch in upper.split("_")[0] if ch.isdigit())
    return int(digits) if digits else None
