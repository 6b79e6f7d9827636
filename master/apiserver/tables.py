"""Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`.

Owns the column set and the cell rules of every kind in the registry, written to
give what the real apiserver's printers give (kubectl 1.31 output), and
Kubernetes' `HumanDuration` for the AGE-style cells. Works on JSON-shaped dicts,
objects exactly as the REST API returns them.

It does no I/O, no content negotiation and no JSON encoding (the REST layer
picks `as=Table`, wraps watch events and serializes). It never mutates its
inputs, and rows *share* sub-dicts with them (`metadata`, or the whole object
for includeObject=Object): objects from the watch cache are never mutated, so
copying 10,000 metadata dicts per LIST would be pure waste.

Like the real apiserver, every cell is always computed, the wide (priority 1)
ones too; kubectl hides priority-1 columns unless `-o wide`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from master.apiserver import resources

Obj = Mapping[str, Any]
Cells = list[Any]
CellsFn = Callable[[Obj, float], Cells]

INCLUDE_OBJECT_CHOICES = ("None", "Metadata", "Object")
_EMPTY: Mapping[str, Any] = {}
_NO_NAMES: frozenset[str] = frozenset()
_NONE = "<none>"


# --- durations and timestamps ---------------------------------------------------

def human_duration(seconds: float) -> str:
    """Kubernetes' `duration.HumanDuration`: "45s", "2m30s", "3h5m", "2d1h", "2y1d".

    Up to one second in the future counts as "now" (clock skew between hosts).
    """
    if not math.isfinite(seconds):
        return "<invalid>"
    s = int(seconds)  # truncates toward zero, as Go's int(d.Seconds())
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return _two_units(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _two_units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two_units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


@lru_cache(maxsize=65536)
def _epoch(timestamp: str) -> float | None:
    """RFC 3339 -> seconds since the epoch; None when unparseable.

    Cached: a LIST's objects mostly share a handful of creation seconds.
    """
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _since(timestamp: Any, now_s: float) -> str:
    """Go's translateTimestampSince: "<unknown>" for a zero (missing) time."""
    epoch = _epoch(timestamp) if isinstance(timestamp, str) and timestamp else None
    if epoch is None:
        return "<unknown>"
    return human_duration(now_s - epoch)


def _now_seconds(now: datetime) -> float:
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


# --- shared cell helpers --------------------------------------------------------

def _format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: sorted "k=v" pairs, "<none>" when empty."""
    if not labels:
        return _NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _requirement(expr: Obj) -> tuple[str, str]:
    key, op = expr.get("key", ""), expr.get("operator")
    values = ",".join(sorted(expr.get("values") or ()))
    if op == "In":
        return key, f"{key} in ({values})"
    if op == "NotIn":
        return key, f"{key} notin ({values})"
    if op == "Exists":
        return key, key
    if op == "DoesNotExist":
        return key, "!" + key
    raise ValueError(f"invalid label selector operator {op!r}")


def _selector_string(selector: Obj | None) -> str:
    """A LabelSelector as labels.Selector.String(): requirements sorted by key."""
    if not selector:
        return ""
    reqs = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or _EMPTY).items()]
    reqs.extend(_requirement(e) for e in selector.get("matchExpressions") or ())
    reqs.sort(key=lambda r: r[0])  # stable, so same-key requirements keep their order
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: "<none>" when empty, "<error>" when invalid."""
    try:
        return _selector_string(selector) or _NONE
    except ValueError:
        return "<error>"


def _template_spec(obj: Obj) -> Obj:
    return ((obj.get("spec") or _EMPTY).get("template") or _EMPTY).get("spec") or _EMPTY


def _containers_and_images(pod_spec: Obj) -> list[str]:
    containers = pod_spec.get("containers") or ()
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or _EMPTY).get("name", "")


def _age(obj: Obj, now_s: float) -> str:
    return _since((obj.get("metadata") or _EMPTY).get("creationTimestamp"), now_s)


def _condition_true(conditions: Iterable[Obj] | None, kind: str) -> bool:
    for c in conditions or ():  # a plain loop: this runs per pod on every LIST
        if c.get("type") == kind and c.get("status") == "True":
            return True
    return False


# --- pods -----------------------------------------------------------------------

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


# --- workloads ------------------------------------------------------------------

def _deployment_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    try:  # Deployment prints the bare selector string, "" when empty
        selector = _selector_string(spec.get("selector"))
    except ValueError:
        selector = "<invalid>"
    return [_name(obj), f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
            status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0,
            _age(obj, now_s), *_containers_and_images(_template_spec(obj)), selector]


