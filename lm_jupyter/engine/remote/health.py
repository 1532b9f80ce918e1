"""Which upstreams to try, and in what order: one that failed is skipped for a while.

Pure bookkeeping with an injected clock. A failure (unreachable, 5xx, timeout, a stream that
died, or a listing refresh that fails: the periodic health check) marks an upstream down for
``cooldown`` seconds; a request it serves marks it up again. A listing that answers does not:
an upstream whose ``/v1/models`` works may still fail every generation. Down upstreams are
still tried after every up one, so a model whose only upstream is down gets a fresh attempt
and an error naming it, never a refusal from stale state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass
class State:
    down_until: float = 0.0
    last_error: str | None = None
    failures: int = 0  # in a row


class Health:
    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self._states: dict[str, State] = {}

    def state(self, name: str) -> State:
        return self._states.setdefault(name, State())

    def failed(self, name: str, error: str) -> None:
        state = self.state(name)
        state.failures += 1
        state.last_error = error
        state.down_until = self.clock() + self.cooldown

    def succeeded(self, name: str) -> None:
        self._states[name] = State()

    def is_down(self, name: str) -> bool:
        return self.state(name).down_until > self.clock()

    def order(self, candidates: Iterable[T], name_of: Callable[[T], str]) -> list[T]:
        """Up upstreams in their configured order, then down ones, soonest back first."""
        items = list(candidates)
        up = [item for item in items if not self.is_down(name_of(item))]
        down = sorted(
            (item for item in items if self.is_down(name_of(item))),
            key=lambda item: self.state(name_of(item)).down_until,
        )
        return up + down
