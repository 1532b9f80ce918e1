"""A stand-in Hugging Face Hub for download tests: the routes the real ``huggingface_hub``
client (2.x) calls, served by Tornado on a free local port (point ``HF_ENDPOINT`` at it).

- ``GET /api/models?search=&filter=&sort=&limit=``: ``HfApi.list_models``.
- ``GET /api/models/{owner}/{repo}[/revision/{rev}]?blobs=True``: ``HfApi.model_info`` with
  sizes and LFS sha256s.
- ``HEAD|GET /{owner}/{repo}/resolve/{rev}/{path}``: like the Hub, a 302 to a CDN on another
  host (``localhost`` instead of ``127.0.0.1``) carrying ``X-Repo-Commit``, ``X-Linked-Size`` and
  ``X-Linked-Etag`` (the sha256), which ``get_hf_file_metadata`` reads without following it.
- ``GET /cdn/{sha256}``: the bytes, with ``Range`` (206 + ``Content-Range``) and ``ETag``.
- Gated repos answer ``resolve`` with 401 or 403 and ``X-Error-Code: GatedRepo``; unknown repos
  404 with ``X-Error-Code: RepoNotFound``, as the Hub does.

``fail_with[path] = [503, ...]``: the next downloads of that file answer those statuses.
``cut_after[path] = [n, ...]``: the next downloads of that file (GETs with no ``Range`` or an
open-ended one) send ``n`` bytes of a body whose ``Content-Length`` promises all of them, and
drop the connection. ``hold[path] = threading.Event()``: downloads of that file send their first
64 kB piece, then wait until the test sets the event (a download that is surely still running).
``requests`` records every
request (method, path, Range) so tests can see what the client asked for.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado import httpserver, netutil, web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubFile:
    path: str
    data: bytes
    sha256: str = ""  # what the Hub claims; the real digest unless a test says otherwise

    def __post_init__(self) -> None:
        self.sha256 = self.sha256 or hashlib.sha256(self.data).hexdigest()


@dataclass
class HubRepo:
    id: str
    files: list[HubFile]
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=lambda: ["gguf"])
    library_name: str | None = None
    gated: str | bool = False  # "manual" for gated repos
    refuse_status: int = 0  # 401 or 403 on file requests (a gated repo we have no access to)
    token: str | None = None  # a gated repo we have access to: files need this Bearer token
    throttle: float = 0.0  # seconds between 64 kB pieces of a download (a slow network)


class StandinHub:
    def __init__(self) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.cut_after: dict[str, list[int]] = {}
        self.fail_with: dict[str, list[int]] = {}  # the next downloads of a file answer these statuses
        self.hold: dict[str, threading.Event] = {}  # downloads of a file stall after 64 kB until set
        self.requests: list[tuple[str, str, str | None]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: HubRepo) -> HubRepo:
        """Serve ``repo``. The "CDN" finds files by content, so no two files may be equal."""
        served = {hashlib.sha256(f.data).hexdigest() for r in self.repos.values() for f in r.files}
        for file in repo.files:
            if hashlib.sha256(file.data).hexdigest() in served:
                raise ValueError(f"{repo.id}/{file.path} has the same bytes as a file already served")
        self.repos[repo.id.lower()] = repo
        return repo

    def add_files(self, repo_id: str, folder: Path, **options: Any) -> HubRepo:
        files = [HubFile(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]
        return self.add(HubRepo(repo_id, files, **options))

    def blob(self, sha256: str) -> tuple[HubRepo, HubFile] | None:
        for repo in self.repos.values():
            for file in repo.files:
                if hashlib.sha256(file.data).hexdigest() == sha256 or file.sha256 == sha256:
                    return repo, file
        return None

    # -- running -------------------------------------------------------------------------

    def start(self, port: int = 0) -> StandinHub:
        """Serve (again, on ``port`` when given: ``stop`` then ``start(hub.port)`` is a network outage)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            app = web.Application(_routes(self))
            server = httpserver.HTTPServer(app)
            # Every address of localhost (127.0.0.1 and ::1, on one port): the Hub is
            # 127.0.0.1 and the "CDN" is localhost, another host, as on the real Hub.
            sockets = netutil.bind_sockets(port, "localhost")
            self.port = sockets[0].getsockname()[1]
            server.add_sockets(sockets)
            self._server = server
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="standin-hub", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        loop, server = self._loop, self._server

        async def close() -> None:
            server.stop()
            await server.close_all_connections()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None


