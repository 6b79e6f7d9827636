"""master.reconcile.deployment and deployment_rollout: every Deployment decision, as tables.

Ends with the safety property: over random interleavings of controller
steps, ReplicaSet steps and pods turning ready, a rollout never runs more
than replicas + maxSurge pods nor has fewer than replicas - maxUnavailable
available, and it always finishes.
"""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile import deployment as dep
from master.reconcile import deployment_rollout as roll
from protos.apps.v1 import apps_pb2

NOW = 2_000_000.0


def iv(v: int | str) -> struct_pb2.Value:
    return struct_pb2.Value(number_value=v) if isinstance(v, int) else struct_pb2.Value(string_value=v)


def deployment(replicas: int = 10, *, surge: int | str = "25%", unavailable: int | str = "25%",
               strategy: str = "RollingUpdate", image: str = "nginx:1", history: int = 10,
               deadline: int | None = 600, generation: int = 1, paused: bool = False) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "default", "d-uid"
    d.metadata.generation = generation
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.strategy.rolling_update.max_surge.CopyFrom(iv(surge))
        d.spec.strategy.rolling_update.max_unavailable.CopyFrom(iv(unavailable))
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="main", image=image)
    d.spec.revision_history_limit = history
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    d.spec.paused = paused
    return d


def replicaset(name: str, spec: int, *, available: int | None = None, status: int | None = None,
               created: int = 0, revision: int = 1, desired: int | None = None,
               max_replicas: int | None = None, image: str = "nginx:1") -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = name, "default", f"uid-{name}"
    rs.metadata.creation_timestamp.seconds = created
    rs.metadata.annotations[dep.REVISION] = str(revision)
    if desired is not None:
        rs.metadata.annotations[dep.DESIRED_REPLICAS] = str(desired)
    if max_replicas is not None:
        rs.metadata.annotations[dep.MAX_REPLICAS] = str(max_replicas)
    rs.spec.replicas = spec
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="main", image=image)
    rs.status.replicas = spec if status is None else status
    avail = spec if available is None else available
    rs.status.available_replicas = rs.status.ready_replicas = avail
    return rs


# arithmetic ----------------------------------------------------------------------------

@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),    # surge rounds up, unavailable rounds down
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    (0, 0, 5, (0, 1)),             # never both zero
    ("0%", "0%", 5, (0, 1)),
    ("50%", 0, 3, (2, 0)),
    (2, 1, 5, (2, 1)),
    ("100%", "100%", 3, (3, 3)),
    ("10%", "10%", 0, (0, 1)),
])
def test_resolve_fenceposts(surge: int | str, unavailable: int | str, desired: int,
                            expected: tuple[int, int]) -> None:
    assert dep.resolve_fenceposts(iv(surge), iv(unavailable), desired) == expected


@pytest.mark.parametrize(("d", "surge", "unavailable"), [
    (deployment(10), 3, 2),
    (deployment(3, surge=0, unavailable=10), 0, 3),      # unavailable capped at replicas
    (deployment(0), 0, 0),
    (deployment(10, strategy="Recreate"), 0, 0),
])
def test_max_surge_and_unavailable(d: apps_pb2.Deployment, surge: int, unavailable: int) -> None:
    assert (dep.max_surge(d), dep.max_unavailable(d)) == (surge, unavailable)


@pytest.mark.parametrize(("x", "rounded"), [(2.5, 3), (-2.5, -3), (1.4, 1), (1.6, 2), (0.5, 1), (0.0, 0)])
def test_go_round(x: float, rounded: int) -> None:
    assert dep.go_round(x) == rounded


# hashes and templates ---------------------------------------------------------------------

def test_hash_is_stable_ignores_its_label_and_empty_objects() -> None:
    d = deployment()
    h = dep.compute_hash(d.spec.template)
    assert h == dep.compute_hash(d.spec.template) and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    t = apps_pb2.Deployment()
    t.CopyFrom(d)
    t.spec.template.metadata.labels[dep.HASH_LABEL] = h
    t.spec.template.spec.containers[0].resources.SetInParent()  # `resources: {}`
    assert dep.compute_hash(t.spec.template) == h and dep.templates_equal(t.spec.template, d.spec.template)
    assert dep.compute_hash(d.spec.template, 1) != h
    assert dep.compute_hash(deployment(image="nginx:2").spec.template) != h


