"""The smaller kinds: Namespace, Node, ConfigMap, Secret, Event, ResourceQuota, Lease.

Each follows Kubernetes' validation for its kind: node taints and pod CIDRs
(a podCIDR, once set, stays), ConfigMap and Secret keys and sizes (1 MiB),
`immutable: true` freezing their data, Secret types and their required keys,
stringData folded into data, an Event's namespace agreeing with its
involvedObject, quota quantities, lease durations. Namespace phase and
finalizers are the registry's, not admission's.

Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.base import Strategy
from master.apiserver.admission.scheduling import TAINT_EFFECTS
from master.apiserver.errors import (
    Cause,
    duplicate,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
)

MAX_DATA_BYTES = 1024 * 1024  # Kubernetes' MaxSecretSize, also the ConfigMap limit
IMMUTABLE_MSG = "field is immutable when `immutable` is set"
_QUOTA_SCOPES = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
                 "PriorityClass", "Terminating"]
_EVENT_TYPES = ["Normal", "Warning"]
_REASON_MAX = 128


class NamespaceStrategy(Strategy):
    """Metadata rules only; the registry sets status.phase and spec.finalizers."""


# --- Node -----------------------------------------------------------------------------------

class NodeStrategy(Strategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec  # podCIDRs wins, as Kubernetes' v1 conversion decides
        if spec.pod_cidrs:
            spec.pod_cidr = spec.pod_cidrs[0]
        elif spec.pod_cidr:
            spec.pod_cidrs.append(spec.pod_cidr)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes: list[Cause] = []
        for i, block in enumerate(spec.pod_cidrs):
            causes += c.cidr(f"spec.podCIDRs[{i}]", block)
        return causes + _taints(spec.taints, "spec.taints")

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        causes: list[Cause] = []
        if old.spec.pod_cidrs and list(new.spec.pod_cidrs) != list(old.spec.pod_cidrs):
            causes.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
        if old.spec.provider_id and new.spec.provider_id != old.spec.provider_id:
            causes.append(forbidden("spec.providerID",
                                    'node updates may not change providerID except from "" to valid'))
        return causes


def _taints(taints: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        p = f"{path}[{i}]"
        causes += c.qualified_name(f"{p}.key", taint.key)
        if taint.value:
            causes += [invalid(f"{p}.value", taint.value, e)
                       for e in c.meta_rules.label_value_errors(taint.value)]
        if not taint.effect:
            causes.append(required(f"{p}.effect"))
        elif taint.effect not in TAINT_EFFECTS:
            causes.append(not_supported(f"{p}.effect", taint.effect, TAINT_EFFECTS))
        if (taint.key, taint.effect) in seen:
            causes.append(Cause("FieldValueDuplicate", f'Duplicate value: "{taint.key}:{taint.effect}": '
                                "taints must be unique by key and effect pair", p))
        seen.add((taint.key, taint.effect))
    return causes


# --- ConfigMap and Secret ------------------------------------------------------------------------

class ConfigMapStrategy(Strategy):
    def validate(self, msg: Any) -> list[Cause]:
        causes: list[Cause] = []
        size = 0
        for key, text in msg.data.items():
            causes += c.config_key(f"data[{key}]", key)
            size += len(key) + len(text.encode())
        for key, blob in msg.binary_data.items():
            causes += c.config_key(f"binaryData[{key}]", key)
            if key in msg.data:
                causes.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
            size += len(key) + len(blob)
        if size > MAX_DATA_BYTES:
            causes.append(c.too_long("", MAX_DATA_BYTES))
        return causes

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return _immutable_data(new, old, ("data", "binary_data"))


def _immutable_data(new: Any, old: Any, fields: tuple[str, ...]) -> list[Cause]:
    if not (old.HasField("immutable") and old.immutable):
        return []
    causes: list[Cause] = []
    if not (new.HasField("immutable") and new.immutable):
        causes.append(forbidden("immutable", IMMUTABLE_MSG))
    for name in fields:
        if dict(getattr(new, name)) != dict(getattr(old, name)):
            causes.append(forbidden("binaryData" if name == "binary_data" else name, IMMUTABLE_MSG))
    return causes


_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
_JSON_KEYS = {"kubernetes.io/dockercfg": ".dockercfg", "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}


class SecretStrategy(Strategy):
    def default(self, msg: Any) -> None:
        msg.type = msg.type or "Opaque"
        for key, text in msg.string_data.items():  # stringData wins over data, as in Kubernetes
            msg.data[key] = text.encode()
        msg.ClearField("string_data")

    def validate(self, msg: Any) -> list[Cause]:
        causes: list[Cause] = []
        size = 0
        for key, blob in msg.data.items():
            causes += c.config_key(f"data[{key}]", key)
            size += len(blob)
        if size > MAX_DATA_BYTES:
            causes.append(c.too_long("data", MAX_DATA_BYTES))
        return causes + _secret_type(msg)

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        causes = [] if new.type == old.type else [immutable("type")]
        return causes + _immutable_data(new, old, ("data",))


def _secret_type(msg: Any) -> list[Cause]:
    data, kind = msg.data, msg.type
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        return [] if msg.metadata.annotations.get(key) else [required(f"metadata.annotations[{key}]")]
    if kind == "kubernetes.io/basic-auth":
        if "username" in data or "password" in data:
            return []
        return [required("data[username]"), required("data[password]")]
    causes = [required(f"data[{k}]") for k in _REQUIRED_KEYS.get(kind, ()) if k not in data]
    json_key = _JSON_KEYS.get(kind)
    if json_key and json_key in data:
        try:
            json.loads(data[json_key])
        except (ValueError, RecursionError) as exc:
            causes.append(invalid(f"data[{json_key}]", "<secret contents redacted>", str(exc)))
    return causes


# --- Event ----------------------------------------------------------------------------------------

class EventStrategy(Strategy):
    def validate(self, msg: Any) -> list[Cause]:
        causes: list[Cause] = []
        if not msg.HasField("involved_object"):
            causes.append(required("involvedObject"))
        ref_ns, ns = msg.involved_object.namespace, msg.metadata.namespace
        # Kubernetes' rule: a cluster-scoped object's events live in "default" (or, for
        # new-style events with eventTime, also "kube-system").
        allowed = ("", "default", "kube-system") if msg.HasField("event_time") else ("", "default")
        if (ref_ns and ref_ns != ns) or (not ref_ns and ns not in allowed):
            causes.append(invalid("involvedObject.namespace", ref_ns, "does not match event.namespace"))
        if msg.type and msg.type not in _EVENT_TYPES:
            causes.append(not_supported("type", msg.type, _EVENT_TYPES))
        if len(msg.reason) > _REASON_MAX:
            causes.append(invalid("reason", "", f"can have at most {_REASON_MAX} characters"))
        if msg.HasField("count"):
            causes += c.non_negative("count", msg.count)
        return causes


# --- ResourceQuota and Lease -------------------------------------------------------------------------

class ResourceQuotaStrategy(Strategy):
    def validate(self, msg: Any) -> list[Cause]:
        causes = c.quantity_map("spec.hard", msg.spec.hard)
        causes += c.quantity_map("status.hard", msg.status.hard)
        causes += c.quantity_map("status.used", msg.status.used)
        scopes: set[str] = set()
        for i, scope in enumerate(msg.spec.scopes):
            if scope not in _QUOTA_SCOPES:
                causes.append(not_supported(f"spec.scopes[{i}]", scope, _QUOTA_SCOPES))
            elif scope in scopes:
                causes.append(duplicate(f"spec.scopes[{i}]", scope))
            scopes.add(scope)
        for i, req in enumerate(msg.spec.scope_selector.match_expressions):
            p = f"spec.scopeSelector.matchExpressions[{i}]"
            if req.scope_name not in _QUOTA_SCOPES:
                causes.append(not_supported(f"{p}.scopeName", req.scope_name, _QUOTA_SCOPES))
            if req.operator not in c.SELECTOR_OPS:
                causes.append(not_supported(f"{p}.operator", req.operator, list(c.SELECTOR_OPS)))
        return causes


class LeaseStrategy(Strategy):
    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes: list[Cause] = []
        if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
            causes.append(invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds,
                                  "must be greater than 0"))
        causes += c.optional_non_negative(spec, "lease_transitions", "spec.leaseTransitions")
        return causes
