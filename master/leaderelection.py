"""Leader election between masters: only the holder of a Lease runs the led components.

Owns the election and nothing else: `LeaderElector.run(lead)` campaigns for
the Lease `kube-system/flotilla-controller-manager` (coordination.k8s.io/v1),
runs `lead()` (the scheduler and the controllers, composed by master/main.py)
while it holds it, and cancels `lead()` the moment it can no longer be sure
it does. Every master serves the API whether it leads or not.

Why a Lease object through the API rather than an etcd lease (DESIGN 4 says
"an etcd lease"; this is the same idea one layer up, as Kubernetes does it):
* components may run alone against a remote master (`--disable-apiserver`)
  and hold no etcd credentials; the API is the one thing every one reaches;
* the state is visible and debuggable: `kubectl get lease -n kube-system`;
* safety comes from etcd anyway: every write carries the resourceVersion it
  read (etcd's mod_revision), so two candidates can never both succeed in
  taking the lease (compare-and-swap), and a takeover bumps leaseTransitions.

Timing (client-go's defaults): leaseDurationSeconds 15, renew every 2 s,
renew deadline 10 s. The holder steps down (cancels the led components)
when no renewal has succeeded for the renew deadline (counted from when the
last successful attempt began, i.e. before the renewTime it wrote); each renewal call is
bounded by the time left until it. A candidate takes the lease over when
either clock says it expired:
* its own monotonic clock, leaseDuration after it last saw the record
  change (client-go's rule; needs no clock agreement at all), or
* the wall clock, leaseDuration after the renewTime the holder wrote. This
  one makes the handover happen within leaseDuration of the holder's death
  (client-go's rule alone takes up to leaseDuration + retry period), and it
  is safe as long as the masters' clocks agree to within leaseDuration -
  renewDeadline (5 s): the holder has stopped renewDeadline after its last
  successful renewal, before the candidate's wall clock reaches
  renewTime + leaseDuration.

Decisions are the pure `plan_election`; `LeaderElector` is the thin loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from master.client.clock import Clock, RealClock
from master.client.errors import AlreadyExists, APIError, Conflict, NotFound
from protos.coordination.v1 import coordination_pb2

log = logging.getLogger("flotilla.leaderelection")

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "flotilla-controller-manager"


def default_identity() -> str:
    """client-go's choice: the hostname plus a unique suffix per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    identity: str
    namespace: str = LEASE_NAMESPACE
    name: str = LEASE_NAME
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.retry_period_s < self.renew_deadline_s < self.lease_duration_s):
            raise ValueError("leader election needs retry period < renew deadline < lease duration")


class Action(enum.Enum):
    CREATE = "create"   # no lease yet
    RENEW = "renew"     # ours: write a new renewTime
    TAKE = "take"       # free or expired: take it over (leaseTransitions + 1)
    WAIT = "wait"       # someone else holds it


@dataclass(frozen=True)
class Observed:
    """The last lease record a candidate saw change, and when (its own clock)."""

    record: tuple[str, str, str]  # holder, renewTime, resourceVersion
    at: float


def lease_record(lease: coordination_pb2.Lease) -> tuple[str, str, str]:
    spec = lease.spec
    return (spec.holder_identity, spec.renew_time.ToJsonString() if spec.HasField("renew_time") else "",
            lease.metadata.resource_version)


def plan_election(
    lease: coordination_pb2.Lease | None,
    observed: Observed | None,
    *,
    identity: str,
    now: float,
    wall: float,
    lease_duration_s: float,
) -> tuple[Action, Observed | None, float]:
    """What to do with the lease as just read, the observation to keep, and
    (for WAIT) how long until the lease would expire."""
    if lease is None:
        return Action.CREATE, None, 0.0
    record = lease_record(lease)
    if observed is None or observed.record != record:
        observed = Observed(record, now)
    holder = lease.spec.holder_identity
    if holder == identity:
        return Action.RENEW, observed, 0.0
    if not holder:
        return Action.TAKE, observed, 0.0
    duration = lease.spec.lease_duration_seconds if lease.spec.HasField("lease_duration_seconds") else lease_duration_s
    left = duration - (now - observed.at)
    if lease.spec.HasField("renew_time"):
        renewed = lease.spec.renew_time.seconds + lease.spec.renew_time.nanos / 1e9
        left = min(left, renewed + duration - wall)
    if left <= 0:
        return Action.TAKE, observed, 0.0
    return Action.WAIT, observed, left


def render_lease(
    current: coordination_pb2.Lease | None,
    action: Action,
    *,
    config: LeaderElectionConfig,
    wall: datetime,
) -> coordination_pb2.Lease:
    """The lease to write for `action` (CREATE, RENEW or TAKE)."""
    lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    if current is not None:
        lease.CopyFrom(current)
    else:
        lease.metadata.name = config.name
        lease.metadata.namespace = config.namespace
    spec = lease.spec
    spec.holder_identity = config.identity
    spec.lease_duration_seconds = int(config.lease_duration_s)
    spec.renew_time.FromDatetime(wall)
    if action is not Action.RENEW:
        spec.acquire_time.FromDatetime(wall)
        spec.lease_transitions = (spec.lease_transitions + 1) if action is Action.TAKE else 0
    return lease


