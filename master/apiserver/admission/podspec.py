"""The pod spec, wherever it appears: Pod.spec and every workload's template.spec.

`default_pod_spec` is Kubernetes' SetDefaults_PodSpec (plus the containers'
and volumes' defaults); `validate_pod_spec(spec, path)` is ValidatePodSpec
with a path prefix ("spec", "spec.template.spec",
"spec.jobTemplate.spec.template.spec"), so every kind reports the field
the way Kubernetes does. What only a Pod object gets (requests from limits,
serviceAccountName, enableServiceLinks, status, update rules) is in `pod.py`.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.containers import default_container, validate_container
from master.apiserver.admission.scheduling import validate_scheduling
from master.apiserver.admission.volumes import default_volume, validate_volumes
from master.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported, required

RESTART_POLICIES = ["Always", "Never", "OnFailure"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
_OS_NAMES = ["linux", "windows"]
_MAX_INT32 = 2**31 - 1


def default_pod_spec(spec: Any) -> None:
    """Kubernetes' SetDefaults_PodSpec and the defaults of the types inside it."""
    spec.dns_policy = spec.dns_policy or "ClusterFirst"
    spec.restart_policy = spec.restart_policy or "Always"
    spec.scheduler_name = spec.scheduler_name or "default-scheduler"
    spec.security_context.SetInParent()
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    for ctr in list(spec.init_containers) + list(spec.containers):
        default_container(ctr, host_network=spec.host_network)
    for vol in spec.volumes:
        default_volume(vol)


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    causes, volume_names = validate_volumes(spec.volumes, f"{path}.volumes")
    causes += _containers(spec, path, volumes=volume_names)
    causes += _policies(spec, path)
    causes += _names(spec, path)
    causes += validate_scheduling(spec, path)
    causes += _misc(spec, path)
    return causes


def _containers(spec: Any, path: str, *, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    if not spec.containers:
        causes.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for field, json_name, init in (("init_containers", "initContainers", True),
                                   ("containers", "containers", False)):
        for i, ctr in enumerate(getattr(spec, field)):
            p = f"{path}.{json_name}[{i}]"
            causes += validate_container(ctr, p, volumes=volumes, init=init)
            if ctr.name and ctr.name in seen:
                causes.append(duplicate(f"{p}.name", ctr.name))
            seen.add(ctr.name)
            causes += _container_in_pod(spec, ctr, p, init=init)
    return causes


def _container_in_pod(spec: Any, ctr: Any, path: str, *, init: bool) -> list[Cause]:
    """The rules that depend on the pod around the container."""
    causes: list[Cause] = []
    if init and ctr.restart_policy and ctr.restart_policy != "Always":
        causes.append(not_supported(f"{path}.restartPolicy", ctr.restart_policy, ["Always"]))
    if not init and ctr.restart_policy:
        causes.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
    if spec.host_network:
        for i, port in enumerate(ctr.ports):
            if port.host_port != port.container_port:
                causes.append(invalid(f"{path}.ports[{i}].hostPort", port.host_port,
                                      "must match `containerPort` when `hostNetwork` is true"))
    return causes


def _policies(spec: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if spec.restart_policy not in RESTART_POLICIES:
        causes.append(not_supported(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES))
    if spec.dns_policy not in DNS_POLICIES:
        causes.append(not_supported(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES))
    elif spec.dns_policy == "None" and not spec.HasField("dns_config"):
        causes.append(c.required_because(f"{path}.dnsConfig",
                                         "must provide `dnsConfig` when `dnsPolicy` is None"))
    for i, ns in enumerate(spec.dns_config.nameservers):
        causes += c.ip(f"{path}.dnsConfig.nameservers[{i}]", ns)
    if spec.HasField("termination_grace_period_seconds"):
        causes += c.non_negative(f"{path}.terminationGracePeriodSeconds",
                                 spec.termination_grace_period_seconds)
    if spec.HasField("active_deadline_seconds") and not 1 <= spec.active_deadline_seconds <= _MAX_INT32:
        causes.append(invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                              f"must be between 1 and {_MAX_INT32}, inclusive"))
    return causes


def _names(spec: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for field, json_name, check in (
        ("service_account_name", "serviceAccountName", c.dns_subdomain),
        ("node_name", "nodeName", c.dns_subdomain),
        ("hostname", "hostname", c.dns_label),
        ("subdomain", "subdomain", c.dns_label),
        ("priority_class_name", "priorityClassName", c.dns_subdomain),
    ):
        value = getattr(spec, field)
        if value:
            causes += check(f"{path}.{json_name}", value)
    for i, ref in enumerate(spec.image_pull_secrets):
        if not ref.name:
            causes.append(required(f"{path}.imagePullSecrets[{i}].name"))
    return causes


def _misc(spec: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, alias in enumerate(spec.host_aliases):
        causes += c.ip(f"{path}.hostAliases[{i}].ip", alias.ip)
        for j, host in enumerate(alias.hostnames):
            causes += c.dns_subdomain(f"{path}.hostAliases[{i}].hostnames[{j}]", host)
    for i, gate in enumerate(spec.readiness_gates):
        causes += c.qualified_name(f"{path}.readinessGates[{i}].conditionType", gate.condition_type)
    gates: set[str] = set()
    for i, sg in enumerate(spec.scheduling_gates):
        causes += c.qualified_name(f"{path}.schedulingGates[{i}].name", sg.name)
        if sg.name in gates:
            causes.append(duplicate(f"{path}.schedulingGates[{i}].name", sg.name))
        gates.add(sg.name)
    if spec.HasField("os") and spec.os.name not in _OS_NAMES:
        causes.append(not_supported(f"{path}.os.name", spec.os.name, _OS_NAMES))
    causes += c.quantity_map(f"{path}.overhead", spec.overhead)
    return causes