def _routes(hub: StandinHub) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    kwargs = {"hub": hub}
    return [
        (r"/api/models", SearchHandler, kwargs),
        (r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", InfoHandler, kwargs),
        (r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", ResolveHandler, kwargs),
        (r"/cdn/([0-9a-f]{64})", CdnHandler, kwargs),
    ]


class _Handler(web.RequestHandler):
    def initialize(self, hub: StandinHub) -> None:
        self.hub = hub

    def prepare(self) -> None:
        request = self.request
        self.hub.requests.append((request.method or "", request.path, request.headers.get("Range")))

    def fail(self, status: int, code: str, message: str) -> web.HTTPError:
        """An error as the Hub words it: ``X-Error-Code`` is what huggingface_hub reads."""
        self.error_headers = {"X-Error-Code": code, "X-Error-Message": message}
        return web.HTTPError(status, reason=message)

    def repo(self, repo_id: str) -> HubRepo:
        repo = self.hub.repos.get(repo_id.lower())
        if repo is None:
            raise self.fail(404, "RepoNotFound", "Repository not found")
        return repo

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        for name, value in getattr(self, "error_headers", {}).items():
            self.set_header(name, value)
        self.finish(json.dumps({"error": self._reason}))


class SearchHandler(_Handler):
    def get(self) -> None:
        terms = self.get_argument("search", "").lower().split()
        filters = self.get_arguments("filter")
        limit = int(self.get_argument("limit", "1000"))
        found = [
            repo
            for repo in self.hub.repos.values()
            if all(term in repo.id.lower() for term in terms) and all(f in repo.tags for f in filters)
        ]
        found.sort(key=lambda repo: -repo.downloads)
        self.write(
            json.dumps(
                [
                    {"id": r.id, "modelId": r.id, "downloads": r.downloads, "likes": r.likes, "tags": r.tags}
                    for r in found[:limit]
                ]
            )
        )


class InfoHandler(_Handler):
    def get(self, repo_id: str) -> None:
        repo = self.repo(repo_id)
        siblings = []
        for file in repo.files:
            sibling: dict[str, Any] = {"rfilename": file.path}
            if self.get_argument("blobs", "").lower() == "true":
                sibling.update(
                    size=len(file.data),
                    blobId=hashlib.sha1(file.data).hexdigest(),
                    lfs={"size": len(file.data), "sha256": file.sha256, "pointerSize": 134},
                )
            siblings.append(sibling)
        body = {
            "id": repo.id,
            "modelId": repo.id,
            "sha": COMMIT,
            "downloads": repo.downloads,
            "likes": repo.likes,
            "tags": repo.tags,
            "library_name": repo.library_name,
            "gated": repo.gated,
            "private": False,
            "siblings": siblings,
        }
        self.write(json.dumps(body))


class ResolveHandler(_Handler):
    def head(self, repo_id: str, revision: str, path: str) -> None:
        self._resolve(repo_id, path)

    def get(self, repo_id: str, revision: str, path: str) -> None:
        self._resolve(repo_id, path)

    def _resolve(self, repo_id: str, path: str) -> None:
        repo = self.repo(repo_id)
        granted = repo.token is None or self.request.headers.get("Authorization") == f"Bearer {repo.token}"
        if repo.refuse_status or not granted:
            status = repo.refuse_status or 401
            raise self.fail(status, "GatedRepo", f"Access to model {repo.id} is restricted.")
        file = next((f for f in repo.files if f.path == path), None)
        if file is None:
            raise self.fail(404, "EntryNotFound", "Entry not found")
        self.set_status(302)
        self.set_header("X-Repo-Commit", COMMIT)
        self.set_header("X-Linked-Size", str(len(file.data)))
        self.set_header("X-Linked-Etag", f'"{file.sha256}"')
        self.set_header("ETag", f'"{file.sha256}"')
        real = hashlib.sha256(file.data).hexdigest()
        self.set_header("Location", f"http://localhost:{self.hub.port}/cdn/{real}")
        self.finish()


class CdnHandler(_Handler):
    async def get(self, sha256: str) -> None:
        found = self.hub.blob(sha256)
        if found is None:
            raise web.HTTPError(404)
        repo, file = found
        data, start = file.data, 0
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.request.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                self.set_header("Content-Range", f"bytes */{len(data)}")
                raise web.HTTPError(416)
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            data = data[start : end + 1]
        self.set_header("ETag", f'"{sha256}"')
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("Content-Length", str(len(data)))
        # Cuts and failures hit downloads (no Range, or an open one), not header reads (bytes=0-N).
        download = not (match and match.group(2))
        failures = self.hub.fail_with.get(file.path) if download else None
        if failures:
            raise web.HTTPError(failures.pop(0))
        cuts = self.hub.cut_after.get(file.path) if download else None
        if cuts:
            cut = cuts.pop(0)
            self.write(data[:cut])
            await self.flush()
            assert self.request.connection is not None
            self.request.connection.close()  # type: ignore[attr-defined]
            return
        hold = self.hub.hold.get(file.path) if download else None
        if not (repo.throttle or hold) or (match and match.group(2)):
            self.write(data)
            return
        for start in range(0, len(data), 1 << 16):
            self.write(data[start : start + (1 << 16)])
            await self.flush()
            while hold is not None and not hold.is_set():
                await asyncio.sleep(0.02)
            await asyncio.sleep(repo.throttle)