def test_find_new_replicaset_is_the_oldest_with_the_template() -> None:
    d = deployment(image="nginx:2")
    rss = [replicaset("old", 3), replicaset("new-b", 0, created=20, image="nginx:2"),
           replicaset("new-a", 0, created=10, image="nginx:2")]
    new = dep.find_new_replicaset(d, rss)
    assert new is not None and new.metadata.name == "new-a"
    assert [r.metadata.name for r in dep.old_replicasets(rss, new)] == ["old", "new-b"]
    assert dep.find_new_replicaset(deployment(image="nginx:3"), rss) is None


@pytest.mark.parametrize(("current", "history", "new_revision", "expected_rev", "expected_history"), [
    (1, "", 3, "3", "1"),
    (2, "1", 4, "4", "1,2"),
    (5, "", 3, "5", None),     # never moves down
])
def test_revision_annotations(current: int, history: str, new_revision: int, expected_rev: str,
                              expected_history: str | None) -> None:
    rs = replicaset("a", 1, revision=current)
    if history:
        rs.metadata.annotations[dep.REVISION_HISTORY] = history
    out = dep.plan_revision_annotations(rs, new_revision)
    assert out[dep.REVISION] == expected_rev
    assert out.get(dep.REVISION_HISTORY) == expected_history
    assert dep.next_revision([replicaset("x", 0, revision=2), replicaset("y", 0, revision=7)]) == 8


def test_render_new_replicaset() -> None:
    d = deployment(10)
    d.metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{}"
    d.metadata.annotations["team"] = "blue"
    d.metadata.annotations[dep.REVISION] = "4"
    rs = dep.render_new_replicaset(d, revision=5, replicas=3)
    h = dep.compute_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.match_labels == {"app": "web", dep.HASH_LABEL: h}
    assert rs.spec.template.metadata.labels == {"app": "web", dep.HASH_LABEL: h}
    assert rs.metadata.labels == {"app": "web", dep.HASH_LABEL: h}
    assert dict(rs.metadata.annotations) == {"team": "blue", dep.REVISION: "5", dep.DESIRED_REPLICAS: "10",
                                             dep.MAX_REPLICAS: "13"}
    ref = rs.metadata.owner_references[0]
    assert (ref.kind, ref.uid, ref.controller) == ("Deployment", "d-uid", True)
    assert rs.spec.replicas == 3 and d.spec.template.metadata.labels == {"app": "web"}, "input untouched"


# rolling update -----------------------------------------------------------------------------

@pytest.mark.parametrize(("d", "rss", "new", "expected"), [
    (deployment(10), [replicaset("old", 10)], None, 3),               # 10 + surge 3
    (deployment(10), [replicaset("old", 10), replicaset("new", 3, available=0)], "new", 3),
    (deployment(10), [replicaset("old", 8), replicaset("new", 3, available=0)], "new", 5),
    (deployment(10), [replicaset("old", 8, status=10), replicaset("new", 3)], "new", 3),  # old pods still there
    (deployment(10), [replicaset("old", 0), replicaset("new", 10)], "new", 10),
    (deployment(10, strategy="Recreate"), [replicaset("old", 0)], None, 10),
])
def test_new_rs_replicas(d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet], new: str | None,
                         expected: int) -> None:
    new_rs = next((r for r in rss if r.metadata.name == new), None)
    assert roll.new_rs_replicas(d, rss, new_rs) == expected