def _replicaset_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), spec.get("replicas", 1), status.get("replicas") or 0,
            status.get("readyReplicas") or 0, _age(obj, now_s),
            *_containers_and_images(_template_spec(obj)),
            _format_label_selector(spec.get("selector"))]


def _replicationcontroller_cells(obj: Obj, now_s: float) -> Cells:
    cells = _replicaset_cells(obj, now_s)
    cells[-1] = _format_labels((obj.get("spec") or _EMPTY).get("selector"))  # a plain map here
    return cells


def _daemonset_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    pod_spec = _template_spec(obj)
    return [_name(obj), status.get("desiredNumberScheduled") or 0,
            status.get("currentNumberScheduled") or 0, status.get("numberReady") or 0,
            status.get("updatedNumberScheduled") or 0, status.get("numberAvailable") or 0,
            _format_labels(pod_spec.get("nodeSelector")), _age(obj, now_s),
            *_containers_and_images(pod_spec),
            _format_label_selector((obj.get("spec") or _EMPTY).get("selector"))]


def _statefulset_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), f"{status.get('readyReplicas') or 0}/{spec.get('replicas', 1)}",
            _age(obj, now_s), *_containers_and_images(_template_spec(obj))]


_JOB_STATUS_ORDER = ("Complete", "Failed", "Terminating", "Suspended", "FailureTarget",
                     "SuccessCriteriaMet")


def _job_status(obj: Obj) -> str:
    conditions = (obj.get("status") or _EMPTY).get("conditions")
    for status in _JOB_STATUS_ORDER:
        if status == "Terminating":
            if (obj.get("metadata") or _EMPTY).get("deletionTimestamp"):
                return status
        elif _condition_true(conditions, status):
            return status
    return "Running"


def _job_completions(spec: Obj, succeeded: int) -> str:
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(status: Obj, now_s: float) -> str:
    start = _epoch(status["startTime"]) if status.get("startTime") else None
    if start is None:
        return ""
    end = _epoch(status["completionTime"]) if status.get("completionTime") else None
    return human_duration((now_s if end is None else end) - start)


def _job_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    return [_name(obj), _job_status(obj), _job_completions(spec, status.get("succeeded") or 0),
            _job_duration(status, now_s), _age(obj, now_s),
            *_containers_and_images(_template_spec(obj)),
            _format_label_selector(spec.get("selector"))]


def _cronjob_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    job_spec = (spec.get("jobTemplate") or _EMPTY).get("spec") or _EMPTY
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    return [_name(obj), spec.get("schedule", ""), spec.get("timeZone") or _NONE,
            "<unset>" if suspend is None else str(bool(suspend)),
            len(status.get("active") or ()), _since(last, now_s) if last else _NONE,
            _age(obj, now_s),
            *_containers_and_images((job_spec.get("template") or _EMPTY).get("spec") or _EMPTY),
            _format_label_selector(job_spec.get("selector"))]


# --- core kinds -----------------------------------------------------------------

def _load_balancer_addresses(status: Obj) -> list[str]:
    ingress = ((status.get("loadBalancer") or _EMPTY).get("ingress")) or ()
    return sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})


def _service_external_ip(spec: Obj, status: Obj) -> str:
    kind, external = spec.get("type"), spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or _NONE
    if kind == "LoadBalancer":
        return ",".join(_load_balancer_addresses(status) + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def _service_ports(ports: Iterable[Obj]) -> str:
    pieces = []
    for p in ports:
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        pieces.append(f"{p.get('port', 0)}{node_port}/{p.get('protocol', 'TCP')}")
    return ",".join(pieces) or _NONE


def _service_cells(obj: Obj, now_s: float) -> Cells:
    spec, status = obj.get("spec") or _EMPTY, obj.get("status") or _EMPTY
    cluster_ips = spec.get("clusterIPs")
    cluster_ip = (cluster_ips[0] if cluster_ips else spec.get("clusterIP")) or _NONE
    return [_name(obj), spec.get("type", ""), cluster_ip, _service_external_ip(spec, status),
            _service_ports(spec.get("ports") or ()), _age(obj, now_s),
            _format_labels(spec.get("selector"))]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoint_addresses(subsets: Iterable[Obj]) -> Iterable[str]:
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or ()]
        ports = subset.get("ports")
        if not ports:  # headless services may have no ports
            yield from addresses
        for port in ports or ():
            yield from (_host_port(ip, port.get("port", 0)) for ip in addresses)


