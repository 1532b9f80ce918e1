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
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..api.errors import APIError, jit_off
from ..api.requests import ChatCompletionRequest, CompletionRequest, SamplingRequest
from ..chat.output import AssistantMessage
from ..chat.segments import Part
from .catalog import ModelGroup, model_groups
from .crash_guard import CrashGuard
from .estimate import load_context, n_gpu_layers
from .guardrail import LoadPlan, MemoryGuard, evictable, usage
from .hardware import parse_size
from .instance import Generation, Instance, LoadOptions
from .lifecycle import evict_jit_instances, reap_idle
from .limits import Limits
from .prediction import (
    chat_prediction,
    check_embedding_model,
    check_llm_request,
    completion_prompt,
    draft_spec,
    generate_params,
)
from .process import WorkerProcess
from .registry import LocalModel, Registry
from .settings import ManagerSettings
from .turn import Turn

log = logging.getLogger("lm_jupyter")

# An observer of the manager (the server's log stream wires one in, so engine never imports
# server): called on the event loop with an event name and its fields, see ModelManager.notify.
Listener = Callable[[str, dict[str, Any]], None]


class ModelManager(ManagerSettings):
    """The models of one server; a child of the server extension, configured as
    ``ModelManager.<name>`` (settings in ``settings.py``)."""

    def __init__(self, models_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry = Registry(models_dir)
        cap = parse_size(self.max_memory) if self.max_memory else 0
        self.guard = MemoryGuard(self.guardrails, max_memory=cap)
        self.crashes = CrashGuard(self.crash_limit, self.crash_window)
        self._reaper: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[LocalModel, LoadOptions, bool]] = {}
        self.instances: dict[str, Instance] = {}
        self._loading: dict[str, asyncio.Task[Instance]] = {}
        # Instances whose worker died, by identifier: the next request loads one as it was.
        self._crashed: dict[str, tuple[LocalModel, LoadOptions, bool]] = {}
        self.limits = Limits.of(self)
        self.listeners: list[Listener] = []

    def notify(self, event: str, **fields: Any) -> None:
        """Tell the observers: ``load_progress``, ``loaded``, ``load_failed``, ``unloaded`` (with a
        ``reason``), ``prediction_input``, ``prediction_output``. A failing observer fails nothing."""
        for listener in list(self.listeners):
            try:
                listener(event, fields)
            except Exception:
                log.exception("A model event listener failed on '%s'", event)

    # -- what exists ---------------------------------------------------------------------

    async def catalog(self) -> list[ModelGroup]:
        """Every model on disk with its variants, default variant and loaded instances."""
        files = await asyncio.to_thread(self.registry.scan)
        return model_groups(files, list(self.instances.values()), self._pending, self.crashes)

    async def find(self, name: str, fits: Callable[[LocalModel], bool] | None = None) -> LocalModel:
        model = await asyncio.to_thread(self.registry.find, name, fits)
        if model is None:
            raise self.registry.missing(name)
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
        if name in self._crashed:  # its worker died: it comes back as it was loaded
            return await self._reload(name)
        model = await self.find(name)
        loaded = self.instances_of(model, name)
        if loaded:
            return loaded[0]
        if not self.jit_loading:
            raise jit_off(name)
        options = LoadOptions(ttl=ttl or self.jit_ttl, context_length=context_length)
        return await self.load(name, options, jit=True)

    async def _reload(self, identifier: str) -> Instance:
        """A crashed instance loaded with its own options, explicit or JIT, evicting nothing."""
        if identifier in self._loading:  # a concurrent request is already reloading it
            return await asyncio.shield(self._loading[identifier])
        model, options, jit = self._crashed[identifier]
        options = replace(options, identifier=identifier)
        instance = await self.load(model.facts.key, options, jit=jit, reload=True)
        del self._crashed[identifier]
        return instance

    async def load(
        self, name: str, options: LoadOptions, *, jit: bool = False, force: bool = False, reload: bool = False
    ) -> Instance:
        in_use, freed = await self._memory_use(jit and not reload)
        model = await self.find(name, self._fits(options, in_use, freed))
        if not jit and not reload:
            self.crashes.retry(str(model.file))
        elif failed := self.crashes.failed(str(model.file)):
            raise self.crashes.refusal(model.facts.key, failed)
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
            self._checked_start(model, identifier, options, jit, force, (in_use, freed), not reload)
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
        evict: bool,
    ) -> Instance:
        plan = await self._plan(model, options, *memory)
        if plan is not None and not plan.passes and not force:
            raise plan.refusal()
        return await self._start(model, identifier, options, jit, plan, evict)

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
        evict: bool = True,  # a crashed instance's reload takes only its own place back
    ) -> Instance:
        facts = model.facts
        if options.context_length is not None and options.context_length > facts.max_context_length:
            raise APIError(
                f"context_length {options.context_length} is larger than the maximum of {facts.key} "
                f"({facts.max_context_length}).",
                param="context_length",
            )
        if options.draft_model and facts.pooled:
            raise APIError("Speculative decoding can only be configured for LLM models.", param="draft_model")
        await draft_spec(self.find, options.draft_model, model)  # an unknown draft is refused before loading
        if jit and self.auto_evict and evict:
            keep = self.max_jit_instances - 1
            await evict_jit_instances(self.instances, keep, self.unload, self.reap_interval)
        n_ctx = self._context_for(model, options)
        offload = plan.gpu_offload if plan else options.gpu or 0.0
        started = time.perf_counter()
        worker = WorkerProcess(identifier, self._worker_exited)
        worker.estimate_bytes = plan.estimate.total_bytes if plan else None
        await worker.start()
        request_id, events = await worker.request(
            "load",
            path=str(model.file),
            format=facts.format,
            context_length=n_ctx,
            embedding=facts.pooled,
            threads=self.threads,
            gpu_layers=n_gpu_layers(offload, model.meta.arch_field("block_count", 0)),
            flash_attention=options.flash_attention,
            parallel=options.parallel,
        )
        event = await events.get()
        while event["ev"] == "load_progress":  # llama.cpp's share of the weights read
            self.notify("load_progress", identifier=identifier, key=facts.key, progress=event["progress"])
            event = await events.get()
        worker.finished(request_id)
        if event["ev"] != "loaded":
            await worker.stop()
            reason = event.get("message") or (worker.dead.cause if worker.dead else "unknown error")
            if worker.dead is not None:
                self.crashes.died(str(model.file), worker.dead.cause, None, time.monotonic())
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
            gpu_offload=offload if event["gpu_offload_supported"] else 0.0,
            memory={**event.get("memory", {}), "estimate": plan.to_json() if plan else None},
            max_token_bytes=event.get("max_token_bytes", 0),
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

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(reap_idle(self.instances, self.unload, self.reap_interval))

    def _worker_exited(self, worker: WorkerProcess) -> None:
        """A worker ended that nobody stopped: forget its instance and remember why it died."""
        for identifier, inst in list(self.instances.items()):
            if inst.worker is worker:
                del self.instances[identifier]
                self._crashed[identifier] = (inst.model, inst.options, inst.jit)
                now = time.monotonic()
                cause = worker.dead.cause if worker.dead else "its worker process exited"
                self.crashes.died(str(inst.model.file), cause, now - inst.loaded_at, now)
                key = inst.model.facts.key
                self.notify("unloaded", identifier=identifier, key=key, reason="worker exited", message=cause)

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
        maximum = model.facts.max_context_length
        return load_context(options.context_length, self.default_context_length, maximum)

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
        if instance is None and self._crashed.pop(identifier, None) is not None:
            return  # its worker had died; now it is not loaded again either
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
        self.limits.check_request(request)
        instance = await self.llm_for(request)
        prediction = await asyncio.to_thread(chat_prediction, instance.model, request, self.reasoning_format)
        generation = await self._generate(
            instance, request, prediction.prompt, "messages", prediction.tool_calls, prediction.parts
        )
        return instance, Turn(generation, prediction.parser, prediction.message, self._turn_done)

    async def complete(self, request: CompletionRequest) -> tuple[Instance, Turn]:
        self.limits.check_request(request)
        instance = await self.llm_for(request)
        prompt, parts = completion_prompt(instance.model, request)
        generation = await self._generate(instance, request, prompt, "prompt", parts=parts)
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
        check_embedding_model(model, instance.model.facts.type)
        return instance, await instance.embed(texts)

    async def llm_for(self, request: SamplingRequest) -> Instance:
        instance = await self.instance_for(
            request.model, ttl=request.ttl, context_length=request.context_length
        )
        check_llm_request(request, instance.model.facts.type, instance.n_vocab)
        return instance

    async def _generate(
        self,
        instance: Instance,
        request: SamplingRequest,
        prompt: str,
        prompt_param: str,
        tool_calls: dict[str, Any] | None = None,
        parts: list[Part] | None = None,
    ) -> Generation:
        self.limits.check_prompt(
            prompt, request, instance.context_length, instance.max_token_bytes, prompt_param
        )
        draft = await draft_spec(
            self.find,
            request.draft_model or (None if request.prompt_lookup else instance.options.draft_model),
            instance.model,
        )
        params = generate_params(
            request,
            prompt,
            tool_calls=tool_calls,
            draft_model=draft,
            parts=parts,
            limits=self.limits,
            load=instance.options,
        )
        if instance.active >= instance.options.parallel + self.max_queued_requests:  # slots busy, queue full
            raise APIError(
                f"'{instance.identifier}' already has {instance.active} requests in its queue; "
                "try again shortly.",
                status=503,
                type="server_error",
                code="queue_full",
                retry_after=1,
            )
        generation = await instance.start_generation(params, prompt_param)
        self.notify(
            "prediction_input", identifier=instance.identifier, path=instance.model.facts.path, prompt=prompt
        )
        return generation
