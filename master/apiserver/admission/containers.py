"""Containers of a pod spec: their defaults and their validation.

Owns one container's rules (image pull policy, termination message, ports,
env, resources, probes, lifecycle handlers, volume mounts) as Kubernetes'
SetDefaults_Container / validateContainers state them. The pod-level rules
(names unique across containers and initContainers, volumes, scheduling)
are in `podspec.py`, which calls this module once per container.

Pure: no I/O. Functions mutate only the container they are given.
"""

from __future__ import annotations

import re
from collections.abc import Set
from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.quantity import exceeds, quantity_errors
from master.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported, required

PROTOCOLS = ["SCTP", "TCP", "UDP"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_MESSAGE_POLICIES = ["FallbackToLogsOnError", "File"]
_PROPAGATION = ["Bidirectional", "HostToContainer", "None"]
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
ENV_NAME_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
    "or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
_FIELD_REFS = [
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP",
    "status.hostIPs", "status.podIP", "status.podIPs",
]
_RESOURCE_REFS = [
    "limits.cpu", "limits.ephemeral-storage", "limits.memory",
    "requests.cpu", "requests.ephemeral-storage", "requests.memory",
]
_HTTP_HEADER = re.compile(r"^[-A-Za-z0-9!#$%&'*+.^_`|~]+$")


# --- defaults --------------------------------------------------------------------

def default_container(ctr: Any, *, host_network: bool) -> None:
    """Kubernetes' SetDefaults_Container plus the nested types' defaults."""
    if not ctr.image_pull_policy:
        ctr.image_pull_policy = "Always" if _tag_is_latest(ctr.image) else "IfNotPresent"
    if not ctr.termination_message_path:
        ctr.termination_message_path = "/dev/termination-log"
    if not ctr.termination_message_policy:
        ctr.termination_message_policy = "File"
    for port in ctr.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if host_network and port.host_port == 0:
            port.host_port = port.container_port  # the pod's ports are the host's
    for env in ctr.env:
        if env.value_from.HasField("field_ref") and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if ctr.HasField(name):
            default_probe(getattr(ctr, name))
    for name in ("post_start", "pre_stop"):
        if ctr.HasField("lifecycle") and ctr.lifecycle.HasField(name):
            handler = getattr(ctr.lifecycle, name)
            if handler.HasField("http_get"):
                default_http_get(handler.http_get)


def _tag_is_latest(image: str) -> bool:
    """No tag, or the tag "latest" (a digest pins the image: IfNotPresent)."""
    if "@" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.rsplit(":", 1)[1] == "latest"


def default_probe(probe: Any) -> None:
    probe.timeout_seconds = probe.timeout_seconds or 1
    probe.period_seconds = probe.period_seconds or 10
    probe.success_threshold = probe.success_threshold or 1
    probe.failure_threshold = probe.failure_threshold or 3
    if probe.HasField("http_get"):
        default_http_get(probe.http_get)


def default_http_get(action: Any) -> None:
    action.path = action.path or "/"
    action.scheme = action.scheme or "HTTP"


def default_requests_from_limits(ctr: Any) -> None:
    """Pods only (SetDefaults_Pod): a limit without a request is also the request."""
    for name, value in ctr.resources.limits.items():
        if name not in ctr.resources.requests:
            ctr.resources.requests[name] = value


# --- validation ------------------------------------------------------------------

def validate_container(ctr: Any, path: str, *, volumes: Set[str], init: bool) -> list[Cause]:
    causes = _identity(ctr, path)
    causes += validate_ports(ctr.ports, f"{path}.ports")
    causes += validate_env(ctr.env, f"{path}.env")
    causes += _env_from(ctr.env_from, f"{path}.envFrom")
    causes += validate_resources(ctr.resources, f"{path}.resources")
    causes += _mounts(ctr.volume_mounts, f"{path}.volumeMounts", volumes=volumes)
    causes += _probes(ctr, path, init=init)
    causes += _lifecycle(ctr, path, init=init)
    return causes


def _identity(ctr: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.name")] if not ctr.name else c.dns_label(f"{path}.name", ctr.name)
    if not ctr.image.strip():
        causes.append(required(f"{path}.image"))
    if ctr.image_pull_policy not in _PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", ctr.image_pull_policy, _PULL_POLICIES))
    if ctr.termination_message_policy not in _MESSAGE_POLICIES:
        causes.append(not_supported(
            f"{path}.terminationMessagePolicy", ctr.termination_message_policy, _MESSAGE_POLICIES))
    return causes


def validate_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if port.name:
            causes += c.port_name(f"{p}.name", port.name)
            if port.name in names:
                causes.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
        if port.container_port == 0:
            causes.append(required(f"{p}.containerPort"))
        else:
            causes += c.port_number(f"{p}.containerPort", port.container_port)
        if port.host_port:
            causes += c.port_number(f"{p}.hostPort", port.host_port)
        if port.protocol not in PROTOCOLS:
            causes.append(not_supported(f"{p}.protocol", port.protocol, PROTOCOLS))
        if port.host_ip:
            causes += c.ip(f"{p}.hostIP", port.host_ip)
    return causes


def env_name(path: str, name: str) -> list[Cause]:
    if not name:
        return [required(path)]
    return [] if _ENV_NAME.match(name) else [invalid(path, name, ENV_NAME_MSG)]


def validate_env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        causes += env_name(f"{p}.name", var.name)
        if var.HasField("value_from"):
            causes += _value_from(var, f"{p}.valueFrom")
    return causes


def _value_from(var: Any, path: str) -> list[Cause]:
    src = var.value_from
    present = [n for n in ("field_ref", "resource_field_ref", "config_map_key_ref", "secret_key_ref")
               if src.HasField(n)]
    if not present:
        return [invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                        "`configMapKeyRef` or `secretKeyRef`")]
    if len(present) > 1:
        return [invalid(path, "", "may not have more than one field specified at a time")]
    causes: list[Cause] = []
    if var.value:
        causes.append(invalid(path, "", "may not be specified when `value` is not empty"))
    kind = present[0]
    if kind == "field_ref":
        causes += field_ref(src.field_ref, f"{path}.fieldRef")
    elif kind == "resource_field_ref":
        causes += resource_field_ref(src.resource_field_ref, f"{path}.resourceFieldRef")
    else:
        json_name = "configMapKeyRef" if kind == "config_map_key_ref" else "secretKeyRef"
        causes += _key_ref(getattr(src, kind), f"{path}.{json_name}")
    return causes


def field_ref(ref: Any, path: str) -> list[Cause]:
    if not ref.field_path:
        return [required(f"{path}.fieldPath")]
    base = ref.field_path.split("[", 1)[0] if ref.field_path.endswith("']") else ref.field_path
    if base not in _FIELD_REFS:
        return [not_supported(f"{path}.fieldPath", ref.field_path, _FIELD_REFS)]
    return []


def resource_field_ref(ref: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not ref.resource:
        causes.append(required(f"{path}.resource"))
    elif ref.resource not in _RESOURCE_REFS:
        causes.append(not_supported(f"{path}.resource", ref.resource, _RESOURCE_REFS))
    if ref.divisor:
        causes += [invalid(f"{path}.divisor", ref.divisor, e) for e in quantity_errors(ref.divisor)]
    return causes


def _key_ref(ref: Any, path: str) -> list[Cause]:
    causes = [required(f"{path}.name")] if not ref.name else []
    if not ref.key:
        causes.append(required(f"{path}.key"))
    else:
        causes += c.config_key(f"{path}.key", ref.key)
    return causes


def _env_from(sources: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, src in enumerate(sources):
        p = f"{path}[{i}]"
        if src.prefix:
            causes += env_name(f"{p}.prefix", src.prefix)
        refs = [n for n in ("config_map_ref", "secret_ref") if src.HasField(n)]
        if len(refs) != 1:
            detail = "may not have more than one field specified at a time" if refs else \
                "must specify one of: `configMapRef` or `secretRef`"
            causes.append(invalid(p, "", detail))
            continue
        ref_path = f"{p}.configMapRef" if refs[0] == "config_map_ref" else f"{p}.secretRef"
        if not getattr(src, refs[0]).name:
            causes.append(required(f"{ref_path}.name"))
    return causes


def validate_resources(res: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for part in ("limits", "requests"):
        for name in getattr(res, part):
            causes += _resource_name(f"{path}.{part}[{name}]", name)
        causes += c.quantity_map(f"{path}.{part}", getattr(res, part))
    for name, text in res.requests.items():
        if name in res.limits and exceeds(text, res.limits[name]):
            causes.append(invalid(f"{path}.requests[{name}]", text,
                                  f"must be less than or equal to {name} limit of {res.limits[name]}"))
    return causes


def _resource_name(path: str, name: str) -> list[Cause]:
    if "/" in name or name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return []
    return [invalid(path, name, "must be a standard resource for containers")]


def _mounts(mounts: Any, path: str, *, volumes: Set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, m in enumerate(mounts):
        p = f"{path}[{i}]"
        if not m.name:
            causes.append(required(f"{p}.name"))
        elif m.name not in volumes:
            causes.append(c.not_found(f"{p}.name", m.name))
        if not m.mount_path:
            causes.append(required(f"{p}.mountPath"))
        elif m.mount_path in seen:
            causes.append(invalid(f"{p}.mountPath", m.mount_path, "must be unique"))
        seen.add(m.mount_path)
        if m.sub_path:
            causes += relative_path(f"{p}.subPath", m.sub_path)
        if m.mount_propagation and m.mount_propagation not in _PROPAGATION:
            causes.append(not_supported(f"{p}.mountPropagation", m.mount_propagation, _PROPAGATION))
    return causes


def relative_path(path: str, value: str) -> list[Cause]:
    if value.startswith("/"):
        return [invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


# --- probes and handlers ---------------------------------------------------------------

_PROBE_JSON = (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
               ("startup_probe", "startupProbe"))
_HANDLER_JSON = {"exec": "exec", "http_get": "httpGet", "tcp_socket": "tcpSocket",
                 "grpc": "grpc", "sleep": "sleep"}


def _probes(ctr: Any, path: str, *, init: bool) -> list[Cause]:
    causes: list[Cause] = []
    sidecar = ctr.restart_policy == "Always"
    for name, json_name in _PROBE_JSON:
        if not ctr.HasField(name):
            continue
        p = f"{path}.{json_name}"
        if init and not sidecar:
            causes.append(forbidden(p, "may not be set for init containers without restartPolicy=Always"))
            continue
        if init and name == "readiness_probe":
            causes.append(forbidden(p, "may not be set for init containers"))
            continue
        causes += validate_probe(getattr(ctr, name), p, once=name != "readiness_probe")
    return causes


def validate_probe(probe: Any, path: str, *, once: bool) -> list[Cause]:
    causes = _handler(probe, path, ("exec", "http_get", "tcp_socket", "grpc"))
    for field, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                             ("timeout_seconds", "timeoutSeconds"),
                             ("period_seconds", "periodSeconds"),
                             ("success_threshold", "successThreshold"),
                             ("failure_threshold", "failureThreshold")):
        causes += c.non_negative(f"{path}.{json_name}", getattr(probe, field))
    if once and probe.success_threshold not in (0, 1):
        causes.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    if probe.HasField("termination_grace_period_seconds") and probe.termination_grace_period_seconds < 1:
        causes.append(invalid(f"{path}.terminationGracePeriodSeconds",
                              probe.termination_grace_period_seconds, "must be greater than 0"))
    return causes


def _lifecycle(ctr: Any, path: str, *, init: bool) -> list[Cause]:
    if not ctr.HasField("lifecycle"):
        return []
    if init and ctr.restart_policy != "Always":
        return [forbidden(f"{path}.lifecycle", "may not be set for init containers without restartPolicy=Always")]
    causes: list[Cause] = []
    for name, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if ctr.lifecycle.HasField(name):
            causes += _handler(getattr(ctr.lifecycle, name), f"{path}.lifecycle.{json_name}",
                               ("exec", "http_get", "tcp_socket", "sleep"))
    return causes


def _handler(handler: Any, path: str, kinds: tuple[str, ...]) -> list[Cause]:
    present = [k for k in kinds if handler.HasField(k)]
    if not present:
        return [c.required_because(path, "must specify a handler type")]
    if len(present) > 1:
        return [forbidden(f"{path}.{_HANDLER_JSON[present[1]]}", "may not specify more than 1 handler type")]
    kind = present[0]
    sub, p = getattr(handler, kind), f"{path}.{_HANDLER_JSON[kind]}"
    if kind == "exec":
        return [required(f"{p}.command")] if not sub.command else []
    if kind == "http_get":
        return _http_get(sub, p)
    if kind == "tcp_socket":
        return c.port_or_name(f"{p}.port", sub.port)
    if kind == "grpc":
        return c.port_number(f"{p}.port", sub.port)
    return c.non_negative(f"{p}.seconds", sub.seconds)


def _http_get(action: Any, path: str) -> list[Cause]:
    causes = c.port_or_name(f"{path}.port", action.port)
    if action.scheme not in ("HTTP", "HTTPS"):
        causes.append(not_supported(f"{path}.scheme", action.scheme, ["HTTP", "HTTPS"]))
    for i, header in enumerate(action.http_headers):
        if not _HTTP_HEADER.match(header.name):
            causes.append(invalid(f"{path}.httpHeaders[{i}].name", header.name,
                                  "a valid HTTP header must consist of alphanumeric characters or '-'"))
    return causes
