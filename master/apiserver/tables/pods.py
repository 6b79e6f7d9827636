"""Pod rows: printPod's READY / STATUS / RESTARTS cells, the wide columns, and the
row conditions of finished pods (`_POD_ROW_CONDITIONS`, added by __init__.py).

Pure, as the whole package; the container walk runs per pod on every LIST.
"""

from __future__ import annotations

from master.apiserver.tables.cells import (
    _AGE,
    _EMPTY,
    _NAME,
    _NONE,
    Cells,
    Obj,
    Printers,
    _col,
    _condition_true,
    _epoch,
    _since,
    human_duration,
)

_NO_NAMES: frozenset[str] = frozenset()


class _PodTally:
    """Running totals of printPod's container walk."""

    __slots__ = ("reason", "ready", "restarts", "last_restart", "sidecar_restarts",
                 "sidecar_last_restart")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.ready = 0
        self.restarts = 0
        self.last_restart = 0.0  # epoch of the latest lastState.terminated.finishedAt
        self.sidecar_restarts = 0
        self.sidecar_last_restart = 0.0


def _finished_at(container_status: Obj) -> float:
    terminated = (container_status.get("lastState") or _EMPTY).get("terminated")
    if terminated is None:
        return 0.0
    finished = terminated.get("finishedAt")
    return (_epoch(finished) or 0.0) if isinstance(finished, str) and finished else 0.0


def _terminated_text(terminated: Obj) -> str:
    if terminated.get("reason"):
        return terminated["reason"]
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode') or 0}"


def _tally_init(tally: _PodTally, status: Obj, sidecars: frozenset[str], init_count: int) -> bool:
    """Walk init containers; True while the pod is still initializing."""
    for i, cs in enumerate(status.get("initContainerStatuses") or ()):
        restarts, finished = cs.get("restartCount") or 0, _finished_at(cs)
        tally.restarts += restarts
        tally.last_restart = max(tally.last_restart, finished)
        sidecar = cs.get("name") in sidecars
        if sidecar:  # restartable init containers keep counting once the pod runs
            tally.sidecar_restarts += restarts
            tally.sidecar_last_restart = max(tally.sidecar_last_restart, finished)
        state = cs.get("state") or _EMPTY
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and not terminated.get("exitCode"):
            continue
        if sidecar and cs.get("started"):
            tally.ready += 1 if cs.get("ready") else 0
            continue
        if terminated is not None:
            tally.reason = "Init:" + _terminated_text(terminated)
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            tally.reason = "Init:" + waiting["reason"]
        else:
            tally.reason = f"Init:{i}/{init_count}"
        return True
    return False


def _tally_containers(tally: _PodTally, status: Obj) -> None:
    """Walk app containers last to first, so the first container's state wins."""
    tally.restarts, tally.last_restart = tally.sidecar_restarts, tally.sidecar_last_restart
    has_running = False
    for cs in reversed(status.get("containerStatuses") or ()):
        tally.restarts += cs.get("restartCount") or 0
        tally.last_restart = max(tally.last_restart, _finished_at(cs))
        state = cs.get("state") or _EMPTY
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            tally.reason = waiting["reason"]
        elif terminated is not None:
            tally.reason = _terminated_text(terminated)
        elif cs.get("ready") and state.get("running") is not None:
            has_running = True
            tally.ready += 1
    if tally.reason == "Completed" and has_running:
        ready = _condition_true(status.get("conditions"), "Ready")
        tally.reason = "Running" if ready else "NotReady"


def _pod_reason(status: Obj) -> str:
    reason = status.get("reason") or status.get("phase") or ""
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    return reason


def _pod_wide(spec: Obj, status: Obj) -> list[str]:
    pod_ips = status.get("podIPs")
    ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or _NONE
    gates = spec.get("readinessGates")
    gates_text = _NONE
    if gates:
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
        passed = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
        gates_text = f"{passed}/{len(gates)}"
    return [ip, spec.get("nodeName") or _NONE, status.get("nominatedNodeName") or _NONE,
            gates_text]


def _pod_cells(pod: Obj, now_s: float) -> Cells:
    spec = pod.get("spec") or _EMPTY
    status = pod.get("status") or _EMPTY
    meta = pod.get("metadata") or _EMPTY
    init_specs = spec.get("initContainers") or ()
    sidecars = _NO_NAMES if not init_specs else frozenset(
        c.get("name", "") for c in init_specs if c.get("restartPolicy") == "Always")
    tally = _PodTally(_pod_reason(status))
    initializing = _tally_init(tally, status, sidecars, len(init_specs))
    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        _tally_containers(tally, status)
    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            tally.reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            tally.reason = "Terminating"
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart:
        restarts += f" ({human_duration(now_s - tally.last_restart)} ago)"
    total = len(spec.get("containers") or ()) + len(sidecars)
    return [meta.get("name", ""), f"{tally.ready}/{total}", tally.reason, restarts,
            _since(meta.get("creationTimestamp"), now_s), *_pod_wide(spec, status)]


_POD_ROW_CONDITIONS = {
    "Succeeded": [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}],
    "Failed": [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}],
}


PRINTERS: Printers = {
    ("", "pods"): ([
        _NAME, _col("Ready", "Ready containers out of all containers."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "Container restarts, and how long ago the last one was."), _AGE,
        _col("IP", "The pod's IP address.", priority=1),
        _col("Node", "The node the pod is bound to.", priority=1),
        _col("Nominated Node", "The node nominated by preemption.", priority=1),
        _col("Readiness Gates", "Readiness gates that are True out of all.", priority=1),
    ], _pod_cells),
}
