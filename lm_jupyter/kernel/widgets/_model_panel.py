"""ModelPanel: downloaded models, memory estimates as you move the sliders, load and unload,
the loaded instances with status, queue and TTL, and a Hub download box with progress bars,
refreshed from the server.

The server owns model state (DESIGN §1): this widget is one more client of its routes, so a
model loaded from ``lmj`` or another notebook shows up at the next refresh. Refreshing and
loading run on background threads and only set traits (reference/jupyter.md §4.3), so the
kernel stays free; button clicks arrive as custom messages whenever the kernel is idle.
Download jobs are listed from the server (``GET /api/v1/models/download``), so a download
started by ``lmj get`` shows its bar here too; the poller looks twice a second while one runs.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anywidget
import traitlets

from ...client.client import Client, LmError
from ...client.download_view import FIT_LABELS, progress_parts, size_span
from ...client.estimate_view import estimate_bars, verdict_text, where_text
from ...client.notebook_text import localize
from ...client.tables import format_size, ls_table, ps_table
from ._assets import joined
from ._markdown import StaticOutput, twin_style

DOWNLOAD_POLL_SECONDS = 0.5  # while a download runs


def model_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``GET /api/v1/models`` as the table shows it (LLMs and embedding models)."""
    rows = []
    for model in models:
        capabilities = sorted(
            "tool use" if name == "trained_for_tool_use" else name
            for name, value in (model.get("capabilities") or {}).items()
            if value
        )
        rows.append(
            {
                "key": model["key"],
                "name": model.get("display_name") or model["key"],
                "type": model.get("type", "llm"),
                "architecture": model.get("architecture") or "",
                "params": model.get("params_string") or "",
                "quantization": (model.get("quantization") or {}).get("name") or "",
                "size_bytes": int(model.get("size_bytes") or 0),
                "max_context_length": int(model.get("max_context_length") or 0),
                "capabilities": capabilities,
                "variants": [
                    {
                        "key": v["key"],
                        "quantization": v.get("quantization") or "",
                        "size_bytes": v["size_bytes"],
                    }
                    for v in model.get("variant_details") or []
                ],
                "loaded": len(model.get("loaded_instances") or []),
            }
        )
    return rows


def result_rows(found: dict[str, Any]) -> list[dict[str, Any]]:
    """``GET /api/v1/models/search`` results as the download box lists them."""
    return [
        {
            "repo": result["repo"],
            "exact_match": bool(result.get("exact_match")),
            "quantizations": [v["quantization"] for v in result["variants"]],
            "sizes": size_span(result["variants"]),
        }
        for result in found["results"]
        if result["variants"]
    ]


