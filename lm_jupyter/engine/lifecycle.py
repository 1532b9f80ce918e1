"""How instances leave without being asked to: auto-evict before a JIT load, and the TTL reaper.

Both unload through the manager's ``unload`` (passed in), so observers hear the reason
(``evicted``, ``ttl``) as for any other unload; neither ever cuts off a working instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from .instance import Instance

log = logging.getLogger("lm_jupyter")

Unload = Callable[..., Awaitable[None]]  # ModelManager.unload(identifier, reason=...)


async def evict_jit_instances(
    instances: dict[str, Instance], keep: int, unload: Unload, interval: float
) -> None:
    """Auto-evict: unload the least recently used JIT instances until ``keep`` remain.

    A busy instance is never cut off: eviction waits for its requests to finish.
    """
    while True:
        jit = sorted((i for i in instances.values() if i.jit), key=lambda i: i.last_used)
        if len(jit) <= max(keep, 0):
            return
        victim = jit[0]
        while victim.active and victim.identifier in instances:
            await asyncio.sleep(interval)
        if victim.identifier in instances:
            log.info("Auto-evicting JIT-loaded '%s' to make room", victim.identifier)
            await unload(victim.identifier, reason="evicted")


async def reap_idle(instances: dict[str, Instance], unload: Unload, interval: float) -> None:
    """Unload instances idle longer than their TTL (never one that is working)."""
    while instances:
        await asyncio.sleep(interval)
        now = time.monotonic()
        for instance in list(instances.values()):
            if instance.ttl_remaining(now) == 0.0 and not instance.active:
                log.info("Unloading '%s': idle for its TTL of %gs", instance.identifier, instance.options.ttl)
                await unload(instance.identifier, reason="ttl")
