"""Hub search and downloads over HTTP (``server/downloads.py`` does the work).

- ``POST /api/v1/models/download`` ``{model, quantization?}``: LM Studio's route; answers
  ``{job_id, status: "downloading", total_size_bytes, started_at}`` or
  ``{status: "already_downloaded"}``.
- ``GET /api/v1/models/download`` (ours): ``{data: [...]}``, every job this server has run, oldest
  first, with the status route's fields, so a client can show downloads it did not start.
- ``GET /api/v1/models/download/status/{job_id}``: LM Studio's status fields.
- ``DELETE /api/v1/models/download/{job_id}``: stop the job (status ``paused``); its ``.part``
  files stay, so downloading the same variant again resumes where it stopped.
- ``GET /api/v1/models/search?query=&format=gguf,mlx&limit=``: candidates for ``lmj get``.
- ``GET /api/v1/models/download/options?model=&quantization=&format=``: one repo's variants,
  each with its fit on this machine, and the one ``lmj get`` downloads by default.
"""

from __future__ import annotations

from tornado import web

from ..api.errors import APIError
from ..api.requests import DownloadRequest, parse_request
from ..hub.search import FORMATS
from .downloads import DOWNLOADS_SETTING, Downloads
from .handlers import BaseHandler

MAX_LIMIT = 50


class _HubHandler(BaseHandler):
    @property
    def downloads(self) -> Downloads:
        service: Downloads = self.settings[DOWNLOADS_SETTING]
        return service

    def formats(self) -> tuple[str, ...]:
        value = self.get_query_argument("format", "gguf")
        formats = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise APIError(f"Invalid 'format': {value!r}; use gguf, mlx or gguf,mlx.", param="format")
        return formats

    def required(self, name: str) -> str:
        value = self.get_query_argument(name, "").strip()
        if not value:
            message = f"Missing required parameter: '{name}'."
            raise APIError(message, param=name, code="missing_required_parameter")
        return value


class DownloadHandler(_HubHandler):
    """Start a download from the Hub; list download jobs."""

    body_model = DownloadRequest

    @web.authenticated
    async def get(self) -> None:
        self.write_json({"data": self.downloads.listing()})

    @web.authenticated
    async def post(self) -> None:
        request = parse_request(DownloadRequest, self.request.body)
        self.write_json(await self.downloads.start(request.model, request.quantization))


class DownloadStatusHandler(_HubHandler):
    @web.authenticated
    async def get(self, job_id: str) -> None:
        self.write_json(self.downloads.status(job_id))


class DownloadJobHandler(_HubHandler):
    @web.authenticated
    async def delete(self, job_id: str) -> None:
        self.write_json(await self.downloads.pause(job_id))


class SearchHandler(_HubHandler):
    @web.authenticated
    async def get(self) -> None:
        query = self.required("query")
        try:
            limit = int(self.get_query_argument("limit", "10"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise APIError(f"Invalid 'limit': use a whole number from 1 to {MAX_LIMIT}.", param="limit")
        self.write_json(await self.downloads.search(query, self.formats(), limit))


class DownloadOptionsHandler(_HubHandler):
    @web.authenticated
    async def get(self) -> None:
        model = self.required("model")
        quantization = self.get_query_argument("quantization", None) or None
        self.write_json(await self.downloads.options(model, quantization, self.formats()))


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    (r"/api/v1/models/download", DownloadHandler),
    (r"/api/v1/models/download/status/([^/]+)", DownloadStatusHandler),
    (r"/api/v1/models/download/options", DownloadOptionsHandler),
    (r"/api/v1/models/search", SearchHandler),
    (r"/api/v1/models/download/([^/]+)", DownloadJobHandler),  # DELETE: pause; after the fixed routes
]
