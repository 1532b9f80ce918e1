"""ModelManager: which models exist, which are loaded, and loading them exactly once.

It lives in the Jupyter server process and owns every worker process. Handlers call it and
nothing else; it never blocks the event loop (disk scans run in a thread, models run in
workers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.errors import APIError, model_not_found
from ..api.models import LoadedInstance
from ..api.requests import ChatCompletionRequest, CompletionRequest, SamplingRequest
from ..chat.template import choose_template, render_chat
from .instance import Generation, Instance, LoadOptions
from .process import WorkerProcess
from .registry import LocalModel, Registry, default_variant, group_variants

log = logging.getLogger("lm_jupyter")


@dataclass
class ModelGroup:
    key: str
    variants: list[LocalModel]
    default: LocalModel
    instances: list[Instance]
    loading: list[LoadedInstance]

    def described(self) -> list[LoadedInstance]:
        return [inst.describe() for inst in self.instances] + self.loading


class ModelManager:
    def __init__(
        self,
        models_dir: Path,
        *,
        default_context_length: int = 4096,
        threads: int = 0,
        jit_ttl: float = 3600,
        auto_evict: bool = True,
        max_jit_instances: int = 1,
        reap_interval: float = 0.5,
    ) -> None:
        self.registry = Registry(models_dir)
        self.default_context_length = default_context_length
        self.threads = threads
        self.jit_ttl = jit_ttl
        self.auto_evict = auto_evict
        self.max_jit_instances = max_jit_instances
        self.reap_interval = reap_interval
        self._reaper: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[LocalModel, LoadOptions, bool]] = {}
        self.instances: dict[str, Instance] = {}
        self._loading: dict[str, asyncio.Task[Instance]] = {}

    # -- what exists ---------------------------------------------------------------------

    async def catalog(self) -> list[ModelGroup]:
        """Every model on disk with its variants, default variant and loaded instances."""
        files = await asyncio.to_thread(self.registry.scan)
        return [
            ModelGroup(
                key=key,
                variants=variants,
                default=default_variant(variants),
                instances=[i for i in self.instances.values() if i.model.facts.model_key == key],
                loading=[
                    loading_placeholder(identifier, model, options, jit)
                    for identifier, (model, options, jit) in self._pending.items()
                    if model.facts.model_key == key
                ],
            )
            for key, variants in group_variants(files).items()
        ]

    async def find(self, name: str) -> LocalModel:
        model = await asyncio.to_thread(self.registry.find, name)
        if model is None:
            raise model_not_found(name)
        return model

    def instances_of(self, model: LocalModel, name: str) -> list[Instance]:
        """Instances serving ``name``: that very file, or any variant when a model key is named."""
        return [
            inst
            for inst in self.instances.values()
            if inst.model.file == model.file or inst.model.facts.model_key == name.lower()
        ]

    # -- loading -------------------------------------------------------------------------

    async def instance_for(self, name: str, *, ttl: float | None = None) -> Instance:
        """The instance a request names, loading it just in time if it is only on disk.

        ``ttl`` (the request's) applies only if this request is the one that loads it.
        """
        if name in self.instances:
            return self.instances[name]
        model = await self.find(name)
        loaded = self.instances_of(model, name)
        if loaded:
            return loaded[0]
        return await self.load(name, LoadOptions(ttl=ttl or self.jit_ttl), jit=True)

    async def load(self, name: str, options: LoadOptions, *, jit: bool = False) -> Instance:
        model = await self.find(name)
        # A model is addressed as it was named (its key, or a variant's key), not by path.
        named = name.lower() if "/" in name and not name.lower().endswith(".gguf") else model.facts.key
        identifier = options.identifier
        if identifier is None:
            identifier = named
            if jit and identifier in self._loading:  # concurrent first requests share one load
                return await asyncio.shield(self._loading[identifier])
            suffix = 2
            while identifier in self.instances or identifier in self._loading:
                identifier = f"{named}:{suffix}"
                suffix += 1
        elif identifier in self.instances or identifier in self._loading:
            raise APIError(
                f"An instance with identifier '{identifier}' is already loaded. "
                "Unload it first or choose another identifier.",
                status=409,
                param="identifier",
                code="identifier_in_use",
            )
        task = asyncio.create_task(self._start(model, identifier, options, jit))
        self._loading[identifier] = task
        self._pending[identifier] = (model, options, jit)
        task.add_done_callback(lambda _: self._forget_load(identifier, task))
        return await asyncio.shield(task)

    def _forget_load(self, identifier: str, task: asyncio.Task[Instance]) -> None:
        if self._loading.get(identifier) is task:
            del self._loading[identifier]
            del self._pending[identifier]

    async def _start(self, model: LocalModel, identifier: str, options: LoadOptions, jit: bool) -> Instance:
        facts = model.facts
        if options.context_length is not None and options.context_length > facts.max_context_length:
            raise APIError(
                f"context_length {options.context_length} is larger than the maximum of {facts.key} "
                f"({facts.max_context_length}).",
                param="context_length",
            )
        if jit and self.auto_evict:
            await self._evict_jit_instances(keep=self.max_jit_instances - 1)
        n_ctx = options.context_length or min(self.default_context_length, facts.max_context_length)
        started = time.perf_counter()
        worker = WorkerProcess(identifier, self._worker_exited)
        await worker.start()
        request_id, events = await worker.request(
            "load",
            path=str(model.file),
            context_length=n_ctx,
            embedding=facts.type == "embeddings",
            threads=self.threads,
            gpu_layers=gpu_layers(options.gpu, model.meta.arch_field("block_count", 0)),
            flash_attention=options.flash_attention,
        )
        event = await events.get()
        worker.finished(request_id)
        if event["ev"] != "loaded":
            await worker.stop()
            reason = event.get("message") or (worker.dead.message if worker.dead else "unknown error")
            raise APIError(
                f"Failed to load model '{facts.key}': {reason}",
                status=500,
                type="server_error",
                code="model_load_failed",
            )
        instance = Instance(
            identifier=identifier,
            model=model,
            worker=worker,
            context_length=event["context_length"],
            n_vocab=event["n_vocab"],
            jit=jit,
            load_time=time.perf_counter() - started,
            options=options,
            on_gpu=options.gpu > 0 and event["gpu_offload_supported"],
        )
        self.instances[identifier] = instance
        self._ensure_reaper()
        log.info(
            "Loaded %s as '%s' (pid %s, context %d%s) in %.2fs%s",
            facts.key,
            identifier,
            worker.pid,
            instance.context_length,
            f", ttl {options.ttl:g}s" if options.ttl else "",
            instance.load_time,
            " (JIT)" if jit else "",
        )
        return instance

    async def _evict_jit_instances(self, keep: int) -> None:
        """Auto-evict: unload the least recently used JIT instances until ``keep`` remain.

        A busy instance is never cut off: eviction waits for its requests to finish.
        """
        while True:
            jit = sorted((i for i in self.instances.values() if i.jit), key=lambda i: i.last_used)
            if len(jit) <= max(keep, 0):
                return
            victim = jit[0]
            while victim.active and victim.identifier in self.instances:
                await asyncio.sleep(self.reap_interval)
            if victim.identifier in self.instances:
                log.info("Auto-evicting JIT-loaded '%s' to make room", victim.identifier)
                await self.unload(victim.identifier)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        """Unload instances idle longer than their TTL (never one that is working)."""
        while self.instances:
            await asyncio.sleep(self.reap_interval)
            now = time.monotonic()
            for instance in list(self.instances.values()):
                if instance.ttl_remaining(now) == 0.0 and not instance.active:
                    log.info(
                        "Unloading '%s': idle for its TTL of %gs", instance.identifier, instance.options.ttl
                    )
                    await self.unload(instance.identifier)

    def _worker_exited(self, worker: WorkerProcess) -> None:
        for identifier, inst in list(self.instances.items()):
            if inst.worker is worker:
                del self.instances[identifier]
                log.info("Unloaded '%s'", identifier)

    async def unload(self, identifier: str) -> None:
        instance = self.instances.get(identifier)
        if instance is None:
            raise APIError(
                f"No loaded model has the identifier '{identifier}'. Run `lmj ps` to see what is loaded.",
                status=404,
                param="instance_id",
                code="model_not_loaded",
            )
        self.instances.pop(identifier, None)
        await instance.worker.stop()

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._loading.values()):
            task.cancel()
        await asyncio.gather(
            *(inst.worker.stop() for inst in list(self.instances.values())), return_exceptions=True
        )
        self.instances.clear()

    # -- inference -----------------------------------------------------------------------

    async def chat(self, request: ChatCompletionRequest) -> tuple[Instance, Generation]:
        instance = await self._llm_for(request)
        model = instance.model
        template = choose_template(model.facts.arch, model.chat_template, model.facts.key)
        prompt = render_chat(
            template,
            [message.for_template() for message in request.messages],
            bos_token=model.bos_token,
            eos_token=model.eos_token,
            tools=[tool.model_dump(exclude_none=True) for tool in request.tools or []],
        )
        return instance, await self._generate(instance, request, prompt, "messages")

    async def complete(self, request: CompletionRequest) -> tuple[Instance, Generation]:
        instance = await self._llm_for(request)
        return instance, await self._generate(instance, request, request.prompt_text(), "prompt")

    async def embed(
        self, model: str, texts: list[str], ttl: float | None = None
    ) -> tuple[Instance, dict[str, Any]]:
        instance = await self.instance_for(model, ttl=ttl)
        if instance.model.facts.type != "embeddings":
            raise APIError(
                f"'{model}' is not an embedding model; /v1/embeddings needs one (type "
                "'embeddings' in `lmj ls`).",
                param="model",
                code="model_not_embedding",
            )
        return instance, await instance.embed(texts)

    async def _llm_for(self, request: SamplingRequest) -> Instance:
        instance = await self.instance_for(request.model, ttl=request.ttl)
        if instance.model.facts.type != "llm":
            raise APIError(
                f"'{request.model}' is an embedding model; use /v1/embeddings with it.",
                param="model",
                code="model_not_llm",
            )
        for token_id in request.logit_bias or {}:
            if int(token_id) >= instance.n_vocab:
                raise APIError(
                    f"Invalid 'logit_bias': token id {token_id} is outside the vocabulary of "
                    f"'{request.model}' ({instance.n_vocab} tokens).",
                    param="logit_bias",
                    code="invalid_value",
                )
        return instance

    async def _generate(
        self, instance: Instance, request: SamplingRequest, prompt: str, prompt_param: str
    ) -> Generation:
        params = {
            "prompt": prompt,
            "max_tokens": request.token_limit(),
            "temperature": request.temperature,
            "top_k": request.top_k,
            "top_p": request.top_p,
            "min_p": request.min_p,
            "repeat_penalty": request.repeat_penalty,
            "presence_penalty": request.presence_penalty,
            "frequency_penalty": request.frequency_penalty,
            "seed": request.seed,
            "stop": request.stop_list(),
            "logit_bias": request.logit_bias,
        }
        generation = await instance.generate(params)
        await generation.start(prompt_param)
        return generation


def gpu_layers(ratio: float, block_count: int) -> int:
    """llama.cpp's n_gpu_layers for an offload fraction (1 = every layer, output included)."""
    if ratio >= 1:
        return -1
    return round(ratio * int(block_count))


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
