"""NodePorts: a host port (ip, protocol, port) may be taken once per node.

0.0.0.0 conflicts with every address. Reason (Kubernetes'):
"node(s) didn't have free ports for the requested pod ports".
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SKIP, SUCCESS, FilterPlugin, Status
from master.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY = "0.0.0.0"


def conflicts(wanted: tuple[str, str, int], used: frozenset[tuple[str, str, int]]) -> bool:
    ip, proto, port = wanted
    for uip, uproto, uport in used:
        if uport == port and uproto == proto and (ip == uip or ANY in (ip, uip)):
            return True
    return False


class NodePorts(FilterPlugin):
    name = "NodePorts"

    def prepare(self, pod: PodInfo, snapshot: Snapshot) -> Any:
        return None if pod.host_ports else SKIP

    def filter(self, state: Any, pod: PodInfo, node: NodeInfo) -> Status:
        if any(conflicts(w, node.used_ports) for w in pod.host_ports):
            return Status.unschedulable(REASON)
        return SUCCESS
