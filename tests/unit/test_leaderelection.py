"""master.leaderelection: the election decision as a table, and two electors on a fake API.

The fake keeps one Lease with a resourceVersion and refuses stale writes
(Conflict), as the apiserver does over etcd; each elector gets its own view
that a test can cut off. Time is a FakeClock, stepped in small increments.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest

from master.client.clock import FakeClock
from master.client.errors import AlreadyExists, Conflict, NotFound, Unavailable
from master.leaderelection import (
    Action,
    LeaderElectionConfig,
    LeaderElector,
    Observed,
    lease_record,
    plan_election,
    render_lease,
)
from master.main import enabled_controllers, parse_controller_options
from protos.coordination.v1 import coordination_pb2

WALL0 = datetime(2026, 1, 1, tzinfo=UTC)


def lease(holder: str, *, renewed: float = 0.0, rv: str = "5", duration: int = 15) -> coordination_pb2.Lease:
    lz = coordination_pb2.Lease()
    lz.metadata.name, lz.metadata.namespace, lz.metadata.resource_version = "l", "kube-system", rv
    lz.spec.holder_identity = holder
    lz.spec.lease_duration_seconds = duration
    lz.spec.renew_time.FromNanoseconds(int(renewed * 1e9))
    lz.spec.lease_transitions = 2
    return lz


# the decision ------------------------------------------------------------------------

def test_plan_election_table() -> None:
    kw = {"identity": "me", "lease_duration_s": 15.0}
    assert plan_election(None, None, now=0, wall=100, **kw)[0] is Action.CREATE
    assert plan_election(lease("me", renewed=100), None, now=0, wall=100, **kw)[0] is Action.RENEW
    assert plan_election(lease("", renewed=100), None, now=0, wall=100, **kw)[0] is Action.TAKE
    action, observed, left = plan_election(lease("other", renewed=100), None, now=50, wall=101, **kw)
    assert action is Action.WAIT and observed == Observed(lease_record(lease("other", renewed=100)), 50)
    assert left == pytest.approx(14)
    # Seen unchanged for a lease duration on our own clock: expired, whatever the wall clock says.
    assert plan_election(lease("other", renewed=100), observed, now=65, wall=0, **kw)[0] is Action.TAKE
    # A renewal (new record) restarts our count.
    renewed = lease("other", renewed=110, rv="6")
    action, observed2, _ = plan_election(renewed, observed, now=65, wall=111, **kw)
    assert action is Action.WAIT and observed2 is not None and observed2.at == 65
    # The wall clock alone: renewTime + duration has passed.
    assert plan_election(lease("other", renewed=100), None, now=0, wall=115.5, **kw)[0] is Action.TAKE


def test_render_lease() -> None:
    cfg = LeaderElectionConfig(identity="me")
    created = render_lease(None, Action.CREATE, config=cfg, wall=WALL0)
    assert (created.metadata.namespace, created.metadata.name) == ("kube-system", "flotilla-controller-manager")
    assert (created.spec.holder_identity, created.spec.lease_duration_seconds, created.spec.lease_transitions) == (
        "me", 15, 0)
    taken = render_lease(lease("other"), Action.TAKE, config=cfg, wall=WALL0)
    assert taken.spec.holder_identity == "me" and taken.spec.lease_transitions == 3
    assert taken.metadata.resource_version == "5", "the write carries the version it read"
    renewed = render_lease(taken, Action.RENEW, config=cfg, wall=datetime(2026, 1, 2, tzinfo=UTC))
    assert renewed.spec.lease_transitions == 3 and renewed.spec.acquire_time == taken.spec.acquire_time
    with pytest.raises(ValueError, match="retry period"):
        LeaderElectionConfig(identity="x", renew_deadline_s=20)


# two electors --------------------------------------------------------------------------

class LeaseAPI:
    def __init__(self) -> None:
        self.lease: coordination_pb2.Lease | None = None
        self.rv = 0


class View:
    """One master's connection to the fake API; `down` cuts it off."""

    def __init__(self, api: LeaseAPI) -> None:
        self.api = api
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("cut off")

    def _stored(self, obj: coordination_pb2.Lease) -> coordination_pb2.Lease:
        self.api.rv += 1
        stored = coordination_pb2.Lease()
        stored.CopyFrom(obj)
        stored.metadata.resource_version = str(self.api.rv)
        self.api.lease = stored
        out = coordination_pb2.Lease()
        out.CopyFrom(stored)
        return out

    async def get(self, cls: type, name: str, *, namespace: str = "") -> coordination_pb2.Lease:
        self._check()
        if self.api.lease is None:
            raise NotFound("no lease")
        out = coordination_pb2.Lease()
        out.CopyFrom(self.api.lease)
        return out

    async def create(self, obj: coordination_pb2.Lease) -> coordination_pb2.Lease:
        self._check()
        if self.api.lease is not None:
            raise AlreadyExists("exists")
        return self._stored(obj)

    async def update(self, obj: coordination_pb2.Lease) -> coordination_pb2.Lease:
        self._check()
        if self.api.lease is None or obj.metadata.resource_version != self.api.lease.metadata.resource_version:
            raise Conflict("stale")
        return self._stored(obj)


