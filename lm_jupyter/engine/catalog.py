"""What ``GET /api/v1/models`` lists per model: its variants on disk, with the instances
loaded and loading from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..api.errors import APIError
from ..api.models import LoadedInstance
from .crash_guard import Crash, CrashGuard
from .instance import Instance, LoadOptions
from .registry import LocalModel, default_variant, group_variants


@dataclass
class ModelGroup:
    key: str
    variants: list[LocalModel]
    default: LocalModel
    instances: list[Instance]
    loading: list[LoadedInstance]
    crash: Crash | None = None  # the last worker death of any variant, while none is loaded

    def described(self) -> list[LoadedInstance]:
        return [inst.describe() for inst in self.instances] + self.loading


def loading_placeholder(
    identifier: str, model: LocalModel, options: LoadOptions, jit: bool
) -> LoadedInstance:
    return LoadedInstance(
        identifier=identifier,
        key=model.facts.key,
        context_length=options.context_length or 0,
        status="loading",
        queued=0,
        jit=jit,
        ttl_seconds=options.ttl,
        ttl_remaining_seconds=options.ttl,
        memory_bytes=None,
        parallel=options.parallel,
        gpu_offload=options.gpu,
        flash_attention=options.flash_attention,
    )


def model_groups(
    files: list[LocalModel],
    instances: list[Instance],
    pending: dict[str, tuple[LocalModel, LoadOptions, bool]],
    crashes: CrashGuard,
) -> list[ModelGroup]:
    """The files on disk grouped per model, with what is loaded and loading from each, and the
    last worker death of a model none of whose variants is loaded."""
    groups = []
    for key, variants in group_variants(files).items():
        group = ModelGroup(
            key=key,
            variants=variants,
            default=default_variant(variants),
            instances=[i for i in instances if i.model.facts.model_key == key],
            loading=[
                loading_placeholder(identifier, model, options, jit)
                for identifier, (model, options, jit) in pending.items()
                if model.facts.model_key == key
            ],
        )
        if not group.instances and not group.loading:
            deaths = [c for v in variants if (c := crashes.last(str(v.file)))]
            group.crash = max(deaths, key=lambda c: c.at, default=None)
        groups.append(group)
    return groups


def sole_llm(instances: Iterable[Instance]) -> str:
    """The one loaded LLM, for requests that name no model (llama-server's routes)."""
    llms = [inst.identifier for inst in instances if inst.model.facts.type == "llm"]
    if len(llms) != 1:
        raise APIError(
            f"Name the model: 'model' may be left out only while exactly one LLM is loaded "
            f"({len(llms)} are: {', '.join(llms) or 'none'}).",
            param="model",
            code="missing_required_parameter",
        )
    return llms[0]
