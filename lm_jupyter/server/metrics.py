"""Prometheus metrics (``lm_jupyter_*``) on the Jupyter server's own authenticated ``/metrics``.

Counters are bumped as requests finish; instance state (loaded, queued) is read from the
managers at scrape time, so it can never drift from what ``ps`` shows.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..api.completions import Outcome
from ..engine.manager import ModelManager

REQUESTS = Counter(
    "lm_jupyter_requests",
    "Inference requests finished, by model instance, route kind and finish reason.",
    ["model", "kind", "finish_reason"],
)
PROMPT_TOKENS = Counter("lm_jupyter_prompt_tokens", "Prompt tokens processed.", ["model"])
CACHED_TOKENS = Counter(
    "lm_jupyter_cached_prompt_tokens", "Prompt tokens reused from the KV cache.", ["model"]
)
GENERATED_TOKENS = Counter("lm_jupyter_generated_tokens", "Tokens generated.", ["model"])
PREFIX_HITS = Counter(
    "lm_jupyter_prefix_cache_hits", "Requests that reused a cached prompt prefix.", ["model"]
)
DRAFT_TOKENS = Counter(
    "lm_jupyter_draft_tokens",
    "Speculative decoding's drafted tokens by outcome (accepted, rejected, ignored); the "
    "acceptance rate is accepted / (accepted + rejected).",
    ["model", "outcome"],
)
_OUTCOMES = ("accepted", "rejected", "ignored")


def record(model: str, kind: str, outcome: Outcome) -> None:
    REQUESTS.labels(model, kind, outcome.finish_reason).inc()
    PROMPT_TOKENS.labels(model).inc(outcome.prompt_tokens)
    CACHED_TOKENS.labels(model).inc(outcome.cached_tokens)
    GENERATED_TOKENS.labels(model).inc(outcome.completion_tokens)
    if outcome.cached_tokens:
        PREFIX_HITS.labels(model).inc()
    if outcome.draft is not None:
        for name in _OUTCOMES:
            DRAFT_TOKENS.labels(model, name).inc(outcome.draft[f"{name}_draft_tokens_count"])


class _Instances(Collector):
    def __init__(self) -> None:
        self.managers: weakref.WeakSet[ModelManager] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        loaded = GaugeMetricFamily(
            "lm_jupyter_loaded_instances", "Model instances loaded, by model key.", labels=["key"]
        )
        queued = GaugeMetricFamily(
            "lm_jupyter_queue_depth",
            "Requests on an instance, the running one included (as `ps` counts them).",
            labels=["model"],
        )
        running = GaugeMetricFamily(
            "lm_jupyter_running_sequences",
            "Requests an instance is generating now (the rest of its queue waits for a slot).",
            labels=["model"],
        )
        occupancy = GaugeMetricFamily(
            "lm_jupyter_batch_occupancy",
            "Share of an instance's parallel slots (--parallel) in use: 1 means every decode "
            "step batches as many sequences as it can.",
            labels=["model"],
        )
        per_key: dict[str, int] = {}
        for manager in list(self.managers):
            for instance in manager.instances.values():
                per_key[instance.model.facts.model_key] = per_key.get(instance.model.facts.model_key, 0) + 1
                queued.add_metric([instance.identifier], instance.active)
                slots = instance.options.parallel
                running.add_metric([instance.identifier], min(instance.active, slots))
                occupancy.add_metric([instance.identifier], min(instance.active, slots) / slots)
        for key, count in per_key.items():
            loaded.add_metric([key], count)
        yield loaded
        yield queued
        yield running
        yield occupancy


_INSTANCES = _Instances()
REGISTRY.register(_INSTANCES)


def watch(manager: ModelManager) -> None:
    """Report this manager's instances (a process may host several servers, as tests do)."""
    _INSTANCES.managers.add(manager)
