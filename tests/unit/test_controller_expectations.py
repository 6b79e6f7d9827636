"""master.controllers.replicaset.Expectations: a slow informer never causes a second batch."""

from __future__ import annotations

from master.client.clock import FakeClock
from master.controllers.replicaset import Expectations


def test_creates_must_be_observed() -> None:
    e = Expectations(FakeClock())
    assert e.satisfied("ns/web"), "nothing expected yet"
    e.expect("ns/web", adds=3)
    assert not e.satisfied("ns/web")
    e.creation_observed("ns/web")
    e.creation_observed("ns/web")
    assert not e.satisfied("ns/web")
    e.lower_adds("ns/web", 1)  # a create that failed will never be observed
    assert e.satisfied("ns/web")


def test_deletes_are_counted_by_uid_once() -> None:
    e = Expectations(FakeClock())
    e.expect("ns/web", deletes={"u1", "u2"})
    e.deletion_observed("ns/web", "u1")
    e.deletion_observed("ns/web", "u1")  # deletionTimestamp, then the delete itself
    assert not e.satisfied("ns/web")
    e.deletion_observed("ns/web", "u2")
    assert e.satisfied("ns/web")


def test_expectations_expire_and_can_be_forgotten() -> None:
    clock = FakeClock()
    e = Expectations(clock, ttl_s=300)
    e.expect("ns/a", adds=1)
    clock.advance(301)
    assert e.satisfied("ns/a"), "a lost watch event must not wedge the set forever"
    e.expect("ns/b", adds=1)
    e.forget("ns/b")
    assert e.satisfied("ns/b")
    e.creation_observed("ns/unknown")  # observing for a key nobody expects is harmless
