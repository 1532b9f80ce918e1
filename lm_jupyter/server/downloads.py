"""Download jobs: the server side of ``lmj get``, ``%lms get`` and LM Studio's
``POST /api/v1/models/download`` + ``GET /api/v1/models/download/status/{job_id}``.

Hub calls and file transfers are blocking, so they run on a small thread pool of their own
(never on the event loop, and never holding up the threads that scan the models folder). A job
is polled by its id; the registry scans the folder on every listing, so a finished download
is listed, loadable and counted by the guardrail without being told.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..api.errors import APIError
from ..engine.manager import ModelManager
from ..hub.download import Cancelled, Progress, download_variant, missing_bytes
from ..hub.query import HubQuery, QueryError, parse_query
from ..hub.search import FORMATS, Candidate, HubError, repository, search, variant_json
from ..hub.variants import Ranking, Variant, rank
from .download_fit import remote_fit

DOWNLOADS_SETTING = "lm_jupyter_downloads"  # the Downloads service, in the Tornado settings
log = logging.getLogger("lm_jupyter")


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DownloadJob:
    id: str
    repo: str
    variant: Variant
    folder: Path
    progress: Progress
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "downloading"  # downloading | paused | completed | failed (LM Studio's words)
    completed_at: datetime | None = None
    error: HubError | None = None
    model_key: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        """LM Studio's status fields, plus what was downloaded and, once done, its model key."""
        body: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "total_size_bytes": self.progress.total,
            "downloaded_bytes": min(self.progress.done, self.progress.total),
            "started_at": iso(self.started_at),
            "model": self.repo,
            "quantization": self.variant.quantization,
            "files": [f.name for f in self.variant.download_files],
        }
        if self.status == "downloading":
            speed = self.progress.bytes_per_second
            body["bytes_per_second"] = round(speed, 1)
            if speed > 0:
                left = (self.progress.total - self.progress.done) / speed
                body["estimated_completion"] = iso(datetime.now(UTC) + timedelta(seconds=left))
        if self.completed_at is not None:
            body["completed_at"] = iso(self.completed_at)
        if self.model_key is not None:
            body["model_key"] = self.model_key
        if self.error is not None:
            body["error"] = {"message": str(self.error), "code": self.error.code}
        return body