async def settle() -> None:
    for _ in range(30):
        await asyncio.sleep(0)


async def run_for(clock: FakeClock, seconds: float, *, step: float = 0.25) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        await settle()


class Led:
    """A stand-in for the led components: records when it starts and stops."""

    def __init__(self, name: str, clock: FakeClock, log: list[tuple[str, float]]) -> None:
        self.name, self.clock, self.log = name, clock, log

    async def __call__(self) -> None:
        self.log.append((f"{self.name} start", self.clock.now()))
        try:
            await asyncio.Event().wait()
        finally:
            self.log.append((f"{self.name} stop", self.clock.now()))


async def test_partitioned_leader_stops_before_the_other_starts() -> None:
    clock = FakeClock(wall_start=WALL0)
    api = LeaseAPI()
    a_view, b_view = View(api), View(api)
    log: list[tuple[str, float]] = []
    a = LeaderElector(a_view, LeaderElectionConfig(identity="a"), clock=clock)
    b = LeaderElector(b_view, LeaderElectionConfig(identity="b"), clock=clock)
    ta = asyncio.create_task(a.run(Led("a", clock, log)))
    await settle()
    tb = asyncio.create_task(b.run(Led("b", clock, log)))
    try:
        await run_for(clock, 10)
        assert [e for e, _ in log] == ["a start"] and a.is_leader and not b.is_leader
        assert api.lease is not None and api.lease.spec.holder_identity == "a"

        a_view.down = True
        cut_at = clock.now()
        await run_for(clock, 30)
        events = [e for e, _ in log]
        assert events == ["a start", "a stop", "b start"], log
        a_stop, b_start = log[1][1], log[2][1]
        assert a_stop - cut_at <= 10.0 + 0.5, "the holder steps down at the renew deadline"
        assert b_start > a_stop and b_start - cut_at <= 15.0 + 0.5
        assert api.lease.spec.holder_identity == "b" and api.lease.spec.lease_transitions == 1

        # `a` comes back and campaigns again, but `b` holds the lease.
        a_view.down = False
        await run_for(clock, 10)
        assert [e for e, _ in log][-1] == "b start" and not a.is_leader
    finally:
        for t in (ta, tb):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_shutdown_releases_the_lease_for_a_fast_handover() -> None:
    clock = FakeClock(wall_start=WALL0)
    api = LeaseAPI()
    log: list[tuple[str, float]] = []
    a = LeaderElector(View(api), LeaderElectionConfig(identity="a"), clock=clock)
    b = LeaderElector(View(api), LeaderElectionConfig(identity="b"), clock=clock)
    ta = asyncio.create_task(a.run(Led("a", clock, log)))
    await settle()
    tb = asyncio.create_task(b.run(Led("b", clock, log)))
    try:
        await run_for(clock, 4)
        ta.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ta
        stopped = clock.now()
        assert api.lease is not None and api.lease.spec.holder_identity == ""
        await run_for(clock, 3)
        assert [e for e, _ in log] == ["a start", "a stop", "b start"]
        assert log[2][1] - stopped <= 2.5, "a released lease is taken at the next retry"
    finally:
        tb.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tb


