"""ModelManager: which models exist, which are loaded, and loading them exactly once.

It lives in the Jupyter server process and owns every worker process. Handlers call it and
nothing else; it never blocks the event loop (disk scans run in a thread, models run in
workers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from ..api.errors import APIError, model_not_found
from ..api.requests import ChatCompletionRequest, CompletionRequest, SamplingRequest
from ..chat.template import choose_template, render_chat
from .instance import Generation, Instance
from .process import WorkerProcess
from .registry import LocalModel, Registry

log = logging.getLogger("lm_jupyter")


class ModelManager:
    def __init__(self, models_dir: Path, *, default_context_length: int = 4096, threads: int = 0) -> None:
        self.registry = Registry(models_dir)
        self.default_context_length = default_context_length
        self.threads = threads
        self.instances: dict[str, Instance] = {}
        self._loading: dict[str, asyncio.Task[Instance]] = {}

    # -- what exists ---------------------------------------------------------------------

    async def list_models(self) -> list[LocalModel]:
        return await asyncio.to_thread(self.registry.scan)

    async def find(self, name: str) -> LocalModel:
        model = await asyncio.to_thread(self.registry.find, name)
        if model is None:
            raise model_not_found(name)
        return model

    def instances_of(self, model: LocalModel) -> list[Instance]:
        return [inst for inst in self.instances.values() if inst.model.file == model.file]

    # -- loading -------------------------------------------------------------------------

    async def instance_for(self, name: str) -> Instance:
        """The instance a request names, loading it just in time if it is only on disk."""
        if name in self.instances:
            return self.instances[name]
        model = await self.find(name)
        loaded = self.instances_of(model)
        if loaded:
            return loaded[0]
        return await self.load(model.facts.key, jit=True)

    async def load(
        self,
        name: str,
        *,
        context_length: int | None = None,
        identifier: str | None = None,
        jit: bool = False,
    ) -> Instance:
        model = await self.find(name)
        if identifier is None:
            identifier = model.facts.key
            if jit and identifier in self._loading:
                return await asyncio.shield(self._loading[identifier])
            suffix = 2
            while identifier in self.instances or identifier in self._loading:
                identifier = f"{model.facts.key}:{suffix}"
                suffix += 1
        elif identifier in self.instances or identifier in self._loading:
            raise APIError(
                f"An instance with identifier '{identifier}' is already loaded. "
                "Unload it first or choose another identifier.",
                status=409,
                param="identifier",
                code="identifier_in_use",
            )
        task = asyncio.create_task(self._start(model, identifier, context_length, jit))
        self._loading[identifier] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(identifier, None)

    async def _start(
        self, model: LocalModel, identifier: str, context_length: int | None, jit: bool
    ) -> Instance:
        facts = model.facts
        if context_length is not None and context_length > facts.max_context_length:
            raise APIError(
                f"context_length {context_length} is larger than the maximum of {facts.key} "
                f"({facts.max_context_length}).",
                param="context_length",
            )
        n_ctx = context_length or min(self.default_context_length, facts.max_context_length)
        started = time.perf_counter()
        worker = WorkerProcess(identifier, self._worker_exited)
        await worker.start()
        request_id, events = await worker.request(
            "load",
            path=str(model.file),
            context_length=n_ctx,
            embedding=facts.type == "embeddings",
            threads=self.threads,
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
        )
        self.instances[identifier] = instance
        log.info(
            "Loaded %s as '%s' (pid %s, context %d) in %.2fs%s",
            facts.key,
            identifier,
            worker.pid,
            instance.context_length,
            instance.load_time,
            " (JIT)" if jit else "",
        )
        return instance

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

    async def embed(self, model: str, texts: list[str]) -> tuple[Instance, dict[str, Any]]:
        instance = await self.instance_for(model)
        if instance.model.facts.type != "embeddings":
            raise APIError(
                f"'{model}' is not an embedding model; /v1/embeddings needs one (type "
                "'embeddings' in `lmj ls`).",
                param="model",
                code="model_not_embedding",
            )
        return instance, await instance.embed(texts)

    async def _llm_for(self, request: SamplingRequest) -> Instance:
        instance = await self.instance_for(request.model)
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