def _endpoints_cells(obj: Obj, now_s: float) -> Cells:
    subsets = obj.get("subsets")
    if not subsets:
        return [_name(obj), _NONE, _age(obj, now_s)]
    shown: list[str] = []
    count = 0
    for address in _endpoint_addresses(subsets):
        count += 1
        if count <= 3:
            shown.append(address)
    text = ",".join(shown) + (f" + {count - 3} more..." if count > 3 else "")
    return [_name(obj), text, _age(obj, now_s)]


def _node_status(obj: Obj) -> str:
    ready = None
    for c in (obj.get("status") or _EMPTY).get("conditions") or ():
        if c.get("type") == "Ready":
            ready = c.get("status")  # the last Ready condition wins, as in a Go map
    parts = ["Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"]
    if (obj.get("spec") or _EMPTY).get("unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(labels: Mapping[str, str]) -> str:
    roles = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/") and len(key) > 24:
            roles.add(key[24:])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or _NONE


def _node_address(status: Obj, kind: str) -> str:
    for a in status.get("addresses") or ():
        if a.get("type") == kind:
            return a.get("address", "")
    return _NONE


def _node_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    info = status.get("nodeInfo") or _EMPTY
    labels = (obj.get("metadata") or _EMPTY).get("labels") or _EMPTY
    return [_name(obj), _node_status(obj), _node_roles(labels), _age(obj, now_s),
            info.get("kubeletVersion", ""), _node_address(status, "InternalIP"),
            _node_address(status, "ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _namespace_cells(obj: Obj, now_s: float) -> Cells:
    return [_name(obj), (obj.get("status") or _EMPTY).get("phase", ""), _age(obj, now_s)]


def _configmap_cells(obj: Obj, now_s: float) -> Cells:
    count = len(obj.get("data") or ()) + len(obj.get("binaryData") or ())
    return [_name(obj), count, _age(obj, now_s)]


def _secret_cells(obj: Obj, now_s: float) -> Cells:
    return [_name(obj), obj.get("type", ""), len(obj.get("data") or ()), _age(obj, now_s)]


def _event_source(obj: Obj) -> str:
    source = obj.get("source") or _EMPTY
    component = source.get("component") or obj.get("reportingComponent") or ""
    host = source.get("host") or obj.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component


def _event_cells(obj: Obj, now_s: float) -> Cells:
    first_ts = obj.get("firstTimestamp") or obj.get("eventTime")
    first = _since(first_ts, now_s)
    last = _since(obj["lastTimestamp"], now_s) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 1  # singleton events of the new API carry no count
    series = obj.get("series")
    if series is not None:
        last = _since(series.get("lastObservedTime"), now_s)
        count = series.get("count") or 0
    involved = obj.get("involvedObject") or _EMPTY
    kind, name = (involved.get("kind") or "").lower(), involved.get("name")
    return [last, obj.get("type", ""), obj.get("reason", ""), f"{kind}/{name}" if name else kind,
            involved.get("fieldPath", ""), _event_source(obj),
            (obj.get("message") or "").strip(), first, count, _name(obj)]


def _resourcequota_cells(obj: Obj, now_s: float) -> Cells:
    status = obj.get("status") or _EMPTY
    hard, used = status.get("hard") or _EMPTY, status.get("used") or _EMPTY
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        target = limits if resource.partition(".")[0] == "limits" and "." in resource else requests
        target.append(f"{resource}: {used.get(resource, '0')}/{hard[resource]}")
    return [_name(obj), _age(obj, now_s), ", ".join(requests), ", ".join(limits)]


def _lease_cells(obj: Obj, now_s: float) -> Cells:
    holder = (obj.get("spec") or _EMPTY).get("holderIdentity") or ""
    return [_name(obj), holder, _age(obj, now_s)]


def _default_cells(obj: Obj, now_s: float) -> Cells:
    created = (obj.get("metadata") or _EMPTY).get("creationTimestamp")
    epoch = _epoch(created) if isinstance(created, str) and created else None
    stamp = ("0001-01-01T00:00:00Z" if epoch is None
             else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return [_name(obj), stamp]


# --- column sets ----------------------------------------------------------------

def _col(name: str, description: str, *, type_: str = "string", priority: int = 0,
         format_: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


_NAME = _col("Name", "Name of the object, unique within its namespace and kind.",
             format_="name")
_AGE = _col("Age", "Time since the object was created (metadata.creationTimestamp).")
_CONTAINERS = _col("Containers", "Names of each container in the template.", priority=1)
_IMAGES = _col("Images", "Images referenced by each container in the template.", priority=1)
_SELECTOR = _col("Selector", "The label selector of the pods it manages.", priority=1)
_DEFAULT_COLUMNS = [_NAME, _col("Created At", "The time the object was created.",
                                type_="date")]


def _ints(*names: str) -> list[dict[str, Any]]:
    return [_col(n, f"{n} replicas or pods.", type_="integer") for n in names]


_PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], CellsFn]] = {
    ("", "pods"): ([
        _NAME, _col("Ready", "Ready containers out of all containers."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "Container restarts, and how long ago the last one was."), _AGE,
        _col("IP", "The pod's IP address.", priority=1),
        _col("Node", "The node the pod is bound to.", priority=1),
        _col("Nominated Node", "The node nominated by preemption.", priority=1),
        _col("Readiness Gates", "Readiness gates that are True out of all.", priority=1),
    ], _pod_cells),
    ("apps", "deployments"): ([
        _NAME, _col("Ready", "Ready pods out of desired replicas."),
        _col("Up-to-date", "Pods that run the newest template."),
        _col("Available", "Pods available for at least minReadySeconds."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _deployment_cells),
    ("apps", "replicasets"): ([
        _NAME, *_ints("Desired", "Current", "Ready"), _AGE, _CONTAINERS, _IMAGES, _SELECTOR,
    ], _replicaset_cells),
    ("", "replicationcontrollers"): ([
        _NAME, *_ints("Desired", "Current", "Ready"), _AGE, _CONTAINERS, _IMAGES, _SELECTOR,
    ], _replicationcontroller_cells),
    ("apps", "daemonsets"): ([
        _NAME, *_ints("Desired", "Current", "Ready", "Up-to-date", "Available"),
        _col("Node Selector", "The node selector of the pod template."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _daemonset_cells),
    ("apps", "statefulsets"): ([
        _NAME, _col("Ready", "Ready pods out of desired replicas."), _AGE, _CONTAINERS, _IMAGES,
    ], _statefulset_cells),
    ("batch", "jobs"): ([
        _NAME, _col("Status", "Status of the job."),
        _col("Completions", "Succeeded pods out of the completions wanted."),
        _col("Duration", "Time required to complete the job."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _job_cells),
    ("batch", "cronjobs"): ([
        _NAME, _col("Schedule", "The cron schedule."),
        _col("Timezone", "The time zone of the schedule."),
        _col("Suspend", "Whether later runs are suspended.", type_="boolean"),
        _col("Active", "Jobs currently running.", type_="integer"),
        _col("Last Schedule", "Time since a job was last scheduled."), _AGE,
        _CONTAINERS, _IMAGES, _SELECTOR,
    ], _cronjob_cells),
    ("", "services"): ([
        _NAME, _col("Type", "How the service is exposed."),
        _col("Cluster-IP", "The service's virtual IP in the cluster."),
        _col("External-IP", "External or load-balancer addresses."),
        _col("Port(s)", "Service ports, with node ports."), _AGE,
        _col("Selector", "Pods selected as endpoints.", priority=1),
    ], _service_cells),
    ("", "endpoints"): ([
        _NAME, _col("Endpoints", "Up to three address:port pairs."), _AGE,
    ], _endpoints_cells),
    ("", "nodes"): ([
        _NAME, _col("Status", "The status of the node."),
        _col("Roles", "The roles of the node."), _AGE,
        _col("Version", "Kubelet version reported by the node agent."),
        _col("Internal-IP", "The node's InternalIP address.", priority=1),
        _col("External-IP", "The node's ExternalIP address.", priority=1),
        _col("OS-Image", "The node's operating system image.", priority=1),
        _col("Kernel-Version", "The node's kernel version.", priority=1),
        _col("Container-Runtime", "The node's container runtime version.", priority=1),
    ], _node_cells),
    ("", "namespaces"): ([
        _NAME, _col("Status", "The status of the namespace."), _AGE,
    ], _namespace_cells),
    ("", "configmaps"): ([
        _NAME, _col("Data", "Number of keys in data and binaryData."), _AGE,
    ], _configmap_cells),
    ("", "secrets"): ([
        _NAME, _col("Type", "The secret type."), _col("Data", "Number of keys in data."), _AGE,
    ], _secret_cells),
    ("", "events"): ([
        _col("Last Seen", "Time since the event was last seen."),
        _col("Type", "Normal or Warning."), _col("Reason", "Why the event happened."),
        _col("Object", "The object the event is about."),
        _col("Subobject", "The part of the object, such as a container.", priority=1),
        _col("Source", "The component that reported the event.", priority=1),
        _col("Message", "A human-readable description."),
        _col("First Seen", "Time since the event was first seen.", priority=1),
        _col("Count", "How many times it happened.", priority=1),
        _col("Name", "Name of the event object.", priority=1, format_="name"),
    ], _event_cells),
    ("", "resourcequotas"): ([
        _NAME, _AGE, _col("Request", "Used/hard for each request quota."),
        _col("Limit", "Used/hard for each limits.* quota."),
    ], _resourcequota_cells),
    ("coordination.k8s.io", "leases"): ([
        _NAME, _col("Holder", "The identity holding the lease."), _AGE,
    ], _lease_cells),
}


def _printer(resource: str, group: str) -> tuple[list[dict[str, Any]], CellsFn]:
    return _PRINTERS.get((group, resource), (_DEFAULT_COLUMNS, _default_cells))


# --- public API -----------------------------------------------------------------

def column_definitions(resource: str, group: str) -> list[dict[str, Any]]:
    """The Table's columnDefinitions for `resource` (plural) in `group` ("" = core)."""
    return [dict(c) for c in _printer(resource, group)[0]]


def row_cells(resource: str, group: str, obj: Obj, *, now: datetime) -> Cells:
    """One row's cells, as many as `column_definitions` has columns."""
    return _printer(resource, group)[1](obj, _now_seconds(now))


def _row_object(resource: str, group: str, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {}}
    if include_object == "Object":
        info = resources.lookup(group, resource)
        if info is None or ("kind" in obj and "apiVersion" in obj):
            return obj
        return {"kind": info.kind, "apiVersion": info.api_version, **obj}
    if include_object == "None":
        return None
    raise ValueError(f"includeObject must be one of {INCLUDE_OBJECT_CHOICES}, "
                     f"not {include_object!r}")


def _row(resource: str, group: str, obj: Obj, cells_fn: CellsFn, *, include_object: str,
         now_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells_fn(obj, now_s)}
    if cells_fn is _pod_cells:
        conditions = _POD_ROW_CONDITIONS.get((obj.get("status") or _EMPTY).get("phase", ""))
        if conditions:
            row["conditions"] = [dict(c) for c in conditions]
    embedded = _row_object(resource, group, obj, include_object)
    if embedded is not None:
        row["object"] = embedded
    return row


def table_row(resource: str, group: str, obj: Obj, *, include_object: str = "Metadata",
              now: datetime) -> dict[str, Any]:
    """One `rows[]` entry: cells, pod row conditions, and the object per includeObject.

    Raises ValueError for an includeObject outside INCLUDE_OBJECT_CHOICES.
    """
    cells_fn = _printer(resource, group)[1]
    return _row(resource, group, obj, cells_fn, include_object=include_object,
                now_s=_now_seconds(now))


def table(resource: str, group: str, objects: Iterable[Obj], *, resource_version: str,
          include_object: str = "Metadata", now: datetime, continue_token: str = "",
          remaining_item_count: int | None = None,
          include_columns: bool = True) -> dict[str, Any]:
    """A complete Table for a LIST (or a GET, given one object).

    `continue_token` / `remaining_item_count` fill the list metadata of a paged
    LIST. `include_columns=False` leaves columnDefinitions empty, as the real
    apiserver does for `?noHeaders=true`. Raises ValueError for a bad includeObject.
    """
    columns, cells_fn = _printer(resource, group)
    now_s = _now_seconds(now)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    if remaining_item_count is not None:
        metadata["remainingItemCount"] = remaining_item_count
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": [dict(c) for c in columns] if include_columns else [],
        "rows": [_row(resource, group, o, cells_fn, include_object=include_object,
                      now_s=now_s) for o in objects],
    }


def one_row_table(resource: str, group: str, obj: Obj, *, include_object: str = "Metadata",
                  now: datetime, resource_version: str | None = None,
                  include_columns: bool = True) -> dict[str, Any]:
    """A Table holding one object: a watch event's `object`, or a GET of one item.

    The Table's resourceVersion defaults to the object's, as the real apiserver's.
    """
    if resource_version is None:
        resource_version = (obj.get("metadata") or _EMPTY).get("resourceVersion", "")
    return table(resource, group, [obj], resource_version=resource_version,
                 include_object=include_object, now=now, include_columns=include_columns)
