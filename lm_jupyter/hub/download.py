"""Download one variant's files from the Hub into the models folder.

Each file streams into ``NAME.part`` beside its final place (``publisher/repo/NAME``), is
checked against the Hub's size and sha256, and only when every file of the variant has passed
are they renamed into place, projector first and the model last. The registry lists
``*/*/*.gguf``, so ``lmj ls`` never shows a model that is partly there or failed its check.

An interrupted file resumes: a broken connection is retried with an HTTP ``Range`` from the
bytes already written, and a ``.part`` left by an earlier job (server restart, no network)
is continued by the next download of the same file. Blocking: run it in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import get_hf_file_metadata
from huggingface_hub.utils import get_session, hf_raise_for_status

from .search import TIMEOUT, HubError, file_url, hub_errors, hub_headers
from .variants import RemoteFile, Variant

CHUNK = 1 << 20
RETRIES = 4  # connection failures in a row (no byte received in between) before giving up
SPEED_WINDOW = 3.0  # seconds of history the speed is measured over
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_LOCKS: dict[Path, threading.Lock] = {}  # per target file, across jobs
_LOCKS_GUARD = threading.Lock()


class Cancelled(Exception):
    pass


@dataclass
class Progress:
    """Bytes so far out of ``total``; written by the download thread, read by the server."""

    total: int
    done: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        now = time.monotonic()
        with self.lock:
            self.done += count
            self.samples.append((now, self.done))
            while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW:
                self.samples.popleft()

    @property
    def bytes_per_second(self) -> float:
        with self.lock:
            samples = list(self.samples)
        if len(samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = samples[0], samples[-1]
        if time.monotonic() - t1 > SPEED_WINDOW:  # stalled
            return 0.0
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def missing_bytes(variant: Variant, folder: Path) -> int:
    """What is still to fetch: files not in place, less what their ``.part`` files hold."""
    missing = 0
    for file in variant.download_files:
        target = folder / file.name
        if target.is_file() and target.stat().st_size == file.size:
            continue
        part = part_path(target)
        held = part.stat().st_size if part.is_file() else 0
        missing += max(0, file.size - held)
    return missing


def download_variant(
    repo: str,
    revision: str | None,
    variant: Variant,
    folder: Path,
    progress: Progress,
    cancel: threading.Event,
) -> list[Path]:
    """Fetch, verify and place the variant's files; returns the model files' paths.

    Two jobs that share a file (two variants of a repo share its projector) take turns: each
    holds its files' locks, in one global order, from the first byte to the last rename.
    """
    with _file_locks(sorted(folder / f.name for f in variant.download_files)):
        return _fetch_variant(repo, revision, variant, folder, progress, cancel)


@contextlib.contextmanager
def _file_locks(targets: list[Path]) -> Iterator[None]:
    with contextlib.ExitStack() as held:
        for target in targets:
            with _LOCKS_GUARD:
                lock = _LOCKS.setdefault(target, threading.Lock())
            held.enter_context(lock)
        yield


def _fetch_variant(
    repo: str, revision: str | None, variant: Variant, folder: Path,
    progress: Progress, cancel: threading.Event,
) -> list[Path]:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    need = missing_bytes(variant, folder)
    free = shutil.disk_usage(folder).free
    if need > free:
        raise _disk_full(folder, need, free)
    ready: list[tuple[Path, Path]] = []
    for file in variant.download_files:
        target = folder / file.name
        if target.is_file() and target.stat().st_size == file.size:
            progress.add(file.size)
            continue
        part = part_path(target)
        try:
            _fetch(repo, revision, file, part, progress, cancel)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                part.unlink(missing_ok=True)  # give the space back; nothing usable was written
                raise HubError(
                    f"Not enough disk space in {folder}: the disk filled up while writing {file.name} "
                    f"(the download needs {_size(need)}). Free some space and run it again.",
                    507,
                    "insufficient_disk_space",
                ) from None
            raise
        ready.append((part, target))
    # Projector before model; for shards the first one, which the registry lists, last.
    listed = folder / variant.files[0].name
    for part, target in sorted(ready, key=lambda pair: pair[1] == listed):
        os.replace(part, target)
    return [folder / f.name for f in variant.files]


def _fetch(
    repo: str, revision: str | None, file: RemoteFile, part: Path, progress: Progress, cancel: threading.Event
) -> None:
    url = file_url(repo, file.path, revision)
    with hub_errors(repo, file.path):
        meta = get_hf_file_metadata(url, timeout=TIMEOUT.connect)
    size = meta.size if meta.size is not None else file.size
    expected = file.sha256 or (meta.etag if meta.etag and SHA256.match(meta.etag) else None)
    hasher = hashlib.sha256()
    offset = 0
    if part.is_file():
        if part.stat().st_size > size:
            part.unlink()
        else:
            offset = _hash_existing(part, hasher)
            progress.add(offset)
    failures = 0
    while offset < size or (size == 0 and not part.exists()):
        if cancel.is_set():
            raise Cancelled
        headers = hub_headers()
        headers["Accept-Encoding"] = "identity"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with (
                hub_errors(repo, file.path),
                get_session().stream("GET", url, headers=headers, timeout=TIMEOUT) as response,
            ):
                if response.is_error:
                    response.read()  # hf_raise_for_status reads the error body
                hf_raise_for_status(response)
                if offset and response.status_code != 206:  # Range ignored: start over
                    progress.add(-offset)
                    offset, hasher = 0, hashlib.sha256()
                with part.open("ab" if offset else "wb") as out:
                    for chunk in response.iter_bytes():  # as it comes: a cut loses nothing
                        if cancel.is_set():
                            raise Cancelled
                        out.write(chunk)
                        hasher.update(chunk)
                        offset += len(chunk)
                        progress.add(len(chunk))
                        failures = 0
        except HubError as exc:
            if exc.code != "hub_unreachable":
                raise
            failures += 1
            if failures > RETRIES:
                raise HubError(
                    f"The download of {file.name} from {repo} broke off at {offset:,} of {size:,} bytes and "
                    f"could not be resumed ({exc.reason}). Run the download again to continue where it "
                    "stopped.",
                    503,
                    "hub_unreachable",
                ) from None
            time.sleep(min(0.15 * 2**failures, 5.0))
    if offset != size:
        part.unlink(missing_ok=True)
        raise HubError(
            f"{file.name} from {repo} has {offset:,} bytes, but the Hub says {size:,}; the download was "
            "discarded.",
            502,
            "verification_failed",
        )
    if expected and hasher.hexdigest() != expected:
        part.unlink(missing_ok=True)
        raise HubError(
            f"{file.name} from {repo} failed verification: its sha256 is {hasher.hexdigest()[:16]}..., "
            f"the Hub's is {expected[:16]}...; the download was discarded.",
            502,
            "verification_failed",
        )


def _hash_existing(part: Path, hasher: hashlib._Hash) -> int:
    count = 0
    with part.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            count += len(chunk)
    return count


def _disk_full(folder: Path, need: int, free: int) -> HubError:
    return HubError(
        f"Not enough disk space in {folder}: the download needs {_size(need)} more and {_size(free)} "
        "is free.",
        507,
        "insufficient_disk_space",
    )


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
