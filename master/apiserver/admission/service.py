"""Services and Endpoints: defaults, validation, and the fields an update keeps.

Service defaults are Kubernetes' SetDefaults_Service (type, session
affinity, port protocol and targetPort, traffic policies, one IPv4 family)
and validation is ValidateService's port, type and policy rules. This
module does not allocate a clusterIP or nodePorts: the allocator does,
after admission. What it does on update is what Kubernetes' service registry
does before validating: a PUT that leaves clusterIP or a nodePort empty keeps
the allocated value (kubectl apply and replace rely on it), and an allocated
clusterIP may not change except to or from ExternalName.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.base import Strategy
from master.apiserver.admission.containers import PROTOCOLS
from master.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported, required

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
_AFFINITIES = ["ClientIP", "None"]
_TRAFFIC = ["Cluster", "Local"]
_FAMILIES = ["IPv4", "IPv6"]
_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
_EXTERNAL = ("NodePort", "LoadBalancer")
_AFFINITY_TIMEOUT_MAX = 86400


class ServiceStrategy(Strategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec
        spec.type = spec.type or "ClusterIP"
        spec.session_affinity = spec.session_affinity or "None"
        if spec.session_affinity == "ClientIP":
            client_ip = spec.session_affinity_config.client_ip
            if not client_ip.HasField("timeout_seconds"):
                client_ip.timeout_seconds = 10800
        for port in spec.ports:
            port.protocol = port.protocol or "TCP"
            if _target_port_unset(port.target_port) and port.port:
                port.target_port.number_value = port.port
        if spec.type in _EXTERNAL:
            spec.external_traffic_policy = spec.external_traffic_policy or "Cluster"
        if spec.type == "LoadBalancer" and not spec.HasField("allocate_load_balancer_node_ports"):
            spec.allocate_load_balancer_node_ports = True
        if spec.type != "ExternalName":
            spec.internal_traffic_policy = spec.internal_traffic_policy or "Cluster"
            if not spec.ip_families:
                spec.ip_families.append("IPv4")
            spec.ip_family_policy = spec.ip_family_policy or "SingleStack"
        _normalize_cluster_ips(spec)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = _type_rules(spec)
        causes += _ports(spec)
        causes += _affinity(spec)
        causes += _policies(spec)
        causes += c.label_map("spec.selector", spec.selector)
        for i, addr in enumerate(spec.external_ips):
            causes += c.ip(f"spec.externalIPs[{i}]", addr)
        for i, rng in enumerate(spec.load_balancer_source_ranges):
            causes += c.cidr(f"spec.loadBalancerSourceRanges[{i}]", rng)
        return causes

    def prepare_for_update(self, new: Any, old: Any) -> None:
        if "ExternalName" not in (new.spec.type or "ClusterIP", old.spec.type):
            _keep_allocated(new.spec, old.spec)
        _drop_node_ports(new.spec, old.spec)

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        spec, was = new.spec, old.spec
        if "ExternalName" in (spec.type, was.type):
            return []
        self.prepare_for_update(new, old)  # idempotent; admit_update does not call it yet
        if was.cluster_ip and spec.cluster_ip != was.cluster_ip:
            return [invalid("spec.clusterIPs[0]", spec.cluster_ip, "may not change once set")]
        return []


def _target_port_unset(value: Any) -> bool:
    """Kubernetes defaults targetPort when it is missing, 0 or ""."""
    if value.WhichOneof("kind") in (None, "null_value"):
        return True
    return c.int_or_string(value) in (0, "")


def _normalize_cluster_ips(spec: Any) -> None:
    """clusterIP and clusterIPs[0] are one value, whichever the client set."""
    if spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ips.append(spec.cluster_ip)
    elif spec.cluster_ips and not spec.cluster_ip:
        spec.cluster_ip = spec.cluster_ips[0]


def _keep_allocated(spec: Any, was: Any) -> None:
    if not spec.cluster_ip and not spec.cluster_ips and was.cluster_ip:
        spec.cluster_ip = was.cluster_ip
        spec.cluster_ips.extend(was.cluster_ips or [was.cluster_ip])
    if spec.type in _EXTERNAL and was.type in _EXTERNAL:
        allocated = {(p.port, p.protocol): p.node_port for p in was.ports if p.node_port}
        for port in spec.ports:
            key = (port.port, port.protocol or "TCP")  # may run before defaulting
            if not port.node_port and key in allocated:
                port.node_port = allocated[key]


def _drop_node_ports(spec: Any, was: Any) -> None:
    """NodePort/LoadBalancer -> ClusterIP with the nodePorts left as they were
    (kubectl apply of the new type): the ports go, as Kubernetes'
    dropTypeDependentFields does; the allocator then releases them."""
    if was.type not in _EXTERNAL or (spec.type or "ClusterIP") in _EXTERNAL:
        return
    allocated = {p.node_port for p in was.ports if p.node_port}
    if all(p.node_port in allocated for p in spec.ports if p.node_port):
        for port in spec.ports:
            port.ClearField("node_port")


def _type_rules(spec: Any) -> list[Cause]:
    if spec.type not in TYPES:
        return [not_supported("spec.type", spec.type, TYPES)]
    causes: list[Cause] = []
    if spec.type == "ExternalName":
        name = spec.external_name.removesuffix(".")
        causes += [required("spec.externalName")] if not name else c.dns_subdomain("spec.externalName", name)
        if spec.cluster_ips:
            causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        return causes
    if spec.cluster_ips and spec.cluster_ip != spec.cluster_ips[0]:
        causes.append(invalid("spec.clusterIPs[0]", spec.cluster_ips[0], "must be same as clusterIP"))
    for i, addr in enumerate(spec.cluster_ips):
        if addr == "None":
            if spec.type in _EXTERNAL:
                causes.append(invalid(f"spec.clusterIPs[{i}]", addr,
                                      f"may not be set to 'None' for {spec.type} services"))
        else:
            causes += c.ip(f"spec.clusterIPs[{i}]", addr)
    return causes


def _ports(spec: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not spec.ports and spec.cluster_ip != "None" and spec.type != "ExternalName":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    keys: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        p = f"spec.ports[{i}]"
        if not port.name:
            causes += [required(f"{p}.name")] if len(spec.ports) > 1 else []
        else:
            causes += c.dns_label(f"{p}.name", port.name)
            causes += [duplicate(f"{p}.name", port.name)] if port.name in names else []
            names.add(port.name)
        causes += c.port_number(f"{p}.port", port.port)
        if port.protocol not in PROTOCOLS:
            causes.append(not_supported(f"{p}.protocol", port.protocol, PROTOCOLS))
        causes += c.port_or_name(f"{p}.targetPort", port.target_port)
        if port.app_protocol:
            causes += c.qualified_name(f"{p}.appProtocol", port.app_protocol)
        if (port.port, port.protocol) in keys:
            causes.append(duplicate(p, f"{port.port}/{port.protocol}"))
        keys.add((port.port, port.protocol))
        causes += _node_port(spec, port, p, seen=node_ports)
    return causes


def _node_port(spec: Any, port: Any, path: str, *, seen: set[tuple[int, str]]) -> list[Cause]:
    if not port.node_port:
        return []
    p = f"{path}.nodePort"
    if spec.type not in _EXTERNAL:
        return [forbidden(p, f"may not be used when `type` is '{spec.type}'")]
    # The configured range (flotilla-master --service-node-port-range) is the
    # allocator's to check (master/apiserver/allocators); here only a port number.
    if not 1 <= port.node_port <= 65535:
        return [invalid(p, port.node_port, "must be between 1 and 65535, inclusive")]
    key = (port.node_port, port.protocol)
    if key in seen:
        return [duplicate(p, port.node_port)]
    seen.add(key)
    return []


def _affinity(spec: Any) -> list[Cause]:
    if spec.session_affinity not in _AFFINITIES:
        return [not_supported("spec.sessionAffinity", spec.session_affinity, _AFFINITIES)]
    if spec.session_affinity == "None":
        if spec.HasField("session_affinity_config"):
            return [forbidden("spec.sessionAffinityConfig", "must not be set when session affinity is None")]
        return []
    timeout = spec.session_affinity_config.client_ip.timeout_seconds
    if not 0 < timeout <= _AFFINITY_TIMEOUT_MAX:
        return [invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                        f"must be greater than 0 and less than {_AFFINITY_TIMEOUT_MAX}")]
    return []


def _policies(spec: Any) -> list[Cause]:
    causes: list[Cause] = []
    etp = spec.external_traffic_policy
    if spec.type in _EXTERNAL:
        if etp not in _TRAFFIC:
            causes.append(not_supported("spec.externalTrafficPolicy", etp, _TRAFFIC))
    elif etp:
        causes.append(invalid("spec.externalTrafficPolicy", etp,
                              "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
    if spec.type != "ExternalName" and spec.internal_traffic_policy not in _TRAFFIC:
        causes.append(not_supported("spec.internalTrafficPolicy", spec.internal_traffic_policy, _TRAFFIC))
    for i, family in enumerate(spec.ip_families):
        if family not in _FAMILIES:
            causes.append(not_supported(f"spec.ipFamilies[{i}]", family, _FAMILIES))
        elif family in spec.ip_families[:i]:
            causes.append(duplicate(f"spec.ipFamilies[{i}]", family))
    policy = spec.ip_family_policy
    if policy and policy not in _FAMILY_POLICIES:
        causes.append(not_supported("spec.ipFamilyPolicy", policy, _FAMILY_POLICIES))
    elif policy == "SingleStack" and len(spec.ip_families) > 1:
        causes.append(invalid("spec.ipFamilies", ",".join(spec.ip_families),
                              "when spec.ipFamilyPolicy is 'SingleStack' only one family is allowed"))
    return causes


# --- Endpoints -------------------------------------------------------------------------------

class EndpointsStrategy(Strategy):
    def default(self, msg: Any) -> None:
        for subset in msg.subsets:
            for port in subset.ports:
                port.protocol = port.protocol or "TCP"

    def validate(self, msg: Any) -> list[Cause]:
        causes: list[Cause] = []
        for i, subset in enumerate(msg.subsets):
            p = f"subsets[{i}]"
            for field, json_name in (("addresses", "addresses"), ("not_ready_addresses", "notReadyAddresses")):
                for j, addr in enumerate(getattr(subset, field)):
                    causes += _address(addr, f"{p}.{json_name}[{j}]")
            causes += _endpoint_ports(subset.ports, f"{p}.ports")
        return causes


def _address(addr: Any, path: str) -> list[Cause]:
    causes = c.ip(f"{path}.ip", addr.ip)
    if addr.hostname:
        causes += c.dns_label(f"{path}.hostname", addr.hostname)
    if addr.node_name:
        causes += c.dns_subdomain(f"{path}.nodeName", addr.node_name)
    return causes


def _endpoint_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if not port.name:
            causes += [required(f"{p}.name")] if len(ports) > 1 else []
        else:
            causes += c.dns_label(f"{p}.name", port.name)
            causes += [duplicate(f"{p}.name", port.name)] if port.name in names else []
            names.add(port.name)
        causes += c.port_number(f"{p}.port", port.port)
        if port.protocol not in PROTOCOLS:
            causes.append(not_supported(f"{p}.protocol", port.protocol, PROTOCOLS))
    return causes
