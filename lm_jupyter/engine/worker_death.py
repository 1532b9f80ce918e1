"""Why a worker process ended, in words a user can act on.

A worker that dies by a signal leaves nothing but its exit status, so the status is all the
server can go on: each signal that native code dies of gets its likely cause and the fix.
Pure: the estimate, when known, is passed in.
"""

from __future__ import annotations

import signal

_GIB = 1024**3


def describe_exit(label: str, returncode: int | None, estimate_bytes: int | None = None) -> str:
    """One message for a worker's end: what happened, the likely cause and what to do."""
    if returncode is None or returncode >= 0:
        return f"The worker process for '{label}' exited with status {returncode}."
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    head = f"The worker process for '{label}' was killed by {name} (signal {number})"
    return f"{head}: {_hint(number, estimate_bytes)}"


def _hint(number: int, estimate_bytes: int | None) -> str:
    if number == signal.SIGILL:
        return (
            "llama.cpp was built for instructions this CPU cannot run. Rebuild llama-cpp-python on "
            "this machine: `python scripts/build_llama.py install` in a checkout, or see "
            "'Illegal instruction' under Troubleshooting in the README."
        )
    if number == signal.SIGKILL:
        size = f" (the estimate for this load was {estimate_bytes / _GIB:.2f} GiB)" if estimate_bytes else ""
        return (
            f"most likely the system ran out of memory and killed it{size}. Load it with a smaller "
            "context length, unload other models, or choose a smaller quantization."
        )
    if number == signal.SIGSEGV:
        return (
            "a crash inside native code: a llama.cpp bug or a corrupt model file. The server log has "
            "the worker's last lines; try another quantization or file of this model."
        )
    if number == signal.SIGBUS:
        return (
            "the model file could not be read while mapped: it was changed, truncated or its disk "
            "went away. Download or import the model again."
        )
    if number == signal.SIGABRT:
        return "llama.cpp aborted on an internal check; the server log has its message."
    return "it was stopped from outside the server."
