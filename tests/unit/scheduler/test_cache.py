"""SchedulerCache: assume, confirm, forget, expire; snapshots are rebuilt per change."""

from __future__ import annotations

from master.scheduler.cache import SchedulerCache
from tests.unit.scheduler.builders import node, pod


def test_assume_counts_at_once_and_forget_takes_it_back() -> None:
    cache = SchedulerCache(assume_ttl_s=30)
    cache.set_node(node("a"))
    p = pod("p", cpu="1")
    cache.assume(p, "a")
    s = cache.snapshot()
    assert s.by_name["a"].requested.milli_cpu == 1000 and cache.is_assumed("default/p")
    cache.forget("default/p")
    assert cache.snapshot().by_name["a"].requested.milli_cpu == 0
    assert cache.snapshot() is cache.snapshot()  # unchanged: same object


def test_informer_confirms_and_expiry_only_after_bind() -> None:
    cache = SchedulerCache(assume_ttl_s=30)
    cache.set_node(node("a"))
    cache.assume(pod("p", cpu="1"), "a")
    assert cache.cleanup_expired(now=1000) == []  # bind still in flight: never expires
    cache.finish_binding("default/p", now=0)
    cache.set_pod(pod("p", cpu="1", node_name="a"))
    assert not cache.is_assumed("default/p")
    assert cache.cleanup_expired(now=1000) == []
    cache.assume(pod("q", cpu="1"), "a")
    cache.finish_binding("default/q", now=0)
    assert cache.cleanup_expired(now=30) == ["default/q"]
    assert cache.snapshot().by_name["a"].requested.milli_cpu == 1000


def test_pods_wait_for_their_node_and_leave_with_it() -> None:
    cache = SchedulerCache()
    cache.set_pod(pod("p", cpu="1", node_name="late"))
    assert cache.snapshot().nodes == ()
    cache.set_node(node("late"))
    assert len(cache.snapshot().by_name["late"].pods) == 1
    cache.remove_node("late")
    assert cache.snapshot().nodes == ()
    cache.remove_pod("default/p")
    cache.set_node(node("late"))
    assert cache.snapshot().by_name["late"].pods == ()
