"""Scheduling fields of a pod spec: nodeSelector, affinity, tolerations, spread.

Validation only (Kubernetes defaults none of these): operators and their
value-count rules, label keys and values, weights, topology keys, as
validateAffinity / validateTolerations / validateTopologySpreadConstraints
state them. The scheduler reads these fields trusting that they passed here.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported

TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
_TOLERATION_OPS = ["Equal", "Exists"]
_UNSATISFIABLE = ["DoNotSchedule", "ScheduleAnyway"]
_POLICIES = ["Honor", "Ignore"]
_WEIGHT_MSG = "must be in the range 1-100"


def validate_scheduling(spec: Any, path: str) -> list[Cause]:
    causes = c.label_map(f"{path}.nodeSelector", spec.node_selector)
    if spec.HasField("affinity"):
        causes += _affinity(spec.affinity, f"{path}.affinity")
    causes += validate_tolerations(spec.tolerations, f"{path}.tolerations")
    causes += _spread(spec.topology_spread_constraints, f"{path}.topologySpreadConstraints")
    return causes


# --- node affinity -------------------------------------------------------------------

def _affinity(aff: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if aff.HasField("node_affinity"):
        causes += _node_affinity(aff.node_affinity, f"{path}.nodeAffinity")
    if aff.HasField("pod_affinity"):
        causes += _pod_affinity(aff.pod_affinity, f"{path}.podAffinity")
    if aff.HasField("pod_anti_affinity"):
        causes += _pod_affinity(aff.pod_anti_affinity, f"{path}.podAntiAffinity")
    return causes


def _node_affinity(na: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if na.HasField("required_during_scheduling_ignored_during_execution"):
        p = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
        terms = na.required_during_scheduling_ignored_during_execution.node_selector_terms
        if not terms:
            causes.append(c.required_because(f"{p}.nodeSelectorTerms",
                                             "must have at least one node selector term"))
        for i, term in enumerate(terms):
            causes += _node_term(term, f"{p}.nodeSelectorTerms[{i}]")
    for i, pref in enumerate(na.preferred_during_scheduling_ignored_during_execution):
        p = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        causes += _weight(f"{p}.weight", pref.weight)
        causes += _node_term(pref.preference, f"{p}.preference")
    return causes


def _node_term(term: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, req in enumerate(term.match_expressions):
        causes += node_requirement(req, f"{path}.matchExpressions[{i}]")
    for i, req in enumerate(term.match_fields):
        causes += _field_requirement(req, f"{path}.matchFields[{i}]")
    return causes


def node_requirement(req: Any, path: str) -> list[Cause]:
    """Kubernetes' ValidateNodeSelectorRequirement (In/NotIn/Exists/DoesNotExist/Gt/Lt)."""
    causes = c.qualified_name(f"{path}.key", req.key)
    op, values = req.operator, list(req.values)
    if op in ("In", "NotIn"):
        if not values:
            causes.append(c.required_because(
                f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            causes.append(forbidden(
                f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            causes.append(c.required_because(
                f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        elif not _is_int(values[0]):
            causes.append(invalid(f"{path}.values[0]", values[0], "must be an integer"))
    else:
        causes.append(invalid(f"{path}.operator", op, "not a valid selector operator"))
    return causes


def _is_int(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return body.isascii() and body.isdigit() and len(body) <= 19


def _field_requirement(req: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if req.key != "metadata.name":
        causes.append(invalid(f"{path}.key", req.key, "not a valid field selector key"))
    if req.operator not in ("In", "NotIn"):
        causes.append(invalid(f"{path}.operator", req.operator, "not a valid selector operator"))
    elif len(req.values) != 1:
        causes.append(c.required_because(
            f"{path}.values", "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"))
    return causes


def _weight(path: str, weight: int) -> list[Cause]:
    return [] if 1 <= weight <= 100 else [invalid(path, weight, _WEIGHT_MSG)]


# --- pod (anti-)affinity -----------------------------------------------------------------

def _pod_affinity(pa: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
        causes += _pod_term(term, f"{path}.requiredDuringSchedulingIgnoredDuringExecution[{i}]")
    for i, weighted in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
        p = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        causes += _weight(f"{p}.weight", weighted.weight)
        causes += _pod_term(weighted.pod_affinity_term, f"{p}.podAffinityTerm")
    return causes


def _pod_term(term: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not term.topology_key:
        causes.append(c.required_because(f"{path}.topologyKey", "can not be empty"))
    else:
        causes += c.qualified_name(f"{path}.topologyKey", term.topology_key)
    if term.HasField("label_selector"):
        causes += c.label_selector(f"{path}.labelSelector", term.label_selector)
    if term.HasField("namespace_selector"):
        causes += c.label_selector(f"{path}.namespaceSelector", term.namespace_selector)
    for i, ns in enumerate(term.namespaces):
        causes += c.dns_label(f"{path}.namespaces[{i}]", ns)
    return causes


# --- tolerations ----------------------------------------------------------------------------

def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, t in enumerate(tolerations):
        causes += _toleration(t, f"{path}[{i}]")
    return causes


def _toleration(t: Any, path: str) -> list[Cause]:
    causes = c.qualified_name(f"{path}.key", t.key) if t.key else []
    if not t.key and t.operator != "Exists":
        causes.append(invalid(f"{path}.operator", t.operator,
                              'operator must be Exists when `key` is empty, which means "match '
                              'all values and all keys"'))
    if t.HasField("toleration_seconds") and t.effect != "NoExecute":
        causes.append(invalid(f"{path}.effect", t.effect,
                              "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    if t.operator in ("", "Equal"):
        causes += [invalid(f"{path}.value", t.value, e) for e in c.meta_rules.label_value_errors(t.value)]
    elif t.operator == "Exists":
        if t.value:
            causes.append(invalid(f"{path}.operator", t.value,
                                  "value must be empty when `operator` is 'Exists'"))
    else:
        causes.append(not_supported(f"{path}.operator", t.operator, _TOLERATION_OPS))
    if t.effect and t.effect not in TAINT_EFFECTS:
        causes.append(not_supported(f"{path}.effect", t.effect, TAINT_EFFECTS))
    return causes


# --- topology spread ---------------------------------------------------------------------------

def _spread(constraints: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, tsc in enumerate(constraints):
        p = f"{path}[{i}]"
        if tsc.max_skew <= 0:
            causes.append(invalid(f"{p}.maxSkew", tsc.max_skew, "must be greater than zero"))
        if not tsc.topology_key:
            causes.append(c.required_because(f"{p}.topologyKey", "can not be empty"))
        else:
            causes += c.qualified_name(f"{p}.topologyKey", tsc.topology_key)
        if tsc.when_unsatisfiable not in _UNSATISFIABLE:
            causes.append(not_supported(f"{p}.whenUnsatisfiable", tsc.when_unsatisfiable, _UNSATISFIABLE))
        key = (tsc.topology_key, tsc.when_unsatisfiable)
        if key in seen:
            causes.append(duplicate(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                    f"{{{key[0]}, {key[1]}}}"))
        seen.add(key)
        causes += _spread_details(tsc, p)
    return causes


def _spread_details(tsc: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if tsc.HasField("min_domains"):
        if tsc.min_domains <= 0:
            causes.append(invalid(f"{path}.minDomains", tsc.min_domains, "must be greater than 0"))
        elif tsc.when_unsatisfiable != "DoNotSchedule":
            causes.append(invalid(f"{path}.minDomains", tsc.min_domains,
                                  "can only use minDomains if whenUnsatisfiable=DoNotSchedule"))
    for name, json_name in (("node_affinity_policy", "nodeAffinityPolicy"),
                            ("node_taints_policy", "nodeTaintsPolicy")):
        value = getattr(tsc, name)
        if value and value not in _POLICIES:
            causes.append(not_supported(f"{path}.{json_name}", value, _POLICIES))
    if tsc.HasField("label_selector"):
        causes += c.label_selector(f"{path}.labelSelector", tsc.label_selector)
    for i, key in enumerate(tsc.match_label_keys):
        causes += c.qualified_name(f"{path}.matchLabelKeys[{i}]", key)
    return causes