class Downloads:
    def __init__(self, manager: ModelManager, *, workers: int = 4) -> None:
        self.manager = manager
        self.root = manager.registry.root
        self.jobs: dict[str, DownloadJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lmj-hub")

    async def _run(self, func: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)
        except HubError as exc:
            raise APIError(str(exc), status=exc.status, code=exc.code) from None

    # -- finding -------------------------------------------------------------------------

    async def search(self, query: str, formats: tuple[str, ...], limit: int) -> dict[str, Any]:
        """``GET /api/v1/models/search``: repos for keywords, or the one repo a query names."""
        parsed = _parse(query, param="query")
        if parsed.exact:
            assert parsed.repo is not None
            found = [await self._run(repository, parsed.repo, formats)]
        else:
            found = await self._run(search, parsed.text, formats, limit)
        results = []
        for candidate in found:
            row = candidate.to_json()
            name = candidate.repo.split("/", 1)[1].lower()
            row["exact_match"] = parsed.exact or parsed.text.lower() in (candidate.repo.lower(), name)
            results.append(row)
        return {"query": parsed.text, "quantization": parsed.quantization, "results": results}

    async def options(self, model: str, quantization: str | None, formats: tuple[str, ...]) -> dict[str, Any]:
        """``GET /api/v1/models/download/options``: a repo's variants with fit and the pick."""
        parsed, candidate = await self._candidate(model, quantization, formats)
        ranking = await self._rank(candidate)
        selected = _selected(parsed, candidate.variants)
        folder = self._folder(candidate.repo)
        missing = await self._run(lambda: [missing_bytes(v, folder) for v in ranking.variants])
        variants = []
        for variant, left in zip(ranking.variants, missing, strict=True):
            row = variant_json(variant)
            row["fit"] = ranking.fits.get(variant.name)
            row["recommended"] = variant is ranking.recommended
            row["downloaded"] = left == 0
            variants.append(row)
        return {
            "repo": candidate.repo,
            "format": candidate.format,
            "revision": candidate.revision,
            "gated": candidate.gated,
            "variants": variants,
            "recommended": ranking.recommended.name if ranking.recommended else None,
            "selected": selected.name if selected else None,
        }

    async def _candidate(
        self, model: str, quantization: str | None, formats: tuple[str, ...]
    ) -> tuple[HubQuery, Candidate]:
        parsed = _parse(model, quantization)
        if parsed.repo is None:
            raise APIError(
                f"'{model}' is not a repository: give owner/repo or a huggingface.co URL "
                "(search first with GET /api/v1/models/search?query=...).",
                param="model",
            )
        candidate: Candidate = await self._run(repository, parsed.repo, formats)
        if not candidate.variants:
            raise APIError(
                f"{candidate.repo} has no {' or '.join(f.upper() for f in formats)} model files to download.",
                status=404,
                code="no_model_files",
            )
        return parsed, candidate

    async def _rank(self, candidate: Candidate) -> Ranking:
        """The variants judged against this machine (header reads: in the pool)."""
        fit = remote_fit(
            self.manager.guard, candidate.repo, candidate.revision, self.manager.default_context_length
        )
        ranking: Ranking = await self._run(rank, candidate.variants, fit)
        return ranking

    # -- downloading ---------------------------------------------------------------------

    async def start(self, model: str, quantization: str | None) -> dict[str, Any]:
        """``POST /api/v1/models/download``: a new job, the running one for the same files,
        or ``already_downloaded``."""
        parsed, candidate = await self._candidate(model, quantization, FORMATS)
        variant = _selected(parsed, candidate.variants)
        if variant is None:
            if parsed.quantization or parsed.file:
                wanted = parsed.quantization or parsed.file
                names = ", ".join(v.quantization for v in candidate.variants)
                raise APIError(
                    f"{candidate.repo} has no {wanted} variant; it has {names}.",
                    status=404,
                    param="quantization",
                    code="quantization_not_found",
                )
            variant = (await self._rank(candidate)).recommended
        assert variant is not None
        folder = self._folder(candidate.repo)
        for job in self.jobs.values():
            if job.status == "downloading" and job.folder == folder and job.variant == variant:
                return job.to_json()
        if await self._run(missing_bytes, variant, folder) == 0:
            return {
                "status": "already_downloaded",
                "model": candidate.repo,
                "quantization": variant.quantization,
                "total_size_bytes": variant.download_bytes,
                "model_key": await self._model_key(folder / variant.name),
            }
        log.info("Downloading %s %s into %s", candidate.repo, variant.quantization, folder)
        job = DownloadJob(
            id=f"job_{secrets.token_hex(5)}",
            repo=candidate.repo,
            variant=variant,
            folder=folder,
            progress=Progress(total=variant.download_bytes),
        )
        self.jobs[job.id] = job
        task = asyncio.create_task(self._download(job, candidate.revision), name=job.id)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job.to_json()

    async def _download(self, job: DownloadJob, revision: str | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            args = (job.repo, revision, job.variant, job.folder, job.progress, job.cancel)
            files = await loop.run_in_executor(self._pool, download_variant, *args)
            job.model_key = await self._model_key(files[0])
            job.status = "completed"
        except Cancelled:
            job.status = "paused"  # the .part files stay: the next download resumes them
        except HubError as exc:
            job.error, job.status = exc, "failed"
        except OSError as exc:
            job.error, job.status = HubError(f"Could not write the download to {job.folder}: {exc}"), "failed"
        except Exception as exc:  # a bug: fail the job (pollers must not wait forever) and log it
            log.exception("Download job %s crashed", job.id)
            job.error, job.status = HubError(f"The download failed unexpectedly: {exc}"), "failed"
        finally:
            job.completed_at = datetime.now(UTC)
            if job.status != "completed":
                _remove_if_empty(job.folder)
        what = f"{job.repo} {job.variant.quantization} ({job.id})"
        if job.error is not None:
            log.warning("Download of %s failed: %s", what, job.error)
        else:
            log.info("Download of %s %s: %s", what, job.status, job.model_key or job.folder)

    def status(self, job_id: str) -> dict[str, Any]:
        return self._job(job_id).to_json()

    def listing(self) -> list[dict[str, Any]]:
        """Every job since the server started, oldest first (a dict keeps insertion order)."""
        return [job.to_json() for job in self.jobs.values()]

    async def pause(self, job_id: str) -> dict[str, Any]:
        """Stop a running job; its ``.part`` files stay, so the next download resumes them."""
        job = self._job(job_id)
        job.cancel.set()
        task = next((t for t in self._tasks if t.get_name() == job.id), None)
        if task is not None:
            await asyncio.shield(task)
        return job.to_json()

    def _job(self, job_id: str) -> DownloadJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise APIError(f"No download job '{job_id}'.", status=404, code="job_not_found")
        return job

    async def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False)

    # -- helpers -------------------------------------------------------------------------

    def _folder(self, repo: str) -> Path:
        owner, name = repo.split("/", 1)
        return self.root / owner / name

    async def _model_key(self, file: Path) -> str | None:
        """The key ``lmj load`` takes for this file (or the MLX folder that holds it)."""
        models = await asyncio.to_thread(self.manager.registry.scan)
        return next((m.facts.key for m in models if m.file in (file, file.parent)), None)


def _parse(query: str, quantization: str | None = None, *, param: str = "model") -> HubQuery:
    try:
        return parse_query(query, quantization)
    except QueryError as exc:
        raise APIError(str(exc), param=param) from None


def _selected(parsed: HubQuery, variants: list[Variant]) -> Variant | None:
    """The variant the query names (``@QUANT``, or a file in a URL), if it names one."""
    for variant in variants:
        if parsed.file and variant.name.lower() == parsed.file.lower():
            return variant
        if parsed.quantization and variant.matches(parsed.quantization):
            return variant
    return None


def _remove_if_empty(folder: Path) -> None:
    """A failed first download leaves no empty publisher/repo folders behind."""
    for path in (folder, folder.parent):
        try:
            path.rmdir()
        except OSError:
            return
