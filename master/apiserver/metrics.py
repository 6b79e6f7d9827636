"""Prometheus metrics of the apiserver: requests by verb, resource and code,
latency histograms, watchers and cache sizes. One CollectorRegistry per
master (tests run several in one process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request_total", "API requests by verb, resource, face and HTTP code.",
            ["verb", "resource", "face", "code"], registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds", "API request latency (watches excluded).",
            ["verb", "resource", "face"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.watchers = Gauge(
            "apiserver_registered_watchers", "Open watches by resource.", ["resource"], registry=self.registry,
        )
        self.cache_objects = Gauge(
            "apiserver_watch_cache_objects", "Objects held by the watch cache.", ["resource"], registry=self.registry,
        )
        # Labelled children by label values: `labels()` costs more than the
        # observation itself, and the label sets are few.
        self._counters: dict[tuple[str, str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str, str], Any] = {}

    def observe(self, verb: str, resource: str, code: int, seconds: float, *, face: str = "rest") -> None:
        key = (verb, resource, face, code)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(verb, resource, face, str(code))
        counter.inc()
        if verb != "WATCH":
            hkey = (verb, resource, face)
            hist = self._histograms.get(hkey)
            if hist is None:
                hist = self._histograms[hkey] = self.latency.labels(verb, resource, face)
            hist.observe(seconds)

    def count_store(self, store: Any) -> None:
        """Expose the etcd RPCs and watch events `store` counts (EtcdStore, or a
        PrefixedStore over one; a store that counts nothing exposes nothing)."""
        self.registry.register(_StoreCollector(getattr(store, "inner", store)))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StoreCollector:
    """Reads the store's counters at scrape time: counting costs the store a
    dict increment per RPC, not a prometheus label lookup."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        requests = getattr(self.store, "requests", None)
        if requests is None:
            return
        rpcs = CounterMetricFamily("apiserver_etcd_requests", "Unary etcd RPCs by request type.",
                                   labels=["type"])
        for name, n in sorted(requests.items()):
            rpcs.add_metric([name], n)
        yield rpcs
        yield CounterMetricFamily("apiserver_etcd_watch_events", "Events received on etcd watches.",
                                  value=getattr(self.store, "watch_events", 0))