@pytest.mark.parametrize(("d", "new", "old", "expected", "why"), [
    (deployment(10), replicaset("new", 0), [replicaset("old", 10)], {"new": 3}, "surge first"),
    (deployment(10), replicaset("new", 3, available=0), [replicaset("old", 10)], {"old": 8},
     "then old down to replicas - maxUnavailable available"),
    (deployment(10), replicaset("new", 3, available=0), [replicaset("old", 10, available=7)], {"old": 8},
     "unhealthy old pods go first, within the budget"),
    (deployment(10), replicaset("new", 5, available=5), [replicaset("old", 8)], {"old": 3}, "progress"),
    (deployment(10), replicaset("new", 10), [replicaset("old", 0)], {}, "done"),
    (deployment(10, surge=0, unavailable=1), replicaset("new", 0), [replicaset("old", 10)], {"old": 9},
     "no surge: make room first"),
    (deployment(4, surge=1, unavailable=0), replicaset("new", 1, available=0), [replicaset("old", 4)], {},
     "nothing available to spare: wait"),
    (deployment(10), replicaset("new", 3, available=0),
     [replicaset("older", 5, created=1, revision=1), replicaset("old", 5, created=2, revision=2)],
     {"older": 3}, "oldest first"),
])
def test_plan_rolling(d: apps_pb2.Deployment, new: apps_pb2.ReplicaSet, old: list[apps_pb2.ReplicaSet],
                      expected: dict[str, int], why: str) -> None:
    assert roll.plan_rolling(d, new, old) == expected, why


@pytest.mark.parametrize(("new", "old", "running", "expected"), [
    (None, [replicaset("old", 3)], True, {"old": 0}),
    (None, [replicaset("old", 0)], True, {}),             # wait for old pods to go
    (None, [replicaset("old", 0)], False, {}),            # caller creates the new set
    (replicaset("new", 0), [replicaset("old", 0)], False, {"new": 3}),
    (replicaset("new", 3), [replicaset("old", 0)], False, {}),
])
def test_plan_recreate(new: apps_pb2.ReplicaSet | None, old: list[apps_pb2.ReplicaSet], running: bool,
                       expected: dict[str, int]) -> None:
    d = deployment(3, strategy="Recreate")
    assert roll.plan_recreate(d, new, old, old_pods_running=running) == expected


# scaling ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("replicas", "new", "old", "expected", "why"), [
    (15, replicaset("new", 5, available=0, created=2, desired=10, max_replicas=13),
     [replicaset("old", 8, created=1, desired=10, max_replicas=13)], {"old": 12, "new": 7},
     "up, in proportion to size: 19 allowed"),
    (5, replicaset("new", 5, available=0, created=2, desired=10, max_replicas=13),
     [replicaset("old", 8, created=1, desired=10, max_replicas=13)], {"old": 4, "new": 3},
     "down, in proportion: 7 allowed"),
    (6, replicaset("new", 3, desired=3, max_replicas=4), [replicaset("old", 0)], {"new": 6},
     "one active set: just resize it"),
    (3, None, [replicaset("a", 0, created=1), replicaset("b", 0, created=2)], {"b": 3},
     "none active: the newest old one"),
    (3, replicaset("new", 3, desired=3, max_replicas=4),
     [replicaset("old", 1, desired=3, max_replicas=4)], {"old": 0}, "saturated new set: old ones to zero"),
])
def test_plan_scale(replicas: int, new: apps_pb2.ReplicaSet | None, old: list[apps_pb2.ReplicaSet],
                    expected: dict[str, int], why: str) -> None:
    assert roll.plan_scale(deployment(replicas), new, old) == expected, why


def test_is_scaling_event() -> None:
    d = deployment(10)
    assert roll.is_scaling_event(d, [replicaset("a", 5, desired=8)])
    assert not roll.is_scaling_event(d, [replicaset("a", 5, desired=10)])
    assert not roll.is_scaling_event(d, [replicaset("a", 0, desired=8)]), "inactive sets do not count"
    assert not roll.is_scaling_event(d, [replicaset("a", 5)]), "no annotation, no event"


# cleanup -------------------------------------------------------------------------------------

def test_plan_cleanup_keeps_history_limit_and_busy_sets() -> None:
    old = [replicaset(f"r{i}", 0, revision=i) for i in (4, 1, 3, 2)]
    old.append(replicaset("busy", 2, revision=0))
    # Five old sets, limit two: three go, oldest revision first; the busy one is skipped.
    victims = dep.plan_cleanup(deployment(history=2), old)
    assert [v.metadata.name for v in victims] == ["r1", "r2", "r3"]
    assert dep.plan_cleanup(deployment(history=10), old) == []
    assert [v.metadata.name for v in dep.plan_cleanup(deployment(history=0), old)] == ["r1", "r2", "r3", "r4"]