def option_rows(options: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/v1/models/download/options``: a repo's variants, each with a Download button."""
    return {
        "repo": options["repo"],
        "format": options["format"],
        "variants": [
            {
                "name": v["name"],
                "quantization": v["quantization"],
                "size": format_size(v["download_bytes"]),
                "fit": FIT_LABELS.get(v.get("fit") or "", "").strip("[]"),
                "fits": v.get("fit") != "willNotFit",
                "recommended": bool(v.get("recommended")),
                "downloaded": bool(v.get("downloaded")),
            }
            for v in options["variants"]
        ],
    }


def job_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Download jobs with their progress, the latest per variant (a resumed download replaces
    its paused job), in the order they started."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for job in jobs:
        key = (job["model"], job["quantization"])
        latest.pop(key, None)
        latest[key] = {
            "job_id": job["job_id"],
            "model": job["model"],
            "quantization": job["quantization"],
            "status": job["status"],
            "model_key": job.get("model_key") or "",
            "error": (job.get("error") or {}).get("message", ""),
            **progress_parts(job),
        }
    return list(latest.values())


def with_bars(estimate: dict[str, Any]) -> dict[str, Any]:
    """An estimate with what the browser shows of it, worded and sized as ``lmj`` prints it:
    the memory bars, where the model will run and whether it fits."""
    return {
        **estimate,
        "bars": estimate_bars(estimate),
        "where": where_text(estimate),
        "verdict": verdict_text(estimate),
    }


class ModelPanel(anywidget.AnyWidget):
    """Manage the server's models from a notebook: ``%lms`` with no arguments shows one."""

    _esm = joined("memory_bars.js", "model_panel.js")
    _css = joined("model_panel.css")

    models = traitlets.List(traitlets.Dict()).tag(sync=True)
    loaded = traitlets.List(traitlets.Dict()).tag(sync=True)
    refreshed_at = traitlets.Float(0.0).tag(sync=True)  # epoch ms: the browser counts TTLs down from it
    selected = traitlets.Unicode("").tag(sync=True)  # a model (or variant) key
    context_length = traitlets.Int(4096).tag(sync=True)
    # 0 (off) .. 1 (max); None until the slider is moved: the server offloads what fits (auto).
    gpu = traitlets.Float(None, allow_none=True).tag(sync=True)
    estimate = traitlets.Dict().tag(sync=True)  # POST /api/v1/models/estimate for the selection
    busy = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    # the download box: the last search, its results, one repo's variants, and the jobs
    hub_query = traitlets.Unicode("").tag(sync=True)
    hub_results = traitlets.List(traitlets.Dict()).tag(sync=True)
    hub_options = traitlets.Dict().tag(sync=True)
    hub_status = traitlets.Unicode("").tag(sync=True)
    hub_error = traitlets.Unicode("").tag(sync=True)
    downloads = traitlets.List(traitlets.Dict()).tag(sync=True)

    def __init__(self, client: Client | None = None, refresh_seconds: float = 3.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client or Client.discover()
        self.refresh_seconds = refresh_seconds
        self._closed = threading.Event()
        self._wake = threading.Event()  # poll now: a download was started or paused
        self._estimate_lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._searches = 0  # a newer search makes an older one's late answer stale
        self._finished: set[str] = set()  # completed job ids already seen
        self._downloads_lock = threading.Lock()  # the poller and a button's thread may both read
        self._listing: list[dict[str, Any]] = []  # GET /api/v1/models as last read
        self._twins: list[Any] = []  # display handles of the static copies (_ipython_display_)
        self.on_msg(self._on_frontend_msg)
        self.refresh()
        self._poller: threading.Thread | None = None
        if refresh_seconds > 0:
            self._poller = threading.Thread(target=self._poll, name="lm_jupyter-models", daemon=True)
            self._poller.start()

    # -- saved notebooks -----------------------------------------------------------------

    def static(self) -> StaticOutput:
        """The models and loaded instances as Markdown tables: the panel's twin output, which a
        saved notebook shows when the panel's view cannot come back (``_markdown.twin_style``)."""
        loaded = localize(ps_table(self.client.loaded(self._listing))).markdown() if self._listing else ""
        listing = localize(ls_table(self._listing)).markdown()
        text = "\n\n".join(filter(None, ["**Local models** (as last shown)", loaded, listing]))
        return StaticOutput("lmj-mm-static", text, text, style=twin_style("lmj-mm", "lmj-mm-static"))

    def _ipython_display_(self) -> None:
        """The panel, then its static twin (updated when the models change)."""
        from IPython.display import display

        if self.comm is not None:  # a closed widget has no view, only its copy
            data, metadata = self._repr_mimebundle_()
            display({**data, "text/plain": ""}, metadata=metadata, raw=True)
        self._twins.append(display(self.static(), display_id=True))

    # -- server state --------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read downloaded and loaded models and the download jobs (every ``refresh_seconds``)."""
        self._refresh_models()
        self.refresh_downloads()

    def _refresh_models(self) -> None:
        try:
            models = self.client.models()
            loaded = self.client.loaded()
        except LmError as exc:
            self.error = str(exc)
            return
        with self.hold_sync():
            self.models = model_rows(models)
            self.loaded = loaded
            self.refreshed_at = time.time() * 1000
            if self.error.startswith("Cannot reach"):
                self.error = ""
        changed, self._listing = models != self._listing, models
        if changed:
            for handle in list(self._twins):
                handle.update(self.static())

    def refresh_downloads(self) -> None:
        """Re-read the server's download jobs; a newly finished one brings its model into the list."""
        with self._downloads_lock:
            try:
                jobs = job_rows(self.client.downloads())
            except LmError as exc:
                self.hub_error = str(exc)
                return
            self.downloads = jobs
            finished = {job["job_id"] for job in jobs if job["status"] == "completed"}
            new = finished - self._finished
            self._finished = finished
        if not new:
            return
        self._refresh_models()
        shown = self.hub_options.get("repo")
        if any(job["model"] == shown for job in jobs if job["job_id"] in new):
            try:  # its variants now say "downloaded"
                self._fetch_options(shown, self._searches)
            except LmError as exc:
                self.hub_error = str(exc)

    def _poll(self) -> None:
        last = time.monotonic()
        while not self._closed.is_set():
            running = any(job["status"] == "downloading" for job in self.downloads)
            self._wake.wait(
                min(DOWNLOAD_POLL_SECONDS, self.refresh_seconds) if running else self.refresh_seconds
            )
            self._wake.clear()
            if self._closed.is_set():
                return
            if time.monotonic() - last >= self.refresh_seconds:
                self.refresh()
                last = time.monotonic()
            else:
                self.refresh_downloads()

    @traitlets.observe("selected", "context_length", "gpu")
    def _selection_changed(self, _change: Any) -> None:
        self.update_estimate()

    def update_estimate(self) -> None:
        """What loading the selection with the sliders' settings would take, against free memory."""
        if not self.selected:
            self.estimate = {}
            return
        with self._estimate_lock:
            try:
                estimate = self.client.estimate(
                    self.selected, context_length=self.context_length, gpu=self._gpu_option()
                )
            except LmError as exc:
                self.estimate, self.error = {}, str(exc)
                return
            self.estimate, self.error = with_bars(estimate), ""

    def _gpu_option(self) -> float | None:
        return None if self.gpu is None else round(self.gpu, 3)

    # -- actions -------------------------------------------------------------------------

    def load(self, model: str | None = None, **options: Any) -> threading.Thread:
        """Load ``model`` (default: the selection with the sliders' settings) in the background."""
        model = model or self.selected
        options = {"context_length": self.context_length, "gpu": self._gpu_option(), **options}
        same = [row["identifier"] for row in self.loaded if model in (row["modelKey"], row["identifier"])]
        if same and not options.get("identifier"):  # a second click would load a second copy
            self.message, self.error = "", f"{model} is already loaded as {same[0]}; unload it first."
            done = threading.Thread(target=lambda: None)  # callers join() what load() returns
            done.start()
            return done
        return self._background(
            f"Loading {model}…",
            lambda: self.client.load(model, **options),
            lambda result: f"Loaded {result['instance_id']} in {result['load_time_seconds']:.1f}s.",
        )

    def unload(self, identifier: str) -> threading.Thread:
        return self._background(
            f"Unloading {identifier}…",
            lambda: self.client.unload(identifier),
            lambda _: f"Unloaded {identifier}.",
        )

    # -- downloads -----------------------------------------------------------------------

    def search(self, query: str) -> threading.Thread:
        """Search the Hub in the background; the best match's variants are fetched with it."""
        query = query.strip()
        with self._search_lock:
            self._searches += 1
            search = self._searches
        self.hub_query, self.hub_status, self.hub_error = query, f"Searching for {query}…", ""

        def run() -> None:
            rows = result_rows(self.client.search_hub(query))
            if search != self._searches:
                return
            with self.hold_sync():
                self.hub_results, self.hub_options = rows, {}
                self.hub_status = f"{len(rows)} found." if rows else f"No models found for '{query}'."
            if rows:
                self._fetch_options(next((r for r in rows if r["exact_match"]), rows[0])["repo"], search)

        return self._hub_thread(run)

    def show_options(self, repo: str) -> threading.Thread:
        """Fetch one repo's variants (with their fit and the recommended one) in the background."""
        self.hub_status, self.hub_error = f"Reading the variants of {repo}…", ""
        return self._hub_thread(lambda: self._fetch_options(repo, self._searches))

    def _fetch_options(self, repo: str, search: int) -> None:
        options = option_rows(self.client.download_options(repo))
        if search == self._searches:
            self.hub_options, self.hub_status = options, ""

    def download(self, model: str, quantization: str | None = None) -> threading.Thread:
        """Start (or resume) a download; without a quantization the server picks the variant
        it recommends for its machine. Progress arrives through the job listing."""
        self.hub_status, self.hub_error = f"Starting the download of {model}…", ""

        def run() -> None:
            job = self.client.download(model, quantization)
            # a started job speaks through its bar
            already = job["status"] == "already_downloaded"
            self.hub_status = f"Already downloaded: {job.get('model_key') or model}." if already else ""
            self.refresh_downloads()
            self._wake.set()

        return self._hub_thread(run)

    def pause(self, job_id: str) -> threading.Thread:
        """Stop a download; its partial files stay, so Resume continues where it stopped."""

        def run() -> None:
            self.client.pause_download(job_id)
            self.refresh_downloads()

        return self._hub_thread(run)

    def _hub_thread(self, work: Any) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except LmError as exc:
                self.hub_status, self.hub_error = "", str(exc)

        thread = threading.Thread(target=run, name="lm_jupyter-hub", daemon=True)
        thread.start()
        return thread

    def _background(self, busy: str, action: Any, done: Any) -> threading.Thread:
        def run() -> None:
            try:
                result = action()
            except LmError as exc:
                message, error = "", str(exc)
            else:
                message, error = done(result), ""
            self.refresh()
            self.update_estimate()  # free memory changed with the load or unload
            self.message, self.error, self.busy = message, error, ""

        self.busy, self.error = busy, ""
        thread = threading.Thread(target=run, name="lm_jupyter-model-action", daemon=True)
        thread.start()
        return thread

    def _on_frontend_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "load" and isinstance(content.get("model"), str):
            self.load(content["model"])
        elif kind == "unload" and isinstance(content.get("id"), str):
            self.unload(content["id"])
        elif kind == "refresh":
            self.refresh()
        elif kind == "search" and isinstance(content.get("query"), str):
            self.search(content["query"])
        elif kind == "options" and isinstance(content.get("repo"), str):
            self.show_options(content["repo"])
        elif kind == "download" and isinstance(content.get("model"), str):
            quantization = content.get("quantization")
            self.download(content["model"], quantization if isinstance(quantization, str) else None)
        elif kind == "pause" and isinstance(content.get("id"), str):
            self.pause(content["id"])

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        super().close()
