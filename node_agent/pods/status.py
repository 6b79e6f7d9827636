"""compute_pod_status: the PodStatus Kubernetes would report, as a pure function.

Owns: phase (kubelet's getPhase), container and init-container statuses
(waiting / running / terminated with reasons, lastState, restartCount, ready,
started), the conditions PodScheduled, PodReadyToStartContainers, Initialized,
ContainersReady and Ready with stable lastTransitionTime, podIP(s), hostIP(s),
startTime and qosClass.
Must not: do I/O or read a clock (`now` is passed in).

Invariants: a pod that reached Succeeded or Failed never leaves it; a
condition's lastTransitionTime moves only when its status changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node_agent.pods.actions import ObservedPod, instances_by_name
from node_agent.runtime.interface import (
    LABEL_SANDBOX_ID,
    ContainerState,
    ContainerStatus,
    SandboxState,
)
from protos.core.v1 import core_pb2

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class StatusInputs:
    """Worker memory that the runtime does not show."""

    # Per container name: (reason, message) of a waiting state (backoff, pull or config errors).
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Per container id: readiness and startup probe results (absent = no such probe).
    ready: Mapping[str, bool] = field(default_factory=dict)
    started: Mapping[str, bool] = field(default_factory=dict)
    pod_ip: str = ""
    host_ip: str = ""
    sandbox_id: str = ""
    # Per container id: the termination message of an exited instance (terminationMessagePath).
    messages: Mapping[str, str] = field(default_factory=dict)


def _set_ts(ts: Any, when: datetime | None) -> None:
    if when is not None:
        ts.FromDatetime(when.replace(tzinfo=None) if when.tzinfo is None else when)


def _terminated(c: ContainerStatus, messages: Mapping[str, str]) -> core_pb2.ContainerStateTerminated:
    t = core_pb2.ContainerStateTerminated(exit_code=c.exit_code, reason=c.reason or (
        "Completed" if c.exit_code == 0 else "Error"), message=messages.get(c.id, c.message),
        container_id=f"docker://{c.id}")
    _set_ts(t.started_at, c.started_at)
    _set_ts(t.finished_at, c.finished_at)
    return t


def container_status(spec: Any, items: list[ContainerStatus], inputs: StatusInputs, *,
                     default_waiting: str, sandbox_id: str) -> core_pb2.ContainerStatus:
    out = core_pb2.ContainerStatus(name=spec.name, image=spec.image, image_id="", ready=False, restart_count=0,
                                   started=False)
    latest = items[0] if items else None
    waiting = inputs.waiting.get(spec.name)
    if latest is None:
        reason, message = waiting or (default_waiting, "")
        out.state.waiting.reason = reason
        out.state.waiting.message = message
        return out
    out.restart_count = latest.restart_count
    out.image_id = latest.image_id
    out.container_id = f"docker://{latest.id}"
    stale = latest.labels.get(LABEL_SANDBOX_ID, sandbox_id) != sandbox_id
    if latest.state == ContainerState.RUNNING and not stale:
        _set_ts(out.state.running.started_at, latest.started_at)
        out.started = inputs.started.get(latest.id, True)
        out.ready = out.started and inputs.ready.get(latest.id, True)
        if len(items) > 1 and items[1].state == ContainerState.EXITED:
            out.last_state.terminated.CopyFrom(_terminated(items[1], inputs.messages))
    elif latest.state == ContainerState.EXITED or stale:
        if waiting:
            out.state.waiting.reason, out.state.waiting.message = waiting
            out.last_state.terminated.CopyFrom(_terminated(latest, inputs.messages))
        else:
            out.state.terminated.CopyFrom(_terminated(latest, inputs.messages))
            if len(items) > 1 and items[1].state == ContainerState.EXITED:
                out.last_state.terminated.CopyFrom(_terminated(items[1], inputs.messages))
    else:
        out.state.waiting.reason = waiting[0] if waiting else "ContainerCreating"
        if waiting:
            out.state.waiting.message = waiting[1]
    return out


def compute_phase(pod: Any, inits: list[core_pb2.ContainerStatus], apps: list[core_pb2.ContainerStatus]) -> str:
    if pod.status.phase in TERMINAL:
        return str(pod.status.phase)
    policy = pod.spec.restart_policy or "Always"
    for s in inits:
        t = s.state.terminated
        if s.state.HasField("terminated") and t.exit_code == 0:
            continue
        if policy == "Never" and s.state.HasField("terminated"):
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for s in apps:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            succeeded += s.state.terminated.exit_code == 0
        elif s.last_state.HasField("terminated"):
            stopped += 1  # waiting to restart after having run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def _condition(prev: Mapping[str, core_pb2.PodCondition], type_: str, ok: bool, now: datetime, *,
               reason: str = "", message: str = "") -> core_pb2.PodCondition:
    status = "True" if ok else "False"
    c = core_pb2.PodCondition(type=type_, status=status, reason="" if ok else reason, message="" if ok else message)
    old = prev.get(type_)
    if old is not None and old.status == status and old.HasField("last_transition_time"):
        c.last_transition_time.CopyFrom(old.last_transition_time)
    else:
        _set_ts(c.last_transition_time, now)
    return c


def qos_class(pod: Any) -> str:
    requests_any = limits_all = False
    guaranteed = True
    for c in list(pod.spec.containers) + list(pod.spec.init_containers):
        lim, req = c.resources.limits, c.resources.requests
        if lim or req:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
        limits_all = True
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed and limits_all else "Burstable"


def compute_pod_status(pod: Any, observed: ObservedPod, inputs: StatusInputs, *, now: datetime) -> core_pb2.PodStatus:
    by_name = instances_by_name(observed.containers)
    sandbox_id = inputs.sandbox_id
    inits = [container_status(c, by_name.get(c.name, []), inputs, default_waiting="PodInitializing",
                              sandbox_id=sandbox_id) for c in pod.spec.init_containers]
    initialized = all(s.state.HasField("terminated") and s.state.terminated.exit_code == 0 for s in inits)
    if pod.status.phase in TERMINAL and not inits:
        initialized = True
    apps = [container_status(c, by_name.get(c.name, []), inputs,
                             default_waiting="ContainerCreating" if initialized else "PodInitializing",
                             sandbox_id=sandbox_id) for c in pod.spec.containers]
    phase = compute_phase(pod, inits, apps)
    st = core_pb2.PodStatus(phase=phase, qos_class=qos_class(pod))
    st.init_container_statuses.extend(inits)
    st.container_statuses.extend(apps)
    if pod.status.HasField("start_time"):
        st.start_time.CopyFrom(pod.status.start_time)
    else:
        _set_ts(st.start_time, now)
    if inputs.host_ip:
        st.host_ip = inputs.host_ip
        st.host_ips.add(ip=inputs.host_ip)
    pod_ip = inputs.pod_ip or pod.status.pod_ip
    if pod_ip:
        st.pod_ip = pod_ip
        st.pod_ips.add(ip=pod_ip)
    prev = {c.type: c for c in pod.status.conditions}
    sandbox_ok = any(s.state == SandboxState.READY and s.id == sandbox_id for s in observed.sandboxes) and bool(
        inputs.pod_ip)
    unready = [s.name for s in apps if not s.ready]
    incomplete = [s.name for s in inits if not (s.state.HasField("terminated") and s.state.terminated.exit_code == 0)]
    done = phase in TERMINAL
    ready_reason = "PodCompleted" if done else "ContainersNotReady"
    ready_msg = "" if done else f"containers with unready status: [{' '.join(unready)}]"
    ok = not unready and not done
    conds = [
        _condition(prev, "PodReadyToStartContainers", sandbox_ok, now),
        _condition(prev, "Initialized", initialized or (done and not incomplete), now,
                   reason="ContainersNotInitialized",
                   message=f"containers with incomplete status: [{' '.join(incomplete)}]"),
        _condition(prev, "Ready", ok, now, reason=ready_reason, message=ready_msg),
        _condition(prev, "ContainersReady", ok, now, reason=ready_reason, message=ready_msg),
    ]
    if "PodScheduled" in prev:
        conds.append(prev["PodScheduled"])
    else:
        conds.append(_condition(prev, "PodScheduled", True, now))
    st.conditions.extend(conds)
    return st
