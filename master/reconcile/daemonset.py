"""The DaemonSet reconciler: one pod per eligible node, rolled by template hash.

`plan_daemonset(ds, nodes, pods, now=...)` is a pure function of the
DaemonSet, every Node, the pods the DaemonSet controls and the time; it
returns a `Plan` (pods to create, pods to delete, the new status). The
controller in master/controllers/daemonset.py applies it.

Eligibility (`node_should_run`) follows Kubernetes' NodeShouldRunDaemonPod:
the template's nodeSelector and required node affinity must match, and every
NoSchedule/NoExecute taint must be tolerated by the template's tolerations
plus the ones Kubernetes adds to daemon pods (`DAEMON_TOLERATIONS`). A pod
already on a node whose only untolerated taints are NoSchedule keeps running
there (it is counted misscheduled but not deleted).

Placement (Kubernetes' ScheduleDaemonSetPods, the only way since 1.17): a
new pod has no spec.nodeName; the template's required node affinity terms
are replaced by the single term `matchFields metadata.name In [node]`
(ReplaceDaemonSetPodNodeNameNodeAffinity), and the scheduler binds it, so
resource fit, host ports and the rest are checked as for any pod: a daemon
pod that does not fit its node stays Pending with the scheduler's
FailedScheduling reasons. Daemon pods need a running scheduler, as in
Kubernetes (inside flotilla-master it shares the controllers' lease; a
standalone one holds kube-system/flotilla-scheduler). A pod's node (`target_node`,
Kubernetes' GetTargetNodeName) is spec.nodeName once bound, else the value
of that matchFields term, so a pod the scheduler has not bound yet counts on
its node (it is not created twice, it counts in currentNumberScheduled and
updatedNumberScheduled, not in numberReady), and it goes when its node goes.
A pod with neither is left alone until the scheduler binds it (Kubernetes
skips it too).

Revisions: ControllerRevision is not a served kind, so the revision is the
template hash (`template_hash`) in the pod label controller-revision-hash.

Invariants: at most one live pod per node except while RollingUpdate surges
(old + new, until the new one is available); no pod is created on a node
while a pod of this DaemonSet is still terminating there.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from master.reconcile.workloadpods import (
    REVISION_HASH_LABEL,
    WARNING,
    Plan,
    available_in_s,
    copy_message,
    is_ready,
    is_terminal,
    is_terminating,
    pod_from_template,
    requirement_matches,
    scaled_value,
    selector_matches,
    template_hash,
)
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2

TEMPLATE_GENERATION_LABEL = "pod-template-generation"

DAEMON_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")
NODE_NAME_FIELD = "metadata.name"


def target_node(pod: core_pb2.Pod) -> str:
    """The node a daemon pod is for: spec.nodeName once bound, else its required affinity's node.

    Kubernetes' GetTargetNodeName: the first matchFields requirement `metadata.name In
    [NODE]` of any required node selector term; one with other than exactly one value is
    not a node. "" when there is none (the pod is not counted on any node).
    """
    if pod.spec.node_name:
        return pod.spec.node_name
    affinity = pod.spec.affinity.node_affinity
    if not affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return ""
    for term in affinity.required_during_scheduling_ignored_during_execution.node_selector_terms:
        for req in term.match_fields:
            if req.key == NODE_NAME_FIELD and req.operator == "In":
                return req.values[0] if len(req.values) == 1 else ""
    return ""


# --- eligibility --------------------------------------------------------------------------

def daemon_tolerations(spec: core_pb2.PodSpec) -> list[core_pb2.Toleration]:
    """The template's tolerations plus Kubernetes' daemon pod tolerations (no duplicates)."""
    result = list(spec.tolerations)
    extra = list(DAEMON_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if spec.host_network else [])
    for key, effect in extra:
        if not any(t.key == key and t.effect == effect and t.operator == "Exists" for t in result):
            result.append(core_pb2.Toleration(key=key, operator="Exists", effect=effect))
    return result


def tolerates(toleration: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == taint.key
    return toleration.key == taint.key and toleration.value == taint.value


def node_affinity_matches(spec: core_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """nodeSelector AND (any required node selector term)."""
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    affinity = spec.affinity.node_affinity
    if not affinity.HasField("required_during_scheduling_ignored_during_execution"):
        return True
    terms = affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
    return any(_term_matches(term, node) for term in terms)


def _term_matches(term: core_pb2.NodeSelectorTerm, node: core_pb2.Node) -> bool:
    if not term.match_expressions and not term.match_fields:
        return False  # an empty term matches nothing
    fields = {NODE_NAME_FIELD: node.metadata.name}
    return (all(_expression(r, node.metadata.labels) for r in term.match_expressions)
            and all(_expression(r, fields) for r in term.match_fields))


def _expression(req: core_pb2.NodeSelectorRequirement, labels: Any) -> bool:
    return requirement_matches(req.key, req.operator, list(req.values), labels)


def node_should_run(spec: core_pb2.PodSpec, node: core_pb2.Node, *,
                    tolerations: list[core_pb2.Toleration] | None = None) -> tuple[bool, bool]:
    """(should run, should continue running) for a daemon pod with `spec` on `node`."""
    if spec.node_name and spec.node_name != node.metadata.name:
        return False, False
    if not node_affinity_matches(spec, node):
        return False, False
    if tolerations is None:
        tolerations = daemon_tolerations(spec)
    untolerated = [t for t in node.spec.taints if t.effect in ("NoSchedule", "NoExecute")
                   and not any(tolerates(tol, t) for tol in tolerations)]
    if not untolerated:
        return True, True
    return False, not any(t.effect == "NoExecute" for t in untolerated)


# --- the plan --------------------------------------------------------------------------------

def new_daemon_pod(ds: apps_pb2.DaemonSet, node_name: str, revision: str) -> core_pb2.Pod:
    """A pod for `node_name`, left for the scheduler to bind (no spec.nodeName)."""
    labels = {REVISION_HASH_LABEL: revision,
              TEMPLATE_GENERATION_LABEL: str(ds.metadata.generation)}
    pod = pod_from_template(ds.spec.template, ds, api_version="apps/v1", kind="DaemonSet",
                            generate_name=f"{ds.metadata.name}-", labels=labels)
    spec = pod.spec
    tolerations = daemon_tolerations(spec)
    del spec.tolerations[:]
    spec.tolerations.extend(tolerations)
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    term = required.node_selector_terms.add()
    term.match_fields.add(key=NODE_NAME_FIELD, operator="In", values=[node_name])
    return pod


def plan_daemonset(
    ds: apps_pb2.DaemonSet,
    nodes: list[core_pb2.Node],
    pods: list[core_pb2.Pod],
    *,
    now: datetime,
) -> Plan:
    """Creates, deletes and status for one DaemonSet. `pods` are the ones it controls."""
    plan = Plan()
    revision = template_hash(ds.spec.template)
    min_ready = ds.spec.min_ready_seconds
    by_node: dict[str, list[core_pb2.Pod]] = defaultdict(list)
    for pod in pods:
        node_name = target_node(pod)
        if node_name and selector_matches(ds.spec.selector, pod.metadata.labels):
            by_node[node_name].append(pod)
    node_names = {n.metadata.name for n in nodes}

    seen: dict[str, bool] = {}

    def available(pod: core_pb2.Pod) -> bool:
        name = pod.metadata.name
        if name not in seen:
            wait = available_in_s(pod, min_ready, now)
            if wait is not None and wait > 0:
                plan.requeue(wait)
            seen[name] = wait == 0.0
        return seen[name]

    tolerations = daemon_tolerations(ds.spec.template.spec)
    eligible: dict[str, list[core_pb2.Pod]] = {}
    misscheduled = 0
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        node_pods = by_node.get(name, [])
        for pod in node_pods:
            if is_terminal(pod) and not is_terminating(pod):
                plan.deletes.append(pod.metadata.name)
                if pod.status.phase == "Failed":
                    plan.events.append((WARNING, "FailedDaemonPod",
                                        f"Found failed daemon pod {pod.metadata.namespace}/"
                                        f"{pod.metadata.name} on node {name}, will try to kill it"))
        live = [p for p in node_pods if not is_terminal(p) and not is_terminating(p)]
        terminating = any(is_terminating(p) for p in node_pods)
        should_run, should_continue = node_should_run(ds.spec.template.spec, node,
                                                      tolerations=tolerations)
        if should_run:
            eligible[name] = live
            if not live and not terminating:
                plan.creates.append(new_daemon_pod(ds, name, revision))
        elif live:
            misscheduled += 1
            if not should_continue:
                plan.deletes.extend(p.metadata.name for p in live)
    for name, node_pods in by_node.items():
        # The node left: bound pods have no agent to confirm their end, unbound ones
        # would never be scheduled (Kubernetes' getUnscheduledPodsWithoutNode).
        if name not in node_names:
            plan.force_deletes.extend(p.metadata.name for p in node_pods)

    desired = len(eligible)
    _plan_update(ds, eligible, revision, desired, available, plan)
    plan.status = _status(ds, eligible, revision, misscheduled, available)
    return plan


def _plan_update(
    ds: apps_pb2.DaemonSet,
    eligible: dict[str, list[core_pb2.Pod]],
    revision: str,
    desired: int,
    available: Any,
    plan: Plan,
) -> None:
    strategy = ds.spec.update_strategy
    rolling = strategy.type in ("", "RollingUpdate")
    ru = strategy.rolling_update
    max_surge = scaled_value(ru.max_surge if ru.HasField("max_surge") else None, desired,
                             round_up=True, default=0) if rolling else 0
    max_unavailable = scaled_value(ru.max_unavailable if ru.HasField("max_unavailable") else None,
                                   desired, round_up=True, default=1) if rolling else 0
    if rolling and max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    unavailable = sum(1 for live in eligible.values() if not any(available(p) for p in live))
    surging = sum(1 for live in eligible.values()
                  if any(_rev(p) == revision for p in live) and any(_rev(p) != revision for p in live))
    budget_unavailable = max_unavailable - unavailable
    budget_surge = max_surge - surging
    for name, live in eligible.items():
        new = [p for p in live if _rev(p) == revision]
        old = [p for p in live if _rev(p) != revision]
        # Duplicates: keep one new pod (or one old when there is no new one).
        # Keep the best pod of each kind: available first, then by name (stable).
        new.sort(key=lambda p: (not available(p), p.metadata.name))
        old.sort(key=lambda p: (not available(p), p.metadata.name))
        keep_new = new[:1]
        plan.deletes.extend(p.metadata.name for p in new[1:])
        if new and old:
            if not rolling or any(available(p) for p in keep_new) or max_surge == 0:
                plan.deletes.extend(p.metadata.name for p in old)
            continue
        plan.deletes.extend(p.metadata.name for p in old[1:])
        if not old or not rolling:
            continue
        pod = old[0]
        if not available(pod):
            plan.deletes.append(pod.metadata.name)  # an unavailable old pod costs nothing to replace
        elif max_surge > 0:
            if budget_surge > 0:
                budget_surge -= 1
                plan.creates.append(new_daemon_pod(ds, name, revision))
        elif budget_unavailable > 0:
            budget_unavailable -= 1
            plan.deletes.append(pod.metadata.name)


def _rev(pod: core_pb2.Pod) -> str:
    return pod.metadata.labels.get(REVISION_HASH_LABEL, "")


def _status(
    ds: apps_pb2.DaemonSet,
    eligible: dict[str, list[core_pb2.Pod]],
    revision: str,
    misscheduled: int,
    available: Any,
) -> apps_pb2.DaemonSetStatus:
    status = copy_message(ds.status)
    status.desired_number_scheduled = len(eligible)
    # "Scheduled" is Kubernetes' word for "has a daemon pod for it": a pod the scheduler
    # has not bound yet counts (updateDaemonSetStatus groups by GetTargetNodeName).
    status.current_number_scheduled = sum(1 for live in eligible.values() if live)
    status.number_misscheduled = misscheduled
    status.number_ready = sum(1 for live in eligible.values() if any(is_ready(p) for p in live))
    status.number_available = sum(1 for live in eligible.values() if any(available(p) for p in live))
    status.updated_number_scheduled = sum(
        1 for live in eligible.values() if any(_rev(p) == revision for p in live))
    status.number_unavailable = max(0, len(eligible) - status.number_available)
    status.observed_generation = ds.metadata.generation
    return status
