"""Replicated workloads: Deployment, ReplicaSet, ReplicationController, DaemonSet, StatefulSet.

Defaults are Kubernetes' apps/v1 and core/v1 SetDefaults_* (replicas 1,
rolling-update strategies, history limits, the pod template's defaults);
validation is ValidateDeploymentSpec and friends: a non-empty selector that
selects the template's labels, restartPolicy Always, sane rollout
parameters. On update, an apps/v1 selector is immutable and a StatefulSet
may change only the fields Kubernetes lists.

Pure: no I/O. The controllers that act on these objects trust what passed here.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.base import Strategy
from master.apiserver.admission.pod import default_template, template_matches, validate_template
from master.apiserver.errors import Cause, forbidden, immutable, invalid, not_supported, required

_ALWAYS = ["Always"]
_DEPLOYMENT_STRATEGIES = ["Recreate", "RollingUpdate"]
_SET_STRATEGIES = ["OnDelete", "RollingUpdate"]
_POD_MANAGEMENT = ["OrderedReady", "Parallel"]
_RETENTION = ["Delete", "Retain"]
STATEFULSET_UPDATE_MSG = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)


def set_default(msg: Any, name: str, value: Any) -> None:
    """Set an `optional` scalar only when the client left it unset."""
    if not msg.HasField(name):
        setattr(msg, name, value)


def value_unset(msg: Any, name: str) -> bool:
    """An IntOrString (google.protobuf.Value) field that holds nothing."""
    return not msg.HasField(name) or getattr(msg, name).WhichOneof("kind") in (None, "null_value")


# --- rules shared by the replicated kinds ---------------------------------------------------

def apps_selector(spec: Any, kind: str) -> list[Cause]:
    """apps/v1: selector required, not empty, valid, and selecting the template."""
    if not spec.HasField("selector"):
        return [required("spec.selector")]
    causes = c.label_selector("spec.selector", spec.selector)
    if c.selector_is_empty(spec.selector):
        causes.append(c.invalid_shown("spec.selector", "{}", f"empty selector is invalid for {kind.lower()}"))
    elif not causes:
        labels = spec.template.metadata.labels
        causes += template_matches("spec.template", labels, c.selector_matches(spec.selector, labels))
    return causes


def replicated_template(spec: Any, kind: str) -> list[Cause]:
    """The template of a kind whose pods must keep running (restartPolicy Always)."""
    causes = validate_template(spec.template, "spec.template", restart_policies=_ALWAYS)
    if spec.template.spec.HasField("active_deadline_seconds"):
        causes.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                                f"activeDeadlineSeconds in {kind} is not Supported"))
    return causes


def counts(spec: Any, *fields: tuple[str, str]) -> list[Cause]:
    causes: list[Cause] = []
    for name, json_name in fields:
        if spec.DESCRIPTOR.fields_by_name[name].has_presence and not spec.HasField(name):
            continue
        causes += c.non_negative(f"spec.{json_name}", getattr(spec, name))
    return causes


def selector_unchanged(new: Any, old: Any) -> list[Cause]:
    return [] if c.same(new.spec.selector, old.spec.selector) else [immutable("spec.selector")]


# --- Deployment -------------------------------------------------------------------------------

class DeploymentStrategy(Strategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec
        set_default(spec, "replicas", 1)
        set_default(spec, "revision_history_limit", 10)
        set_default(spec, "progress_deadline_seconds", 600)
        strategy = spec.strategy
        strategy.type = strategy.type or "RollingUpdate"
        if strategy.type == "RollingUpdate":
            ru = strategy.rolling_update
            ru.SetInParent()
            if value_unset(ru, "max_unavailable"):
                ru.max_unavailable.string_value = "25%"
            if value_unset(ru, "max_surge"):
                ru.max_surge.string_value = "25%"
        default_template(spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = counts(spec, ("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds"),
                        ("revision_history_limit", "revisionHistoryLimit"),
                        ("progress_deadline_seconds", "progressDeadlineSeconds"))
        causes += apps_selector(spec, "Deployment")
        causes += replicated_template(spec, "Deployment")
        causes += _deployment_strategy(spec.strategy, "spec.strategy")
        if spec.HasField("progress_deadline_seconds") and spec.progress_deadline_seconds <= spec.min_ready_seconds:
            causes.append(invalid("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                                  "must be greater than minReadySeconds"))
        return causes

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return selector_unchanged(new, old)


def _deployment_strategy(strategy: Any, path: str) -> list[Cause]:
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [forbidden(f"{path}.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy.type != "RollingUpdate":
        return [not_supported(f"{path}.type", strategy.type, _DEPLOYMENT_STRATEGIES)]
    ru, p = strategy.rolling_update, f"{path}.rollingUpdate"
    causes = c.positive_int_or_percent(f"{p}.maxUnavailable", ru.max_unavailable)
    causes += c.positive_int_or_percent(f"{p}.maxSurge", ru.max_surge)
    if not causes and c.int_or_percent_value(ru.max_unavailable) == 0 == c.int_or_percent_value(ru.max_surge):
        causes.append(invalid(f"{p}.maxUnavailable", c.int_or_string(ru.max_unavailable),
                              "may not be 0 when `maxSurge` is 0"))
    causes += c.not_more_than_100_percent(f"{p}.maxUnavailable", ru.max_unavailable)
    return causes


# --- ReplicaSet and ReplicationController --------------------------------------------------------

class ReplicaSetStrategy(Strategy):
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")
        msg.status.replicas = 0  # always printed by Kubernetes, required by clients

    def default(self, msg: Any) -> None:
        set_default(msg.spec, "replicas", 1)
        default_template(msg.spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = counts(spec, ("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds"))
        causes += apps_selector(spec, "ReplicaSet")
        return causes + replicated_template(spec, "ReplicaSet")

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return selector_unchanged(new, old)


class ReplicationControllerStrategy(ReplicaSetStrategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec
        labels = spec.template.metadata.labels
        if not spec.selector and labels:
            spec.selector.update(labels)
        if not msg.metadata.labels and labels:
            msg.metadata.labels.update(labels)
        set_default(spec, "replicas", 1)
        if spec.HasField("template"):
            default_template(spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = counts(spec, ("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds"))
        causes += c.label_map("spec.selector", spec.selector)
        if not spec.selector:
            causes.append(required("spec.selector"))
        if not spec.HasField("template"):
            return causes + [required("spec.template")]
        labels = spec.template.metadata.labels
        matches = all(labels.get(k) == v for k, v in spec.selector.items())
        causes += template_matches("spec.template", labels, matches or not spec.selector)
        return causes + replicated_template(spec, "ReplicationController")

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return []  # a ReplicationController's selector may change


# --- DaemonSet ------------------------------------------------------------------------------------

class DaemonSetStrategy(Strategy):
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")
        status = msg.status
        status.current_number_scheduled = status.number_misscheduled = 0
        status.desired_number_scheduled = status.number_ready = 0

    def default(self, msg: Any) -> None:
        spec = msg.spec
        set_default(spec, "revision_history_limit", 10)
        us = spec.update_strategy
        us.type = us.type or "RollingUpdate"
        if us.type == "RollingUpdate":
            us.rolling_update.SetInParent()
            if value_unset(us.rolling_update, "max_unavailable"):
                us.rolling_update.max_unavailable.number_value = 1
            if value_unset(us.rolling_update, "max_surge"):
                us.rolling_update.max_surge.number_value = 0
        default_template(spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = counts(spec, ("min_ready_seconds", "minReadySeconds"),
                        ("revision_history_limit", "revisionHistoryLimit"))
        causes += apps_selector(spec, "DaemonSet")
        causes += replicated_template(spec, "DaemonSet")
        return causes + _daemonset_strategy(spec.update_strategy, "spec.updateStrategy")

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return selector_unchanged(new, old)


def _daemonset_strategy(us: Any, path: str) -> list[Cause]:
    if us.type not in _SET_STRATEGIES:
        return [not_supported(f"{path}.type", us.type, _SET_STRATEGIES)]
    if us.type != "RollingUpdate":
        return []
    ru, p = us.rolling_update, f"{path}.rollingUpdate"
    causes = c.positive_int_or_percent(f"{p}.maxUnavailable", ru.max_unavailable)
    causes += c.positive_int_or_percent(f"{p}.maxSurge", ru.max_surge)
    causes += c.not_more_than_100_percent(f"{p}.maxUnavailable", ru.max_unavailable)
    causes += c.not_more_than_100_percent(f"{p}.maxSurge", ru.max_surge)
    if causes:
        return causes
    unavailable = c.int_or_percent_value(ru.max_unavailable) != 0
    surge = c.int_or_percent_value(ru.max_surge) != 0
    if unavailable and surge:
        causes.append(invalid(f"{p}.maxSurge", c.int_or_string(ru.max_surge),
                              "may not be set when maxUnavailable is non-zero"))
    elif not unavailable and not surge:
        causes.append(c.required_because(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return causes


# --- StatefulSet ----------------------------------------------------------------------------------

class StatefulSetStrategy(Strategy):
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")
        msg.status.replicas = 0

    def default(self, msg: Any) -> None:
        spec = msg.spec
        set_default(spec, "replicas", 1)
        set_default(spec, "revision_history_limit", 10)
        spec.pod_management_policy = spec.pod_management_policy or "OrderedReady"
        us = spec.update_strategy
        us.type = us.type or "RollingUpdate"
        if us.type == "RollingUpdate":
            set_default(us.rolling_update, "partition", 0)
        policy = spec.persistent_volume_claim_retention_policy
        policy.when_deleted = policy.when_deleted or "Retain"
        policy.when_scaled = policy.when_scaled or "Retain"
        for pvc in spec.volume_claim_templates:
            pvc.spec.volume_mode = pvc.spec.volume_mode or "Filesystem"
            pvc.status.phase = pvc.status.phase or "Pending"
        default_template(spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = counts(spec, ("replicas", "replicas"), ("min_ready_seconds", "minReadySeconds"),
                        ("revision_history_limit", "revisionHistoryLimit"))
        causes += c.non_negative("spec.ordinals.start", spec.ordinals.start)
        causes += apps_selector(spec, "StatefulSet")
        causes += validate_template(spec.template, "spec.template", restart_policies=_ALWAYS)
        if spec.pod_management_policy not in _POD_MANAGEMENT:
            causes.append(not_supported("spec.podManagementPolicy", spec.pod_management_policy, _POD_MANAGEMENT))
        if spec.service_name:
            causes += c.dns_label("spec.serviceName", spec.service_name)
        causes += _statefulset_strategy(spec.update_strategy, "spec.updateStrategy")
        causes += _retention(spec.persistent_volume_claim_retention_policy)
        for i, pvc in enumerate(spec.volume_claim_templates):
            p = f"spec.volumeClaimTemplates[{i}].metadata.name"
            causes += c.dns_subdomain(p, pvc.metadata.name) if pvc.metadata.name else [required(p)]
        return causes

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        clone = type(new.spec)()
        clone.CopyFrom(new.spec)
        for name in ("replicas", "template", "update_strategy", "min_ready_seconds", "ordinals",
                     "revision_history_limit", "persistent_volume_claim_retention_policy"):
            clone.ClearField(name)
            # Copying an unset message field would make it present: copy only what is set.
            if not _has_presence(old.spec, name) or old.spec.HasField(name):
                _copy_field(clone, old.spec, name)
        causes = selector_unchanged(new, old)
        if not c.same(clone, old.spec):
            causes.append(forbidden("spec", STATEFULSET_UPDATE_MSG))
        return causes


def _has_presence(msg: Any, name: str) -> bool:
    return bool(msg.DESCRIPTOR.fields_by_name[name].has_presence)


def _copy_field(dst: Any, src: Any, name: str) -> None:
    value = getattr(src, name)
    if hasattr(value, "CopyFrom"):
        getattr(dst, name).CopyFrom(value)
    else:
        setattr(dst, name, value)


def _statefulset_strategy(us: Any, path: str) -> list[Cause]:
    if us.type not in _SET_STRATEGIES:
        return [not_supported(f"{path}.type", us.type, _SET_STRATEGIES)]
    ru, p = us.rolling_update, f"{path}.rollingUpdate"
    if us.type == "OnDelete":
        if us.HasField("rolling_update"):
            return [c.invalid_shown(p, "{...}", "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    causes = c.optional_non_negative(ru, "partition", f"{p}.partition")
    if not value_unset(ru, "max_unavailable"):
        errs = c.positive_int_or_percent(f"{p}.maxUnavailable", ru.max_unavailable)
        errs += c.not_more_than_100_percent(f"{p}.maxUnavailable", ru.max_unavailable)
        if not errs and c.int_or_percent_value(ru.max_unavailable) == 0:
            errs.append(invalid(f"{p}.maxUnavailable", c.int_or_string(ru.max_unavailable), "cannot be 0"))
        causes += errs
    return causes


def _retention(policy: Any) -> list[Cause]:
    causes: list[Cause] = []
    path = "spec.persistentVolumeClaimRetentionPolicy"
    for name, json_name in (("when_deleted", "whenDeleted"), ("when_scaled", "whenScaled")):
        value = getattr(policy, name)
        if value not in _RETENTION:
            causes.append(not_supported(f"{path}.{json_name}", value, _RETENTION))
    return causes
