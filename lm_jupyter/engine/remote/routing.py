"""The model manager with remote upstreams in front of it.

A request naming a model that an upstream serves is proxied (``turn.py``); every other name goes
to the local ``ModelManager`` unchanged. A loaded local instance whose identifier is exactly that
name stays first. Chat completions, completions, embeddings and ``/v1/responses`` (which calls
``chat``) all come through here, so none of them needs to know about upstreams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...api.requests import ChatCompletionRequest, CompletionRequest
from ..instance import Instance
from ..manager import ModelManager
from ..prediction import reasoning_field
from ..turn import Turn
from .turn import RemoteTarget, RemoteTurn, proxy_embeddings, proxy_generation, reasoning_family
from .upstreams import Remotes


class RoutedManager(ModelManager):
    def __init__(self, models_dir: Path, remotes: Remotes, **kwargs: Any) -> None:
        super().__init__(models_dir, **kwargs)
        self.remotes = remotes

    async def _remote(self, name: str) -> RemoteTarget | None:
        if name in self.instances:
            return None
        return await self.remotes.target(name)

    async def chat(  # type: ignore[override]
        self, request: ChatCompletionRequest
    ) -> tuple[Instance | RemoteTarget, Turn | RemoteTurn]:
        target = await self._remote(request.model)
        if target is None:
            return await super().chat(request)
        field = reasoning_field(
            request.reasoning_format or self.reasoning_format, reasoning_family(request.model)
        )
        turn = await proxy_generation(
            self.remotes, target, request, chat=True, reasoning_field=field, notify=self.notify
        )
        return turn.target, turn

    async def complete(  # type: ignore[override]
        self, request: CompletionRequest
    ) -> tuple[Instance | RemoteTarget, Turn | RemoteTurn]:
        target = await self._remote(request.model)
        if target is None:
            return await super().complete(request)
        turn = await proxy_generation(
            self.remotes, target, request, chat=False, reasoning_field=None, notify=self.notify
        )
        return turn.target, turn

    async def embed(  # type: ignore[override]
        self, model: str, texts: list[str], ttl: float | None = None
    ) -> tuple[Instance | RemoteTarget, dict[str, Any]]:
        target = await self._remote(model)
        if target is None:
            return await super().embed(model, texts, ttl)
        return await proxy_embeddings(self.remotes, target, texts)

    async def shutdown(self) -> None:
        await self.remotes.close()
        await super().shutdown()
