"""Stops a crash loop: a model whose worker keeps dying right after it loads is not reloaded.

Just-in-time loading reloads a model whose worker died on the next request for it. For a
model that dies of its own accord (a CPU the build cannot run, a corrupt file, memory that is
never enough) that becomes an endless cycle of loads and deaths, each costing seconds of disk
and CPU. So each death is recorded per model file: one within ``quick`` seconds of its load
(or during the load) extends the run of quick deaths, one after a healthy stretch starts it
again. After ``limit`` quick deaths in a row the model is failed: just-in-time requests are
refused with the reason until an explicit load asks to try again, which clears the record.
Pure: times are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..api.errors import APIError


@dataclass
class Crash:
    """The last death of a model's worker and the run of quick deaths it ends."""

    message: str
    at: float
    quick_in_a_row: int


class CrashGuard:
    def __init__(self, limit: int = 3, quick: float = 30.0) -> None:
        self.limit = limit
        self.quick = quick
        self._crashes: dict[str, Crash] = {}

    def died(self, model: str, message: str, uptime: float | None, now: float) -> Crash:
        """Record a death; ``uptime`` is None for a worker that died while loading."""
        previous = self._crashes.get(model)
        quick = uptime is None or uptime < self.quick
        run = (previous.quick_in_a_row if previous else 0) + 1 if quick else 0
        crash = self._crashes[model] = Crash(message, now, run)
        return crash

    def failed(self, model: str) -> Crash | None:
        """The crash that failed this model, or None while it may still be loaded on demand."""
        crash = self._crashes.get(model)
        return crash if crash is not None and crash.quick_in_a_row >= self.limit else None

    def last(self, model: str) -> Crash | None:
        return self._crashes.get(model)

    def refusal(self, key: str, failed: Crash) -> APIError:
        """The answer to a request that would load a failed model on demand."""
        return APIError(
            f"'{key}' is not loaded again on demand: its worker died {failed.quick_in_a_row} times "
            f"in a row within {self.quick:g}s of loading. Last time: {failed.message} Once the cause "
            f"is fixed, `lmj load {key}` tries again.",
            status=503,
            type="server_error",
            param="model",
            code="model_failed",
        )

    def retry(self, model: str) -> None:
        """An explicit load: the user asks to try again, so the model starts with a clean record."""
        self._crashes.pop(model, None)
