"""compute_pod_actions: what to do next for one pod, as a pure function (kubelet's
computePodActions).

Owns: the decision, from (pod spec, what the runtime shows, now, backoff and
start-failure memory, probe verdicts), of one step: create a sandbox, kill
containers, start the next init container or the app containers that need it,
wait out a backoff, or declare the pod finished. The executor
(node_agent.pods.worker) applies a plan and calls this again until it returns
nothing to do.
Must not: do I/O or read a clock. Status is node_agent.pods.status's job.

Invariants a reader might "simplify" away:
* A sandbox is never restarted: a dead sandbox means a new one (a restarted
  sandbox would have a new, empty netns) and every container of the old one is killed.
* restartPolicy Never with containers already created never gets a new sandbox.
* Init containers run one at a time, in order, each to exit 0, before any app container.
* Only the newest instance of each container name counts; older dead ones are removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node_agent.pods.backoff import BackoffEntry, BackoffPolicy, backoff_remaining
from node_agent.runtime.interface import (
    LABEL_CONTAINER_HASH,
    LABEL_SANDBOX_ID,
    ContainerState,
    ContainerStatus,
    PodSandboxStatus,
    SandboxState,
)

DEFAULT_GRACE_S = 30


@dataclass(frozen=True)
class ObservedPod:
    """What the runtime shows for one pod uid."""

    sandboxes: tuple[PodSandboxStatus, ...] = ()
    containers: tuple[ContainerStatus, ...] = ()
    # Container ids whose liveness or startup probe failed past its threshold.
    unhealthy: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StartFailure:
    """The last failed attempt to start a container (pull or config), with its backoff."""

    reason: str  # ErrImagePull, ErrImageNeverPull, CreateContainerConfigError, RunContainerError
    message: str
    entry: BackoffEntry


@dataclass(frozen=True)
class StartContainer:
    name: str
    init: bool
    restart_count: int
    # Seconds the previous instance ran before failing, for the backoff reset (None: no backoff).
    backoff_ran_s: float | None = None


@dataclass(frozen=True)
class KillContainer:
    id: str
    name: str
    reason: str
    grace_s: float


@dataclass(frozen=True)
class Wait:
    name: str
    reason: str
    message: str
    remaining_s: float


@dataclass(frozen=True)
class PodActions:
    create_sandbox: bool = False
    sandbox_id: str = ""
    kill_sandboxes: tuple[str, ...] = ()
    kill: tuple[KillContainer, ...] = ()
    start: tuple[StartContainer, ...] = ()
    remove: tuple[str, ...] = ()
    waits: tuple[Wait, ...] = ()
    # Every container is done and none will run again: stop the sandbox, free the IP.
    finished: bool = False
    wake_after_s: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def changes_something(self) -> bool:
        return bool(self.create_sandbox or self.kill_sandboxes or self.kill or self.start or self.remove)


def container_hash(container: Any) -> str:
    """A short, stable hash of a Container spec (what a running container was made from)."""
    return hashlib.sha256(container.SerializeToString(deterministic=True)).hexdigest()[:16]


def grace_seconds(pod: Any) -> float:
    meta, spec = pod.metadata, pod.spec
    if meta.HasField("deletion_grace_period_seconds"):
        return float(max(0, meta.deletion_grace_period_seconds))
    if spec.HasField("termination_grace_period_seconds"):
        return float(max(0, spec.termination_grace_period_seconds))
    return float(DEFAULT_GRACE_S)


def pod_ref(pod: Any) -> str:
    """kubelet's format_pod: name_namespace(uid)."""
    m = pod.metadata
    return f"{m.name}_{m.namespace}({m.uid})"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s}s"
    h, m = divmod(m, 60)
    return f"{h}h{m}m{s}s"


def instances_by_name(containers: tuple[ContainerStatus, ...]) -> dict[str, list[ContainerStatus]]:
    """Container instances grouped by name, newest first."""
    out: dict[str, list[ContainerStatus]] = {}
    for c in containers:
        out.setdefault(c.name, []).append(c)
    for items in out.values():
        items.sort(key=lambda c: (c.restart_count, c.created_at.timestamp() if c.created_at else 0.0),
                   reverse=True)
    return out


def should_restart(policy: str, exit_code: int) -> bool:
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


