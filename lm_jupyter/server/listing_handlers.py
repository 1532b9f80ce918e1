"""The model listings: OpenAI's ``/v1/models``, LM Studio's ``/api/v0/models[/{id}]`` and
``/api/v1/models``, local models and instances first, then the remote upstreams' models."""

from __future__ import annotations

from tornado import web

from ..api import models as model_shapes
from ..api import remote as remote_shapes
from ..api.errors import APIError
from ..engine.remote.routing import RoutedManager
from .handlers import BaseHandler
from .load_progress import LOAD_PROGRESS_SETTING


class _ListingHandler(BaseHandler):
    async def remote_models(self) -> list[remote_shapes.RemoteModel]:
        """The models of the remote upstreams, for the listings (``engine/remote``)."""
        return await self.manager.remotes.models() if isinstance(self.manager, RoutedManager) else []


class ModelsHandler(_ListingHandler):
    @web.authenticated
    async def get(self) -> None:
        ids: list[str] = []
        for group in await self.manager.catalog():
            ids.append(group.key)
            if len(group.variants) > 1:
                ids += [variant.facts.key for variant in group.variants]
        ids += [ident for ident in self.manager.instances if ident not in ids]
        ids += [model.id for model in await self.remote_models() if model.id not in ids]
        self.write_json(model_shapes.openai_models(ids))


class V0ModelsHandler(_ListingHandler):
    @web.authenticated
    async def get(self, model_id: str | None = None) -> None:
        entries = []
        for group in await self.manager.catalog():
            if not group.instances:
                crash = group.crash.message if group.crash else None
                entries.append(model_shapes.v0_model(group.default.facts, None, crash))
            entries += [model_shapes.v0_model(i.model.facts, i.describe()) for i in group.instances]
        entries += [remote_shapes.v0_remote_model(model) for model in await self.remote_models()]
        if model_id is None:
            self.write_json({"object": "list", "data": entries})
            return
        for entry in entries:
            if model_id in (entry["id"], entry["id"].split("@", 1)[0]):
                self.write_json(entry)
                return
        raise APIError(
            f"Model '{model_id}' is not downloaded. Run `lmj ls` to see the models you have.",
            status=404,
            param="model",
            code="model_not_found",
        )

    @web.authenticated
    async def post(self, model_id: str | None = None) -> None:
        field = _V1_ACTIONS.get(model_id or "")
        where = f' with {{"{field}": ...}}' if field else ""
        raise APIError(
            f"There is no POST /api/v0/models/{model_id or ''}: use POST /api/v1/models/{model_id}{where}."
            if field
            else "POST /api/v1/models/load or /api/v1/models/unload load and unload models.",
            status=404,
            code="unknown_url",
        )


# LM Studio has no /api/v0/models/load or /unload (a POST there would be a bare 405): name the
# route and the field that do the job.
_V1_ACTIONS = {"load": "model", "unload": "instance_id"}


class V1ModelsHandler(_ListingHandler):
    @web.authenticated
    async def get(self) -> None:
        models = [
            model_shapes.v1_model(
                group.default.facts,
                group.described(),
                variants=[variant.facts for variant in group.variants],
                last_error=group.crash.message if group.crash else None,
            )
            for group in await self.manager.catalog()
            if self.get_argument("loaded", None) is None or group.described()
        ]
        progress = self.settings.get(LOAD_PROGRESS_SETTING)
        if progress is not None:  # ours: how far each loading instance is (server/load_progress.py)
            progress.annotate(models)
        if self.get_argument("loaded", None) is None:
            models += [remote_shapes.v1_remote_model(model) for model in await self.remote_models()]
        self.write_json({"models": models})


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/v1/models", ModelsHandler),
    (r"/api/v0/models", V0ModelsHandler),
    (r"/api/v0/models/(.+)", V0ModelsHandler),
    (r"/api/v1/models", V1ModelsHandler),
]
