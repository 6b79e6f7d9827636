"""Pods and pod templates: what only a Pod object gets, and the template helpers.

`PodStrategy` adds to the shared pod-spec rules (`podspec.py`) what
Kubernetes' SetDefaults_Pod, the ServiceAccount admission plugin and the pod
registry do: requests defaulted from limits, serviceAccountName "default",
enableServiceLinks, status Pending with the QoS class on create, and the
update rule that a pod's spec is fixed except for images, a shorter
activeDeadlineSeconds and added tolerations. spec.nodeName is written only
through pods/binding, which skips `validate_update`.

`default_template` / `validate_template` are the pod template rules every
workload kind reuses with its own path prefix.

Pure: no I/O.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.base import Strategy
from master.apiserver.admission.containers import default_requests_from_limits
from master.apiserver.admission.podspec import default_pod_spec, validate_pod_spec
from master.apiserver.admission.quantity import try_parse
from master.apiserver.errors import Cause, forbidden, invalid, not_supported

POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)
_QOS_RESOURCES = ("cpu", "memory")


# --- pod templates -------------------------------------------------------------------

def default_template(template: Any) -> None:
    default_pod_spec(template.spec)


def validate_template(template: Any, path: str, *, restart_policies: list[str] | None = None) -> list[Cause]:
    """The template's labels, annotations and pod spec, under `path` ("spec.template")."""
    meta = template.metadata
    causes = c.label_map(f"{path}.metadata.labels", meta.labels)
    for key in meta.annotations:
        causes += c.qualified_name(f"{path}.metadata.annotations", key.lower())
    causes += validate_pod_spec(template.spec, f"{path}.spec")
    policy = template.spec.restart_policy
    if restart_policies is not None and policy not in restart_policies:
        if policy in ("Always", "Never", "OnFailure"):  # else validate_pod_spec reported it
            causes.append(not_supported(f"{path}.spec.restartPolicy", policy, restart_policies))
    return causes


def template_matches(path: str, labels: Any, matches: bool) -> list[Cause]:
    """Kubernetes' "`selector` does not match template `labels`" cause."""
    if matches:
        return []
    return [c.invalid_shown(f"{path}.metadata.labels", c.go_map(labels),
                            "`selector` does not match template `labels`")]


# --- QoS ---------------------------------------------------------------------------------

def compute_qos(spec: Any) -> str:
    """Kubernetes' GetPodQOS over cpu and memory: Guaranteed, Burstable or BestEffort."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for ctr in list(spec.containers) + list(spec.init_containers):
        _add_nonzero(requests, ctr.resources.requests)
        found = _add_nonzero(limits, ctr.resources.limits)
        if set(found) != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(requests[k] == limits[k] for k in requests):
        return "Guaranteed"
    return "Burstable"


def _add_nonzero(totals: dict[str, Fraction], values: Any) -> list[str]:
    found = []
    for name in _QOS_RESOURCES:
        value = try_parse(values[name]) if name in values else None
        if value:
            total = totals.get(name)
            totals[name] = value if total is None else total + value
            found.append(name)
    return found


# --- the Pod strategy ------------------------------------------------------------------------

class PodStrategy(Strategy):
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")
        msg.status.phase = "Pending"

    def default(self, msg: Any) -> None:
        spec = msg.spec
        default_pod_spec(spec)
        for ctr in list(spec.init_containers) + list(spec.containers):
            default_requests_from_limits(ctr)
        account = spec.service_account_name or spec.service_account or "default"
        spec.service_account_name = spec.service_account = account
        if not spec.HasField("enable_service_links"):
            spec.enable_service_links = True
        if msg.status.phase and not msg.status.qos_class:
            msg.status.qos_class = compute_qos(spec)

    def validate(self, msg: Any) -> list[Cause]:
        return validate_pod_spec(msg.spec, "spec")

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        causes = _deadline_update(new.spec, old.spec)
        causes += _tolerations_update(new.spec.tolerations, old.spec.tolerations)
        munged = type(new.spec)()
        munged.CopyFrom(new.spec)
        _restore_mutable(munged, old.spec)
        if not c.same(munged, old.spec):
            causes.append(forbidden("spec", POD_UPDATE_MSG))
        return causes


def _deadline_update(new: Any, old: Any) -> list[Cause]:
    path = "spec.activeDeadlineSeconds"
    if not old.HasField("active_deadline_seconds"):
        return []
    if not new.HasField("active_deadline_seconds"):
        return [invalid(path, "nil", "must not update from a positive integer to nil value")]
    if new.active_deadline_seconds > old.active_deadline_seconds:
        return [invalid(path, new.active_deadline_seconds, "must be less than or equal to previous value")]
    return []


def _tolerations_update(new: Any, old: Any) -> list[Cause]:
    """Every old toleration is still there (its tolerationSeconds may change)."""
    def key(t: Any) -> tuple[str, str, str, str]:
        return (t.key, t.operator, t.value, t.effect)

    kept = {key(t) for t in new}
    if any(key(t) not in kept for t in old):
        return [forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds")]
    return []


def _restore_mutable(munged: Any, old: Any) -> None:
    """Put the old values back into the fields a pod update may change."""
    for field in ("containers", "init_containers"):
        new_list, old_list = getattr(munged, field), getattr(old, field)
        if len(new_list) == len(old_list):
            for n, o in zip(new_list, old_list, strict=True):
                n.image = o.image
    if old.HasField("active_deadline_seconds"):
        munged.active_deadline_seconds = old.active_deadline_seconds
    else:
        munged.ClearField("active_deadline_seconds")
    del munged.tolerations[:]
    munged.tolerations.extend(old.tolerations)
    if old.termination_grace_period_seconds < 0 and munged.termination_grace_period_seconds == 1:
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds

