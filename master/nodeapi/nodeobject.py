"""Pure: the Node object a registration asks for, and the Ready condition a
heartbeat sets (heartbeat convention in DESIGN/common: Ready=True with
reason KubeletReady whenever the node renews its lease and Ready is not True).

Must not: do I/O (service.py writes what these return).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from google.protobuf import timestamp_pb2

from protos.core.v1 import core_pb2

READY_REASON = "KubeletReady"
READY_MESSAGE = "kubelet is posting ready status"
DEFAULT_CAPACITY = {"pods": "110"}


def _ts(now: _dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(now.astimezone(_dt.UTC).replace(tzinfo=None))
    return ts


def render_node(request: Any, *, name: str, pod_cidr: str, address: str, now: _dt.datetime,
                existing: core_pb2.Node | None) -> core_pb2.Node:
    """The Node after this registration. An existing Node keeps its metadata,
    taints and any labels or conditions set by others; the agent's labels win
    for the keys it sends. Taints from the request apply only on creation
    (as kubelet's --register-with-taints)."""
    node = core_pb2.Node()
    if existing is not None:
        node.CopyFrom(existing)
    else:
        node.metadata.name = name
        node.spec.taints.extend(request.taints)
    node.api_version, node.kind = "v1", "Node"
    hostname = request.hostname or name
    node.metadata.labels.update({"kubernetes.io/hostname": hostname, "kubernetes.io/os":
                                 request.operating_system or "linux"})
    if request.architecture:
        node.metadata.labels["kubernetes.io/arch"] = request.architecture
    node.metadata.labels.update(request.labels)
    if not node.spec.pod_cidr:
        node.spec.pod_cidr = pod_cidr
    if not node.spec.pod_cidrs:
        node.spec.pod_cidrs.append(node.spec.pod_cidr)
    st = node.status
    capacity = dict(DEFAULT_CAPACITY)
    capacity.update(request.capacity)
    st.capacity.clear()
    st.capacity.update(capacity)
    st.allocatable.clear()
    st.allocatable.update(dict(request.allocatable) or capacity)
    del st.addresses[:]
    st.addresses.add(type="InternalIP", address=address)
    st.addresses.add(type="Hostname", address=hostname)
    st.daemon_endpoints.kubelet_endpoint.port = request.kubelet_port or 10250
    info = st.node_info
    info.kernel_version = request.kernel_version
    info.os_image = request.os_image
    info.container_runtime_version = request.container_runtime_version
    info.kubelet_version = request.kubelet_version
    info.operating_system = request.operating_system or "linux"
    info.architecture = request.architecture
    info.machine_id = request.machine_id
    info.boot_id = request.boot_id
    set_ready(node, now)
    return node


def is_ready(node: core_pb2.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def set_ready(node: core_pb2.Node, now: _dt.datetime) -> bool:
    """Ready=True (KubeletReady); returns False when it already was (nothing to write)."""
    ts = _ts(now)
    for cond in node.status.conditions:
        if cond.type == "Ready":
            if cond.status == "True":
                return False
            cond.status, cond.reason, cond.message = "True", READY_REASON, READY_MESSAGE
            cond.last_heartbeat_time.CopyFrom(ts)
            cond.last_transition_time.CopyFrom(ts)
            return True
    node.status.conditions.add(type="Ready", status="True", reason=READY_REASON, message=READY_MESSAGE,
                               last_heartbeat_time=ts, last_transition_time=ts)
    return True
