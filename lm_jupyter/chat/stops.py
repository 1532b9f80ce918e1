"""Stop-string matching over streamed text.

Text that might be the start of a stop string is held back until it is known not to be, so
a client never sees part of a stop sequence and streamed output equals non-streamed output.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False
        self.matched: str | None = None  # the stop string that ended the text

    def feed(self, text: str) -> str:
        """Add generated text; return what is now safe to emit."""
        if self.stopped:
            return ""
        self.pending += text
        found = [(index, stop) for stop in self.stops if (index := self.pending.find(stop)) >= 0]
        if found:
            cut, self.matched = min(found, key=lambda hit: hit[0])
            self.stopped = True
            out, self.pending = self.pending[:cut], ""
            return out
        hold = self._partial_suffix()
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold :]
        return out

    def flush(self) -> str:
        """Generation ended without a stop string: release what was held back."""
        out, self.pending = self.pending, ""
        return out

    def _partial_suffix(self) -> int:
        """Length of the longest tail of pending text that begins some stop string."""
        best = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(self.pending)), best, -1):
                if self.pending.endswith(stop[:length]):
                    best = length
                    break
        return best