# status and conditions -------------------------------------------------------------------------

def conditions(status: apps_pb2.DeploymentStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_status_of_a_complete_rollout() -> None:
    d = deployment(3, generation=4)
    new = replicaset("new", 3)
    status = dep.compute_status(d, [new, replicaset("old", 0, status=0)], new, now=NOW)
    assert (status.observed_generation, status.replicas, status.updated_replicas, status.ready_replicas,
            status.available_replicas, status.unavailable_replicas) == (4, 3, 3, 3, 3, 0)
    assert conditions(status) == {"Available": ("True", "MinimumReplicasAvailable"),
                                  "Progressing": ("True", "NewReplicaSetAvailable")}
    msg = next(c.message for c in status.conditions if c.type == "Progressing")
    assert msg == 'ReplicaSet "new" has successfully progressed.'


@pytest.mark.parametrize(("sets", "want"), [
    ([("new", 1, 0), ("old", 10, 10)], 1),  # a surge pod not available yet is unavailable
    ([("new", 3, 1), ("old", 5, 5)], 2),     # the sets' replicas, not spec.replicas, count
    ([("new", 10, 10), ("old", 0, 2)], 0),   # more available than asked (scaling down): never negative
])
def test_unavailable_replicas_count_against_the_sets_replicas(sets: list[tuple[str, int, int]], want: int) -> None:
    """Kubernetes' calculateStatus: sum of the ReplicaSets' spec.replicas minus available, at least 0."""
    rss = [replicaset(name, spec, available=avail, status=max(spec, avail)) for name, spec, avail in sets]
    status = dep.compute_status(deployment(10, surge=1, unavailable=0), rss, rss[0], now=NOW)
    assert status.unavailable_replicas == want


def test_status_while_progressing_and_below_minimum() -> None:
    d = deployment(10)
    new = replicaset("new", 3, available=1)
    old = replicaset("old", 5, available=5)
    status = dep.compute_status(d, [new, old], new, now=NOW)
    assert status.unavailable_replicas == 2 and status.updated_replicas == 3  # (3 + 5 asked) - 6 available
    assert conditions(status) == {"Available": ("False", "MinimumReplicasUnavailable"),
                                  "Progressing": ("True", "ReplicaSetUpdated")}
    d.status.CopyFrom(status)
    later = dep.compute_status(d, [new, old], new, now=NOW + 10)
    assert later == status, "no change, no new condition times"


def test_progress_deadline_exceeded_and_requeue_time() -> None:
    d = deployment(3, deadline=600)
    new = replicaset("new", 1, available=0)
    old = replicaset("old", 3)
    d.status.CopyFrom(dep.compute_status(d, [new, old], new, now=NOW))
    assert dep.deadline_left_s(d, d.status, now=NOW + 100) == pytest.approx(500)
    stuck = dep.compute_status(d, [new, old], new, now=NOW + 601)
    assert conditions(stuck)["Progressing"] == ("False", "ProgressDeadlineExceeded")
    assert next(c.message for c in stuck.conditions if c.type == "Progressing") == \
        'ReplicaSet "new" has timed out progressing.'
    # Progress after the deadline makes it progressing again.
    d.status.CopyFrom(stuck)
    moving = dep.compute_status(d, [replicaset("new", 1, available=1), old], new, now=NOW + 700)
    assert conditions(moving)["Progressing"] == ("True", "ReplicaSetUpdated")


def test_paused_and_resumed_conditions() -> None:
    d = deployment(3, paused=True)
    paused = dep.plan_paused_condition(d, now=NOW)
    assert paused is not None and conditions(paused)["Progressing"] == ("Unknown", "DeploymentPaused")
    d.status.CopyFrom(paused)
    assert dep.plan_paused_condition(d, now=NOW) is None
    d.spec.paused = False
    resumed = dep.plan_paused_condition(d, now=NOW)
    assert resumed is not None and conditions(resumed)["Progressing"] == ("Unknown", "DeploymentResumed")


def test_set_condition_keeps_transition_time_when_status_holds() -> None:
    status = apps_pb2.DeploymentStatus()
    dep.set_condition(status, "Progressing", "True", "A", "a", now=NOW)
    dep.set_condition(status, "Progressing", "True", "B", "b", now=NOW + 50)
    c = status.conditions[0]
    assert (c.reason, c.last_transition_time.seconds, c.last_update_time.seconds) == ("B", NOW, NOW + 50)
    dep.set_condition(status, "Progressing", "False", "C", "c", now=NOW + 60)
    assert status.conditions[0].last_transition_time.seconds == NOW + 60


# the safety property ----------------------------------------------------------------------------

class Sim:
    """ReplicaSets as (spec, pods) and pods as ready flags, stepped like the real controllers."""

    def __init__(self, d: apps_pb2.Deployment) -> None:
        self.d = d
        self.specs = {"old": dep.replicas_of(d)}
        self.pods: dict[str, list[bool]] = {"old": [True] * dep.replicas_of(d)}
        self.order = ["old"]

    def rs(self, name: str) -> apps_pb2.ReplicaSet:
        pods = self.pods[name]
        rs = replicaset(name, self.specs[name], available=sum(pods), status=len(pods),
                        created=self.order.index(name), image="new" if name == "new" else "old")
        return rs

    def controller_step(self) -> None:
        if "new" not in self.specs:
            self.specs["new"], self.pods["new"] = 0, []
            self.order.append("new")
        plan = roll.plan_rolling(self.d, self.rs("new"), [self.rs("old")])
        self.specs.update(plan)

    def rs_step(self, name: str) -> None:
        pods, spec = self.pods.get(name, []), self.specs.get(name, 0)
        if len(pods) < spec:
            pods.extend([False] * (spec - len(pods)))
        elif len(pods) > spec:
            pods.sort()  # not-ready pods are deleted first
            del pods[: len(pods) - spec]

    def ready_one(self, index: int) -> None:
        unready = [(n, i) for n, ps in self.pods.items() for i, r in enumerate(ps) if not r]
        if unready:
            n, i = unready[index % len(unready)]
            self.pods[n][i] = True

    def totals(self) -> tuple[int, int]:
        return sum(len(p) for p in self.pods.values()), sum(sum(p) for p in self.pods.values())

    def done(self) -> bool:
        return self.pods.get("new", []) == [True] * dep.replicas_of(self.d) and not self.pods["old"]


fencepost = st.one_of(st.integers(0, 5), st.sampled_from(["0%", "10%", "25%", "50%", "100%"]))


@settings(max_examples=300, deadline=None)
@given(replicas=st.integers(1, 12), surge=fencepost, unavailable=fencepost,
       steps=st.lists(st.tuples(st.sampled_from(["controller", "old", "new", "ready"]), st.integers(0, 50)),
                      max_size=120))
def test_rollout_stays_within_surge_and_unavailable(replicas: int, surge: int | str, unavailable: int | str,
                                                     steps: list[tuple[str, int]]) -> None:
    d = deployment(replicas, surge=surge, unavailable=unavailable)
    max_pods = replicas + dep.max_surge(d)
    min_available = replicas - dep.max_unavailable(d)
    sim = Sim(d)

    def check(where: str) -> None:
        pods, available = sim.totals()
        assert pods <= max_pods, f"{pods} pods > {max_pods} after {where}"
        assert available >= min_available, f"{available} available < {min_available} after {where}"

    for action, arg in steps:
        if action == "controller":
            sim.controller_step()
        elif action == "ready":
            sim.ready_one(arg)
        else:
            sim.rs_step(action)
        check(action)
    # Fair scheduling from here on: the rollout always finishes.
    for _ in range(10 * (replicas + 5)):
        if sim.done():
            break
        sim.controller_step()
        check("controller")
        for name in ("old", "new"):
            sim.rs_step(name)
            check(name)
        sim.ready_one(0)
        check("ready")
    assert sim.done(), (sim.specs, sim.pods)
