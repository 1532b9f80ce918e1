"""Run many requests with up to ``concurrency`` in flight, so the server's continuous batching
fills its ``parallel`` slots, and keep whatever finished when the user interrupts.

Requests run on a thread pool (the kernel's own event loop is busy running the cell, so
asyncio is not an option there). The calling thread waits, draws progress and hands each
result to ``on_result`` (the cache is written there, on the caller's thread). Ctrl+C / the
notebook's interrupt sets ``stop``: queued jobs do not start, streaming jobs close their
stream at the next chunk (the server then cancels the generation), and the run returns with
every finished row. A 503 (the server's queue is full) is retried after its Retry-After.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ._client import LmError
from .progress import State, View

# A 503 with Retry-After is the server's full queue: it is working and will take the row, so
# a row waits as long as rows ahead of it may take on a slow model. A 503 without one (a model
# that failed to load, an unreachable upstream) is given a few tries only.
QUEUE_WAIT_SECONDS = 600.0  # 503s with Retry-After for this long in a row before a row fails
RETRIES = 20  # 503s without Retry-After in a row before a row fails
DEFAULT_RETRY_AFTER = 1.0


class Cancelled(Exception):
    """The run was stopped before this job finished."""


@dataclass
class Job:
    positions: list[int]  # the rows this request computes (one, or an embedding batch)
    request: Any


Work = Callable[[Any, threading.Event], Any]


def with_retries(
    work: Work, request: Any, stop: threading.Event, on_retry: Callable[[], None] | None = None
) -> Any:
    deadline = time.monotonic() + QUEUE_WAIT_SECONDS
    attempts = 0
    while not stop.is_set():
        try:
            return work(request, stop)
        except LmError as exc:
            if exc.status != 503:
                raise
            attempts += 1
            pause = exc.retry_after or DEFAULT_RETRY_AFTER
            if time.monotonic() + pause > deadline if exc.retry_after else attempts >= RETRIES:
                raise
            if on_retry is not None:
                on_retry()
            if stop.wait(pause):
                break
    raise Cancelled


def run(
    jobs: list[Job],
    work: Work,
    *,
    concurrency: int,
    on_result: Callable[[Job, Any], None],
    on_error: Callable[[Job, BaseException], None],
    state: State,
    view: View,
    raise_errors: bool = False,
) -> bool:
    """Run every job; True if it was interrupted. With ``raise_errors`` the first failure
    stops the run and is raised once the jobs in flight have ended."""
    stop = threading.Event()
    failure: BaseException | None = None
    interrupted = False
    pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="lm_jupyter-llm")
    lock = threading.Lock()

    def retried() -> None:
        with lock:
            state.retries += 1

    futures = {pool.submit(with_retries, work, job.request, stop, retried): job for job in jobs}
    pending = set(futures)
    collected: set[Future[Any]] = set()

    def collect(done: set[Future[Any]]) -> None:
        nonlocal failure
        for future in done - collected:
            collected.add(future)
            job = futures[future]
            error = future.exception()
            if isinstance(error, Cancelled):
                continue
            if error is not None:
                state.errors += len(job.positions)
                on_error(job, error)
                if raise_errors and failure is None:
                    failure = error
                    stop.set()
            else:
                on_result(job, future.result())
            state.done += len(job.positions)

    try:
        view.show(state)
        while pending:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            collect(done)
            view.show(state)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
    finally:
        stop.set()
        # Jobs in flight end within a chunk; ones that finished meanwhile are kept too.
        done, _ = wait(set(futures) - collected)
        collect(done)
        pool.shutdown(wait=True)
        state.status = "interrupted" if interrupted else "failed" if failure else "done"
        view.close(state)
    if failure is not None:
        raise failure
    return interrupted