class LeadershipLost(Exception):
    """Raised inside the led TaskGroup so that everything it runs is cancelled."""


class LeaderElector:
    def __init__(self, client: object, config: LeaderElectionConfig, *, clock: Clock | None = None) -> None:
        self.client = client  # master.client.Client (get/create/update)
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.is_leader = False
        self._observed: Observed | None = None
        self._lease: coordination_pb2.Lease | None = None
        self._expires_in = 0.0
        # When the last attempt began (before the renewTime it writes was
        # stamped): the renew deadline counts from here, never from when a
        # slow write came back, so the holder always stops before
        # renewTime + leaseDuration, when a candidate may take over.
        self._attempt_started = 0.0

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign, lead while holding the lease, step down when unsure; until cancelled."""
        try:
            while True:
                await self._acquire()
                log.info("became leader", extra={"identity": self.config.identity, "lease": self.config.name})
                try:
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._hold(), name="leader-renew")
                        tg.create_task(_must_not_return(lead()), name="leader-led")
                except* LeadershipLost:
                    self.is_leader = False
                    self._lease = None
                    log.warning("lost leadership; led components stopped",
                                extra={"identity": self.config.identity})
        except asyncio.CancelledError:
            await self._release()
            raise

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when we hold the lease afterwards."""
        cfg = self.config
        self._attempt_started = self.clock.now()
        try:
            lease: coordination_pb2.Lease | None = await self.client.get(  # type: ignore[attr-defined]
                coordination_pb2.Lease, cfg.name, namespace=cfg.namespace)
        except NotFound:
            lease = None
        action, self._observed, self._expires_in = plan_election(
            lease, self._observed, identity=cfg.identity, now=self.clock.now(),
            wall=self.clock.wall().timestamp(), lease_duration_s=cfg.lease_duration_s)
        if action is Action.WAIT:
            return False
        new = render_lease(lease, action, config=cfg, wall=self.clock.wall())
        try:
            if action is Action.CREATE:
                self._lease = await self.client.create(new)  # type: ignore[attr-defined]
            else:
                self._lease = await self.client.update(new)  # type: ignore[attr-defined]
        except (Conflict, AlreadyExists, NotFound):
            return False  # someone else wrote first: read again next round
        return True

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try():
                    self.is_leader = True
                    return
            except APIError as exc:
                log.info("leader election attempt failed", extra={"error": str(exc)})
                self._expires_in = 0.0
            # Wake up when the holder's lease runs out, not up to a retry period later.
            wait = self.config.retry_period_s
            if 0 < self._expires_in < wait:
                wait = self._expires_in + 0.05
            await self.clock.sleep(wait)

    async def _hold(self) -> None:
        last_ok = self._attempt_started  # the attempt that won the lease
        while True:
            await self.clock.sleep(self.config.retry_period_s)
            left = self.config.renew_deadline_s - (self.clock.now() - last_ok)
            ok = False
            if left > 0:
                try:
                    async with asyncio.timeout(left):
                        ok = await self._try()
                except (TimeoutError, APIError) as exc:
                    log.info("lease renewal failed", extra={"error": str(exc) or type(exc).__name__})
            if ok:
                last_ok = self._attempt_started
                continue
            if self._observed is not None and self._observed.record[0] not in ("", self.config.identity):
                raise LeadershipLost(f"lease taken by {self._observed.record[0]}")
            if self.clock.now() - last_ok >= self.config.renew_deadline_s:
                raise LeadershipLost("no renewal within the renew deadline")

    async def _release(self) -> None:
        """On shutdown, give the lease up so another master takes over at once."""
        if self._lease is None:
            return
        current: coordination_pb2.Lease = self._lease
        with contextlib.suppress(APIError, TimeoutError):
            async with asyncio.timeout(2):
                for _ in range(3):
                    lease = coordination_pb2.Lease()
                    lease.CopyFrom(current)
                    lease.spec.holder_identity = ""
                    lease.spec.lease_duration_seconds = 1
                    lease.spec.renew_time.FromDatetime(self.clock.wall())
                    try:
                        await self.client.update(lease)  # type: ignore[attr-defined]
                        break
                    except Conflict:
                        # A renewal cancelled on its way out may have landed after all:
                        # release the lease as it is now, if it is still ours.
                        current = await self.client.get(  # type: ignore[attr-defined]
                            coordination_pb2.Lease, self.config.name, namespace=self.config.namespace)
                        if current.spec.holder_identity != self.config.identity:
                            break
        self.is_leader = False


async def _must_not_return(coro: Awaitable[None]) -> None:
    await coro
    raise RuntimeError("a led component returned; they run until cancelled")
