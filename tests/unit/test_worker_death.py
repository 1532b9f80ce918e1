"""Worker deaths are named, and a model that keeps dying right after loading is not reloaded."""

from __future__ import annotations

import signal

from lm_jupyter.engine.crash_guard import CrashGuard
from lm_jupyter.engine.worker_death import describe_exit


def test_each_signal_gets_its_cause_and_fix() -> None:
    ill = describe_exit("m", -signal.SIGILL)
    assert "SIGILL (signal 4)" in ill and "instructions this CPU cannot run" in ill and "build_llama" in ill
    killed = describe_exit("m", -signal.SIGKILL, estimate_bytes=3 * 1024**3)
    assert "SIGKILL" in killed and "out of memory" in killed and "3.00 GiB" in killed
    assert "estimate" not in describe_exit("m", -signal.SIGKILL)
    assert "native code" in describe_exit("m", -signal.SIGSEGV)
    assert "truncated" in describe_exit("m", -signal.SIGBUS)
    assert describe_exit("m", 3) == "The worker process for 'm' exited with status 3."
    assert "signal 77" in describe_exit("m", -77)


def test_quick_deaths_in_a_row_fail_a_model() -> None:
    guard = CrashGuard(limit=3, quick=30)
    guard.died("a.gguf", "SIGILL", uptime=None, now=0)  # during its load
    guard.died("a.gguf", "SIGILL", uptime=2.0, now=10)
    assert guard.failed("a.gguf") is None
    crash = guard.died("a.gguf", "SIGILL", uptime=1.0, now=20)
    assert guard.failed("a.gguf") is crash and crash.quick_in_a_row == 3
    assert guard.failed("b.gguf") is None and guard.last("b.gguf") is None


def test_a_healthy_stretch_or_an_explicit_load_starts_again() -> None:
    guard = CrashGuard(limit=2, quick=30)
    guard.died("a.gguf", "x", uptime=1.0, now=0)
    guard.died("a.gguf", "y", uptime=600.0, now=700)  # died after a long healthy run
    assert guard.failed("a.gguf") is None and guard.last("a.gguf").message == "y"
    guard.died("a.gguf", "z", uptime=1.0, now=710)
    guard.died("a.gguf", "z", uptime=1.0, now=720)
    assert guard.failed("a.gguf") is not None
    guard.retry("a.gguf")
    assert guard.failed("a.gguf") is None and guard.last("a.gguf") is None
