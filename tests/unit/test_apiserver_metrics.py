"""The apiserver's /metrics: request counters and the etcd RPCs its store counts."""

from __future__ import annotations

from master.apiserver.metrics import Metrics
from master.storage.memory import MemoryStore
from master.storage.prefixed import PrefixedStore


class CountingStore:
    """What EtcdStore counts, without etcd."""

    def __init__(self) -> None:
        self.requests = {"TxnRequest": 3, "RangeRequest": 1}
        self.watch_events = 7


def test_the_store_counters_are_read_at_scrape_time_through_a_prefixed_store() -> None:
    store = CountingStore()
    metrics = Metrics()
    metrics.count_store(PrefixedStore(store, "/p"))  # type: ignore[arg-type]
    store.requests["TxnRequest"] += 1
    text = metrics.exposition()[0].decode()
    assert 'apiserver_etcd_requests_total{type="TxnRequest"} 4.0' in text
    assert 'apiserver_etcd_requests_total{type="RangeRequest"} 1.0' in text
    assert "apiserver_etcd_watch_events_total 7.0" in text


def test_a_store_that_counts_nothing_exposes_no_etcd_counters() -> None:
    metrics = Metrics()
    metrics.count_store(MemoryStore())
    metrics.observe("GET", "pods", 200, 0.01)
    text = metrics.exposition()[0].decode()
    assert "apiserver_etcd_requests" not in text
    assert 'apiserver_request_total{code="200",face="rest",resource="pods",verb="GET"} 1.0' in text
