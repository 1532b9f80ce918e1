"""Will a variant still on the Hub fit this machine? The same estimate and guardrail as a load.

The GGUF header (architecture, tensor types and shapes) is read with HTTP ``Range`` requests,
growing until it parses, so a 20 GB file costs a few megabytes; the estimate then counts the
weights tensor by tensor, the KV cache for the server's default context, and the projector,
exactly as ``lmj load --estimate-only`` would once the file is here. Blocking: run in a thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from ..engine.estimate import load_context
from ..engine.gguf_meta import GGUFError, GGUFMetadata, parse_metadata
from ..engine.guardrail import MemoryGuard
from ..engine.instance import LoadOptions
from ..engine.registry import model_type
from ..hub.search import HubError, read_range
from ..hub.variants import Fit, Variant

FIRST_READ = 1 << 20
MAX_HEADER = 256 << 20  # no real header is this large; stop rather than fetch a whole model


@functools.lru_cache(maxsize=64)
def remote_metadata(repo: str, revision: str | None, variant: Variant) -> GGUFMetadata:
    """The header of the variant's first file, with every shard's tensors counted.

    Cached: a revision's files never change, and ``lmj get`` asks for the options and then
    starts the download, which ranks the variants again. Treat the result as read-only.
    """
    meta = _header(repo, revision, variant.files[0].path, variant.files[0].size)
    for shard in variant.files[1:]:
        other = _header(repo, revision, shard.path, shard.size)
        meta.tensor_types.update(other.tensor_types)
        meta.tensor_bytes.update(other.tensor_bytes)
        meta.n_params += other.n_params
    return meta


def _header(repo: str, revision: str | None, path: str, size: int) -> GGUFMetadata:
    data = b""
    want = FIRST_READ
    while True:
        end = min(want, size) - 1
        if end >= len(data):
            data += read_range(repo, path, revision, len(data), end)
        try:
            return parse_metadata(data)
        except GGUFError as exc:
            if "truncated" not in str(exc) or len(data) >= size or want >= MAX_HEADER:
                raise
        want *= 4


def judge(guard: MemoryGuard, meta: GGUFMetadata, variant: Variant, default_context: int) -> Fit:
    """LM Studio's fit words: all layers on the GPU, or on the CPU, or neither fits.

    Judged at the context a load without ``--context-length`` gets, and without what is
    loaded now (a download outlives this moment's models).
    """
    maximum = int(meta.arch_field("context_length", 0) or default_context)
    context = load_context(None, default_context, maximum)
    memory = guard.memory()
    for gpu, verdict in ((1.0, "fullGPUOffload"), (0.0, "fitWithoutGPU")):
        est, offload = guard.estimate_header(
            meta,
            variant.size_bytes,
            embedding=model_type(meta) != "llm",
            projector=variant.projector.size if variant.projector else 0,
            context_length=context,
            gpu=gpu,
            flash_attention=LoadOptions().flash_attention,  # as a load that sets nothing
            memory=memory,
        )
        if gpu > 0 and offload == 0:
            continue  # no GPU this build can use
        if guard.verdict(est, offload, memory)[3] is None:
            return verdict
    return "willNotFit"


def remote_fit(
    guard: MemoryGuard, repo: str, revision: str | None, default_context: int
) -> Callable[[Variant], Fit | None]:
    """A ``variants.rank`` judge for one repo's variants; None where no header can be read."""

    def fit(variant: Variant) -> Fit | None:
        if variant.format != "gguf":
            return None
        try:
            meta = remote_metadata(repo, revision, variant)
        except GGUFError:
            return None  # not a GGUF we can read: no verdict
        except HubError as exc:
            if exc.code == "hub_unreachable":
                raise
            return None
        return judge(guard, meta, variant, default_context)

    return fit
