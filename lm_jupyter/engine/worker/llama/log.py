"""llama.cpp's own account of the buffers it allocates, read from its log during a load.

llama.cpp reports every buffer it allocates ("CPU_Mapped model buffer size = 235.16 MiB",
"CUDA0 KV buffer size = ...", "CPU compute buffer size = ...") but offers no API for most of
them. The worker wraps a load in :class:`BufferSizes` and sends the sums in its ``loaded``
event, so the memory estimate can be checked against llama.cpp itself, on any device.
"""

from __future__ import annotations

import ctypes
import re
from types import TracebackType
from typing import Any

import llama_cpp
from llama_cpp import _logger

MIB = 1 << 20
_SIZE = re.compile(r"(\S+)\s+(model|KV|compute|output) buffer size =\s+([\d.]+) MiB")


class BufferSizes:
    """Collects ``{"<buffer type> <kind>": bytes}`` while active; log lines still reach
    llama-cpp-python's own handler (which prints them only when verbose)."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: Any) -> None:
            match = _SIZE.search(text.decode("utf-8", errors="replace"))
            if match:
                key = f"{match.group(1)} {match.group(2)}"
                self.sizes[key] = self.sizes.get(key, 0) + round(float(match.group(3)) * MIB)
            _logger.llama_log_callback(level, text, user_data)

        self._callback = callback  # ctypes needs the reference kept alive

    def __enter__(self) -> BufferSizes:
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