def _ran_s(c: ContainerStatus) -> float:
    if c.started_at and c.finished_at:
        return max(0.0, (c.finished_at - c.started_at).total_seconds())
    return 0.0


def _ts(c: ContainerStatus) -> float:
    return c.finished_at.timestamp() if c.finished_at else 0.0


def compute_pod_actions(
    pod: Any,
    observed: ObservedPod,
    now: float,
    *,
    backoff: Mapping[str, BackoffEntry] | None = None,
    start_failures: Mapping[str, StartFailure] | None = None,
    policy: BackoffPolicy | None = None,
) -> PodActions:
    """The next step for `pod` (not being deleted; the worker terminates those)."""
    backoff = backoff or {}
    start_failures = start_failures or {}
    policy = policy or BackoffPolicy()
    restart_policy = pod.spec.restart_policy or "Always"
    by_name = instances_by_name(observed.containers)
    # Dead instances beyond the newest of each name are garbage.
    # The newest instance and the one before it (lastState) stay; older dead ones are garbage.
    remove = tuple(c.id for items in by_name.values() for c in items[2:] if c.state != ContainerState.RUNNING)
    ready = sorted((s for s in observed.sandboxes if s.state == SandboxState.READY),
                   key=lambda s: s.created_at.timestamp() if s.created_at else 0.0, reverse=True)
    current = ready[0].id if ready else ""
    extra_sandboxes = tuple(s.id for s in ready[1:])
    grace = float(pod.spec.termination_grace_period_seconds) if pod.spec.HasField(
        "termination_grace_period_seconds") else float(DEFAULT_GRACE_S)
    # Containers running outside the current sandbox live in a dead netns: kill them.
    stray = tuple(
        KillContainer(c.id, c.name, "SandboxChanged", grace)
        for c in observed.containers
        if c.state == ContainerState.RUNNING and c.labels.get(LABEL_SANDBOX_ID, current) != current
    )
    if not current:
        if observed.containers and not _needs_new_sandbox(pod, by_name, restart_policy):
            return PodActions(kill=stray, remove=remove, finished=True)
        return PodActions(create_sandbox=True, kill=stray, remove=remove)
    if stray or extra_sandboxes:
        return PodActions(sandbox_id=current, kill=stray, kill_sandboxes=extra_sandboxes, remove=remove)

    def in_current(c: ContainerStatus) -> bool:
        return c.labels.get(LABEL_SANDBOX_ID, current) == current

    def next_count(items: list[ContainerStatus]) -> int:
        return items[0].restart_count + 1 if items else 0

    def failure_wait(name: str, image: str) -> Wait | None:
        f = start_failures.get(name)
        if f is None:
            return None
        remaining = backoff_remaining(f.entry, event_time=f.entry.last_update, now=now, policy=policy)
        if remaining <= 0:
            return None
        if f.reason == "ErrImagePull":
            return Wait(name, "ImagePullBackOff", f'Back-off pulling image "{image}"', remaining)
        return Wait(name, f.reason, f.message, remaining)

    # Init containers, in order; at most one acts per step.
    for spec in pod.spec.init_containers:
        items = by_name.get(spec.name, [])
        here = [c for c in items if in_current(c)]
        if any(c.state == ContainerState.RUNNING for c in here):
            return PodActions(sandbox_id=current, remove=remove)  # it is still running: wait
        if any(c.state == ContainerState.EXITED and c.exit_code == 0 for c in here):
            continue  # succeeded in this sandbox: never again
        if restart_policy == "Never" and any(c.state == ContainerState.EXITED for c in here):
            return PodActions(sandbox_id=current, remove=remove, finished=True, kill_sandboxes=(current,))
        latest = here[0] if here else None
        if latest is None:
            w = failure_wait(spec.name, spec.image)
            if w:
                return PodActions(sandbox_id=current, waits=(w,), remove=remove, wake_after_s=w.remaining_s)
            return PodActions(sandbox_id=current, remove=remove,
                              start=(StartContainer(spec.name, True, next_count(items)),))
        if latest.state == ContainerState.RUNNING:
            return PodActions(sandbox_id=current, remove=remove)
        if latest.state == ContainerState.EXITED and latest.exit_code == 0:
            continue
        if latest.state != ContainerState.EXITED:
            # Created but never started (an interrupted start): replace it.
            return PodActions(sandbox_id=current, remove=remove + (latest.id,),
                              start=(StartContainer(spec.name, True, items[0].restart_count),))
        if restart_policy == "Never":
            return PodActions(sandbox_id=current, remove=remove, finished=True, kill_sandboxes=(current,))
        return _restart_or_wait(pod, spec.name, latest, True, now, backoff, policy, current, remove,
                                count=next_count(items))

    kills: list[KillContainer] = []
    starts: list[StartContainer] = []
    waits: list[Wait] = []
    extra_remove: list[str] = []
    alive = 0
    for spec in pod.spec.containers:
        items = by_name.get(spec.name, [])
        latest = items[0] if items else None
        want_hash = container_hash(spec)
        if restart_policy == "Never" and latest is not None and latest.state != ContainerState.RUNNING and any(
                c.state == ContainerState.EXITED for c in items):
            # Never: a container that ran once never runs again; leftovers of an
            # interrupted start go.
            extra_remove.extend(c.id for c in items if c.state == ContainerState.CREATED)
            continue
        if latest is None or (not in_current(latest) and latest.state != ContainerState.RUNNING):
            w = failure_wait(spec.name, spec.image)
            if w:
                waits.append(w)
                alive += 1
                continue
            if latest is not None and restart_policy == "Never" and latest.state == ContainerState.EXITED:
                continue
            starts.append(StartContainer(spec.name, False, next_count(items)))
            alive += 1
            continue
        if latest.state == ContainerState.RUNNING:
            alive += 1
            if latest.id in observed.unhealthy:
                kills.append(KillContainer(latest.id, spec.name, "Unhealthy", grace))
            elif latest.labels.get(LABEL_CONTAINER_HASH, want_hash) != want_hash:
                kills.append(KillContainer(latest.id, spec.name, "SpecChanged", grace))
            continue
        if latest.state != ContainerState.EXITED:
            # Created but never started (an interrupted start): replace it.
            extra_remove.append(latest.id)
            starts.append(StartContainer(spec.name, False, latest.restart_count))
            alive += 1
            continue
        if latest.labels.get(LABEL_CONTAINER_HASH, want_hash) != want_hash:
            starts.append(StartContainer(spec.name, False, latest.restart_count + 1))
            alive += 1
            continue
        if not should_restart(restart_policy, latest.exit_code):
            continue
        alive += 1
        step = _restart_or_wait(pod, spec.name, latest, False, now, backoff, policy, current, (),
                                count=next_count(items))
        starts.extend(step.start)
        waits.extend(step.waits)
    if alive == 0 and pod.spec.containers:
        return PodActions(sandbox_id=current, remove=remove, finished=True, kill_sandboxes=(current,))
    wake = min((w.remaining_s for w in waits), default=None)
    return PodActions(sandbox_id=current, kill=tuple(kills), start=tuple(starts), waits=tuple(waits),
                      remove=remove + tuple(extra_remove), wake_after_s=wake)


