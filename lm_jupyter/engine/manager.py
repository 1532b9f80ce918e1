"""ModelManager: which models exist, which are loaded, and loading them exactly once.

It lives in the Jupyter server process and owns every worker process. Handlers call it and
nothing else; it never blocks the event loop (disk scans run in a thread, models run in
workers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api.errors import APIError, model_not_found
from ..api.models import LoadedInstance
from ..api.requests import ChatCompletionRequest, CompletionRequest, NamedToolChoice, SamplingRequest
from ..chat.constraints import check_schema, forced_calls
from ..chat.output import AssistantMessage, OutputParser
from ..chat.prompt import prepare_chat
from ..chat.template import choose_template
from ..chat.toolcalls import normalize_tool_name
from .guardrail import LoadPlan, MemoryGuard, evictable, usage
from .instance import Generation, Instance, LoadOptions
from .process import WorkerProcess
from .protocol import DraftSpec
from .registry import LocalModel, Registry, default_variant, group_variants
from .turn import Turn

log = logging.getLogger("lm_jupyter")

# An observer of the manager (the server's log stream wires one in, so engine never imports
# server): called on the event loop with an event name and its fields, see ModelManager.notify.
Listener = Callable[[str, dict[str, Any]], None]


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
        reasoning_format: str = "auto",
        guardrails: str = "relaxed",
        max_memory: int = 0,
        max_queued: int = 32,
    ) -> None:
        self.registry = Registry(models_dir)
        self.default_context_length = default_context_length
        self.threads = threads
        self.jit_ttl = jit_ttl
        self.auto_evict = auto_evict
        self.max_jit_instances = max_jit_instances
        self.reap_interval = reap_interval
        self.reasoning_format = reasoning_format
        self.max_queued = max_queued
        self.guard = MemoryGuard(guardrails, max_memory=max_memory)
        self._reaper: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[LocalModel, LoadOptions, bool]] = {}
        self.instances: dict[str, Instance] = {}
        self._loading: dict[str, asyncio.Task[Instance]] = {}
        self.listeners: list[Listener] = []

    def notify(self, event: str, **fields: Any) -> None:
        """Tell the observers: ``loaded``, ``load_failed``, ``unloaded`` (with a ``reason``),
        ``prediction_input`` and ``prediction_output``. An observer that fails never fails a request."""
        for listener in list(self.listeners):
            try:
                listener(event, fields)
            except Exception:
                log.exception("A model event listener failed on '%s'", event)

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

    async def find(self, name: str, fits: Callable[[LocalModel], bool] | None = None) -> LocalModel:
        model = await asyncio.to_thread(self.registry.find, name, fits)
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

    async def instance_for(
        self, name: str, *, ttl: float | None = None, context_length: int | None = None
    ) -> Instance:
        """The instance a request names, loading it just in time if it is only on disk.

        ``ttl`` and ``context_length`` (the request's, or its preset's) apply only if this
        request is the one that loads it.
        """
        if name in self.instances:
            return self.instances[name]
        model = await self.find(name)
        loaded = self.instances_of(model, name)
        if loaded:
            return loaded[0]
        options = LoadOptions(ttl=ttl or self.jit_ttl, context_length=context_length)
        return await self.load(name, options, jit=True)

    async def load(
        self, name: str, options: LoadOptions, *, jit: bool = False, force: bool = False
    ) -> Instance:
        in_use, freed = await self._memory_use(jit)
        model = await self.find(name, self._fits(options, in_use, freed))
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
        # No await between the checks above and registering the load: concurrent JIT requests
        # must find it in _loading, so the guardrail runs inside the task.
        task = asyncio.create_task(
            self._checked_start(model, identifier, options, jit, force, (in_use, freed))
        )
        self._loading[identifier] = task
        self._pending[identifier] = (model, options, jit)
        task.add_done_callback(lambda _: self._forget_load(identifier, task))
        return await asyncio.shield(task)

    async def _checked_start(
        self,
        model: LocalModel,
        identifier: str,
        options: LoadOptions,
        jit: bool,
        force: bool,
        memory: tuple[int, int],
    ) -> Instance:
        plan = await self._plan(model, options, *memory)
        if plan is not None and not plan.passes and not force:
            raise plan.refusal()
        return await self._start(model, identifier, options, jit, plan)

    def _forget_load(self, identifier: str, task: asyncio.Task[Instance]) -> None:
        if self._loading.get(identifier) is task:
            del self._loading[identifier]
            del self._pending[identifier]

    async def _start(
        self,
        model: LocalModel,
        identifier: str,
        options: LoadOptions,
        jit: bool,
        plan: LoadPlan | None = None,
    ) -> Instance:
        facts = model.facts
        if options.context_length is not None and options.context_length > facts.max_context_length:
            raise APIError(
                f"context_length {options.context_length} is larger than the maximum of {facts.key} "
                f"({facts.max_context_length}).",
                param="context_length",
            )
        if options.draft_model and facts.type == "embeddings":
            raise APIError("Speculative decoding can only be configured for LLM models.", param="draft_model")
        await self.draft_spec(options.draft_model, model)  # an unknown draft is refused before loading
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
            parallel=options.parallel,
        )
        event = await events.get()
        worker.finished(request_id)
        if event["ev"] != "loaded":
            await worker.stop()
            reason = event.get("message") or (worker.dead.message if worker.dead else "unknown error")
            self.notify("load_failed", identifier=identifier, key=facts.key, message=reason)
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
            memory={**event.get("memory", {}), "estimate": plan.to_json() if plan else None},
        )
        self.guard.offload.reported = bool(event["gpu_offload_supported"])
        self.instances[identifier] = instance
        self._ensure_reaper()
        self.notify(
            "loaded",
            identifier=identifier,
            key=facts.key,
            path=facts.path,
            context_length=instance.context_length,
            load_time=instance.load_time,
            jit=jit,
        )
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
                await self.unload(victim.identifier, reason="evicted")

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
                    await self.unload(instance.identifier, reason="ttl")

    def _worker_exited(self, worker: WorkerProcess) -> None:
        for identifier, inst in list(self.instances.items()):
            if inst.worker is worker:
                del self.instances[identifier]
                log.info("Unloaded '%s'", identifier)
                key = inst.model.facts.key
                self.notify("unloaded", identifier=identifier, key=key, reason="worker exited")

    # -- memory (engine/guardrail.py) -------------------------------------------------------

    async def estimate(self, name: str, options: LoadOptions) -> LoadPlan:
        """What loading ``name`` with ``options`` would cost, and the guardrail's verdict."""
        in_use, freed = await self._memory_use(jit=False)
        model = await self.find(name, self._fits(options, in_use, freed))
        plan = await self._plan(model, options, in_use, freed)
        if plan is None:
            raise APIError(
                f"context_length {options.context_length} is larger than the maximum of "
                f"{model.facts.key} ({model.facts.max_context_length}).",
                param="context_length",
            )
        return plan

    async def _memory_use(self, jit: bool) -> tuple[int, int]:
        """RAM the workers hold, and how much of it auto-evict frees before this load."""
        loaded = list(self.instances.values())
        evicted = evictable(loaded, self.max_jit_instances - 1) if jit and self.auto_evict else []
        return await asyncio.to_thread(usage, loaded, evicted)

    def _context_for(self, model: LocalModel, options: LoadOptions) -> int:
        return options.context_length or min(self.default_context_length, model.facts.max_context_length)

    def _fits(self, options: LoadOptions, in_use: int, freed: int) -> Callable[[LocalModel], bool] | None:
        """Lets a bare model key pick the best quantization that passes the guardrail."""
        return self.guard.fits(
            lambda model: self._context_for(model, options),
            options.gpu,
            options.flash_attention,
            in_use=in_use,
            freed=freed,
        )

    async def _plan(
        self, model: LocalModel, options: LoadOptions, in_use: int, freed: int
    ) -> LoadPlan | None:
        """The guardrail's verdict on a load; None for a context the model cannot take
        (``_start`` refuses that with its own message)."""
        n_ctx = self._context_for(model, options)
        if n_ctx > model.facts.max_context_length:
            return None
        return await asyncio.to_thread(
            self.guard.plan, model, n_ctx, options.gpu, options.flash_attention, in_use=in_use, freed=freed
        )

    async def unload(self, identifier: str, reason: str = "requested") -> None:
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
        self.notify("unloaded", identifier=identifier, key=instance.model.facts.key, reason=reason)

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

    async def chat(self, request: ChatCompletionRequest) -> tuple[Instance, Turn]:
        instance = await self._llm_for(request)
        model = instance.model
        template = choose_template(model.facts.arch, model.chat_template, model.facts.key)
        tool_choice = request.tool_choice if isinstance(request.tool_choice, str) else None
        prepared = prepare_chat(
            template,
            [message.for_template() for message in request.messages],
            [tool.model_dump(exclude_none=True) for tool in request.tools or []],
            tool_choice=tool_choice,
            bos_token=model.bos_token,
            eos_token=model.eos_token,
            reasoning_effort=request.reasoning_effort,
        )
        field = self._reasoning_field(request.reasoning_format, prepared.family)
        parser = OutputParser(template, tool_names=prepared.tool_names, split_reasoning=field is not None)
        forced = None
        if request.tools and (tool_choice == "required" or isinstance(request.tool_choice, NamedToolChoice)):
            named = (
                request.tool_choice.function.name
                if isinstance(request.tool_choice, NamedToolChoice)
                else None
            )
            model_tools = [
                {"function": {**t.function.model_dump(), "name": normalize_tool_name(t.function.name)}}
                for t in request.tools
            ]
            forced = forced_calls(
                prepared.family,
                model_tools,
                normalize_tool_name(named) if named else None,
                several=request.parallel_tool_calls and named is None,
            )
        generation = await self._generate(instance, request, prepared.prompt, "messages", tool_calls=forced)
        return instance, Turn(generation, parser, AssistantMessage(field, prepared.names), self._turn_done)

    def _reasoning_field(self, requested: str | None, family: str) -> str | None:
        """Where reasoning goes: the request's choice, else the setting; gpt-oss uses
        ``reasoning`` as LM Studio does for it."""
        choice = requested or self.reasoning_format
        if choice == "auto":
            choice = "reasoning" if family == "gpt_oss" else "reasoning_content"
        return None if choice == "none" else choice

    async def complete(self, request: CompletionRequest) -> tuple[Instance, Turn]:
        instance = await self._llm_for(request)
        generation = await self._generate(instance, request, request.prompt_text(), "prompt")
        return instance, Turn(generation, None, AssistantMessage(None), self._turn_done)

    def _turn_done(self, turn: Turn) -> None:
        instance = turn.generation.instance
        self.notify(
            "prediction_output", identifier=instance.identifier, text="".join(turn.raw), outcome=turn.outcome
        )

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
        instance = await self.instance_for(
            request.model, ttl=request.ttl, context_length=request.context_length
        )
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
        self,
        instance: Instance,
        request: SamplingRequest,
        prompt: str,
        prompt_param: str,
        tool_calls: dict[str, Any] | None = None,
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
            "json_schema": _checked_schema(request),
            "grammar": request.grammar,
            "tool_calls": tool_calls,
            "context_overflow_policy": request.context_overflow_policy,
            "prompt_lookup": request.prompt_lookup,
            "num_draft_tokens": request.num_draft_tokens,
            "draft_min_probability": request.draft_min_probability,
            "draft_model": await self.draft_spec(
                request.draft_model or (None if request.prompt_lookup else instance.options.draft_model),
                instance.model,
            ),
        }
        if instance.active >= instance.options.parallel + self.max_queued:  # all slots busy, queue full
            raise APIError(
                f"'{instance.identifier}' already has {instance.active} requests in its queue; "
                "try again shortly.",
                status=503,
                type="server_error",
                code="queue_full",
                retry_after=1,
            )
        generation = await instance.generate(params)
        await generation.start(prompt_param)
        self.notify(
            "prediction_input", identifier=instance.identifier, path=instance.model.facts.path, prompt=prompt
        )
        return generation

    async def draft_spec(self, name: str | None, target: LocalModel) -> DraftSpec | None:
        """The draft model a request (or its instance's load options) names, found on disk."""
        if name is None:
            return None
        try:
            model = await self.find(name)
        except APIError:
            raise APIError(
                f"Draft model '{name}' is not downloaded. Run `lmj ls` to see the models you have.",
                status=404,
                param="draft_model",
                code="model_not_found",
            ) from None
        if model.facts.type != "llm":
            raise APIError(
                f"Draft model '{name}' is an embedding model; a draft model must be an LLM.",
                param="draft_model",
                code="model_not_llm",
            )
        return {"key": model.facts.key, "path": str(model.file), "target": target.facts.key}


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


def _checked_schema(request: SamplingRequest) -> dict[str, Any] | None:
    schema = request.response_format.schema() if request.response_format else None
    if schema is not None:
        check_schema(schema)
    return schema