async def test_release_after_a_renewal_that_landed_unseen() -> None:
    clock = FakeClock(wall_start=WALL0)
    api = LeaseAPI()
    a = LeaderElector(View(api), LeaderElectionConfig(identity="a"), clock=clock)
    ta = asyncio.create_task(a.run(Led("a", clock, [])))
    await run_for(clock, 1)
    assert api.lease is not None and api.lease.spec.holder_identity == "a"
    api.rv += 1  # a renewal the elector never saw answered (cancelled on the way out) moved the version
    api.lease.metadata.resource_version = str(api.rv)
    ta.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ta
    assert api.lease.spec.holder_identity == "", "released anyway, from the lease as it is now"


class SlowReply(View):
    """A view whose next renewal lands at once but is answered `slow_s` later,
    after which the connection is cut off."""

    def __init__(self, api: LeaseAPI, clock: FakeClock) -> None:
        super().__init__(api)
        self.clock = clock
        self.slow_s = 0.0

    async def update(self, obj: coordination_pb2.Lease) -> coordination_pb2.Lease:
        out = await super().update(obj)
        if self.slow_s:
            slow, self.slow_s = self.slow_s, 0.0
            await self.clock.sleep(slow)
            self.down = True
        return out


async def test_a_slow_renewal_does_not_stretch_the_renew_deadline() -> None:
    """The deadline counts from when the renewal began (its renewTime), not from
    its late answer: otherwise the holder would still lead after the candidate
    took the lease at renewTime + leaseDuration."""
    clock = FakeClock(wall_start=WALL0)
    api = LeaseAPI()
    log: list[tuple[str, float]] = []
    a_view = SlowReply(api, clock)
    a = LeaderElector(a_view, LeaderElectionConfig(identity="a"), clock=clock)
    b = LeaderElector(View(api), LeaderElectionConfig(identity="b"), clock=clock)
    ta = asyncio.create_task(a.run(Led("a", clock, log)))
    await settle()
    tb = asyncio.create_task(b.run(Led("b", clock, log)))
    try:
        await run_for(clock, 5)
        a_view.slow_s = 7.0  # within the time left to the renew deadline: the renewal succeeds
        await run_for(clock, 40)
        events = [e for e, _ in log]
        assert events == ["a start", "a stop", "b start"], log
        assert log[1][1] < log[2][1], "the old holder stopped before the new one started"
    finally:
        for t in (ta, tb):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t


async def test_a_led_component_that_returns_is_an_error() -> None:
    clock = FakeClock(wall_start=WALL0)
    elector = LeaderElector(View(LeaseAPI()), LeaderElectionConfig(identity="a"), clock=clock)

    async def returns() -> None:
        return None

    with pytest.raises(ExceptionGroup) as info:
        await elector.run(returns)
    assert info.group_contains(RuntimeError, match="returned")


# master flags ----------------------------------------------------------------------------

@pytest.mark.parametrize(("chosen", "disabled", "expected"), [
    ("*", "", ["replicaset", "replicationcontroller", "deployment"]),
    ("deployment,replicaset", "", ["deployment", "replicaset"]),
    ("*", "replicationcontroller", ["replicaset", "deployment"]),
    ("*", "*", []),
])
def test_enabled_controllers(chosen: str, disabled: str, expected: list[str]) -> None:
    got = enabled_controllers(chosen, disabled)
    # Other branches register more controllers; these must be there, in order.
    assert [n for n in got if n in expected] == expected
    if chosen != "*" or disabled == "*":
        assert got == expected
    assert disabled not in got


def test_enabled_controllers_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown controllers: nope"):
        enabled_controllers("nope", "")


def test_controller_options() -> None:
    assert parse_controller_options(["nodelifecycle.grace_period_s=40", "nodelifecycle.x=1.5",
                                     "job.flag=true", "a.b=text"]) == {
        "nodelifecycle": {"grace_period_s": 40, "x": 1.5}, "job": {"flag": True}, "a": {"b": "text"}}
    for bad in ("nodot=1", "a.b", ".b=1", "a.=1"):
        with pytest.raises(ValueError, match="NAME.KEY=VALUE"):
            parse_controller_options([bad])