def _restart_or_wait(pod: Any, name: str, latest: ContainerStatus, init: bool, now: float,
                     backoff: Mapping[str, BackoffEntry], policy: BackoffPolicy, current: str,
                     remove: tuple[str, ...], *, count: int) -> PodActions:
    key = f"{pod.metadata.uid}/{name}"
    entry = backoff.get(key)
    remaining = backoff_remaining(entry, event_time=_ts(latest), now=now, policy=policy)
    if remaining > 0 and entry is not None:
        msg = f"back-off {go_duration(entry.delay_s)} restarting failed container={name} pod={pod_ref(pod)}"
        return PodActions(sandbox_id=current, remove=remove, wake_after_s=remaining,
                          waits=(Wait(name, "CrashLoopBackOff", msg, remaining),))
    return PodActions(sandbox_id=current, remove=remove,
                      start=(StartContainer(name, init, count, backoff_ran_s=_ran_s(latest)),))


def _needs_new_sandbox(pod: Any, by_name: dict[str, list[ContainerStatus]], restart_policy: str) -> bool:
    """kubelet: with Never, a pod that already ran containers gets no new sandbox; with
    OnFailure, only when some container failed (or never ran)."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        for spec in pod.spec.containers:
            items = by_name.get(spec.name)
            if not items or items[0].state != ContainerState.EXITED or items[0].exit_code != 0:
                return True
        return False
    return True
