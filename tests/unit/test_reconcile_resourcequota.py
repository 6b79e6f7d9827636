"""Table tests for quota arithmetic and admission decisions (master/reconcile/resourcequota.py)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.reconcile import resourcequota as rq
from protos.core.v1 import core_pb2


def pod(*containers: dict[str, dict[str, str]], init: tuple[dict[str, dict[str, str]], ...] = (),
        phase: str = "", deleting: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = "p"
    for i, res in enumerate(containers):
        c = p.spec.containers.add(name=f"c{i}")
        c.resources.requests.update(res.get("requests", {}))
        c.resources.limits.update(res.get("limits", {}))
    for i, res in enumerate(init):
        c = p.spec.init_containers.add(name=f"i{i}")
        c.resources.requests.update(res.get("requests", {}))
        c.resources.limits.update(res.get("limits", {}))
    p.status.phase = phase
    if deleting:
        p.metadata.deletion_timestamp.GetCurrentTime()
    return p


F = Fraction


@pytest.mark.parametrize(("value", "binary", "text"), [
    (F(0), False, "0"),
    (F(2), False, "2"),
    (F(3, 2), False, "1500m"),
    (F(1, 10), False, "100m"),
    (F(2000), False, "2k"),
    (F(1, 10**10), False, "1n"),
    (F(2**30), True, "1Gi"),
    (F(1536 * 2**20), True, "1536Mi"),
    (F(1000), True, "1000"),
    (F(1, 2), True, "500m"),
    (F(10**9), False, "1G"),
    (F(-3), False, "-3"),
])
def test_format_quantity(value: Fraction, binary: bool, text: str) -> None:
    assert rq.format_quantity(value, binary=binary) == text


@pytest.mark.parametrize(("p", "want"), [
    (pod({"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
         {"requests": {"cpu": "250m"}}),
     {"pods": F(1), "count/pods": F(1), "requests.cpu": F(1, 2), "cpu": F(1, 2),
      "requests.memory": F(64 * 2**20), "memory": F(64 * 2**20), "limits.cpu": F(1),
      "limits.memory": F(0)}),
    # An init container larger than the sum of the app containers wins.
    (pod({"requests": {"cpu": "100m"}}, init=({"requests": {"cpu": "2"}},)),
     {"requests.cpu": F(2)}),
    (pod({"requests": {"cpu": "1"}}, phase="Succeeded"), {}),
    (pod({"requests": {"cpu": "1"}}, phase="Failed"), {}),
    (pod({"requests": {"cpu": "1"}}, deleting=True), {}),
])
def test_pod_usage(p: core_pb2.Pod, want: dict[str, Fraction]) -> None:
    got = rq.usage_of("pods", "", p)
    assert {k: got[k] for k in want} == want
    if not want:
        assert got == {}


@pytest.mark.parametrize(("resource", "group", "want"), [
    ("configmaps", "", {"count/configmaps": F(1), "configmaps": F(1)}),
    ("services", "", {"count/services": F(1), "services": F(1)}),
    ("deployments", "apps", {"count/deployments.apps": F(1)}),
    ("events", "", {"count/events": F(1)}),
])
def test_object_counts(resource: str, group: str, want: dict[str, Fraction]) -> None:
    assert rq.usage_of(resource, group, core_pb2.ConfigMap()) == want


def test_compute_used_sums_only_what_hard_names() -> None:
    objs = [("pods", "", pod({"requests": {"cpu": "1"}})), ("pods", "", pod({"requests": {"cpu": "500m"}})),
            ("pods", "", pod({"requests": {"cpu": "4"}}, phase="Failed")),
            ("configmaps", "", core_pb2.ConfigMap())]
    used = rq.compute_used({"requests.cpu": "4", "pods": "5", "count/configmaps": "3", "secrets": "1"}, objs)
    assert used == {"requests.cpu": F(3, 2), "pods": F(2), "count/configmaps": F(1), "secrets": F(0)}


def view(name: str, hard: dict[str, str], used: dict[str, str]) -> rq.QuotaView:
    return rq.QuotaView(name, hard, rq.parse_used(used))


CPU2 = pod({"requests": {"cpu": "2"}})


@pytest.mark.parametrize(("quotas", "p", "error", "charges"), [
    # Fits: charged.
    ([view("q", {"requests.cpu": "2"}, {"requests.cpu": "0"})], CPU2, "",
     {"q": {"requests.cpu": F(2)}}),
    # Kubernetes' message, only the exceeded resource listed.
    ([view("compute", {"requests.cpu": "2", "pods": "10"}, {"requests.cpu": "1", "pods": "1"})], CPU2,
     "exceeded quota: compute, requested: requests.cpu=2, used: requests.cpu=1, limited: requests.cpu=2", None),
    # Several exceeded: sorted, comma-joined.
    ([view("q", {"requests.cpu": "1", "pods": "1"}, {"requests.cpu": "0", "pods": "1"})], CPU2,
     "exceeded quota: q, requested: pods=1,requests.cpu=2, used: pods=1,requests.cpu=0, "
     "limited: pods=1,requests.cpu=1", None),
    # Memory printed in binary units like the limit.
    ([view("m", {"requests.memory": "1Gi"}, {"requests.memory": "768Mi"})],
     pod({"requests": {"memory": "512Mi"}}),
     "exceeded quota: m, requested: requests.memory=512Mi, used: requests.memory=768Mi, "
     "limited: requests.memory=1Gi", None),
    # A pod without the limited resource is refused.
    ([view("q", {"limits.cpu": "4", "requests.cpu": "4"}, {})], pod({"requests": {"cpu": "1"}}),
     "failed quota: q: must specify limits.cpu for: c0", None),
    # A quota that does not limit anything the pod uses is not charged.
    ([view("objects", {"configmaps": "1"}, {"configmaps": "1"})], CPU2, "", {}),
    # The first failing quota by name answers.
    ([view("b", {"pods": "0"}, {}), view("a", {"pods": "0"}, {})], CPU2,
     "exceeded quota: a, requested: pods=1, used: pods=0, limited: pods=0", None),
])
def test_plan_admission(quotas: list[rq.QuotaView], p: core_pb2.Pod, error: str,
                        charges: dict[str, dict[str, Fraction]] | None) -> None:
    verdict = rq.plan_admission(quotas, rq.usage_of("pods", "", p), pod=p)
    assert verdict.error == error
    if charges is not None:
        assert verdict.charges == charges


def test_plan_admission_of_an_object_count() -> None:
    quotas = [view("q", {"count/configmaps": "2"}, {"count/configmaps": "2"})]
    verdict = rq.plan_admission(quotas, rq.usage_of("configmaps", "", core_pb2.ConfigMap()))
    assert verdict.error == ("exceeded quota: q, requested: count/configmaps=1, "
                             "used: count/configmaps=2, limited: count/configmaps=2")


@pytest.mark.parametrize(("hard", "used", "cur_hard", "cur_used", "want"), [
    ({"pods": "2"}, {"pods": F(1)}, {"pods": "2"}, {"pods": "1"}, None),
    ({"pods": "2"}, {"pods": F(1)}, {}, {}, {"pods": "1"}),
    ({"pods": "3"}, {"pods": F(1)}, {"pods": "2"}, {"pods": "1"}, {"pods": "1"}),
    ({"requests.memory": "1Gi"}, {"requests.memory": F(2**29)}, {"requests.memory": "1Gi"}, {},
     {"requests.memory": "512Mi"}),
])
def test_plan_status(hard: dict[str, str], used: dict[str, Fraction], cur_hard: dict[str, str],
                     cur_used: dict[str, str], want: dict[str, str] | None) -> None:
    assert rq.plan_status(hard, used, cur_hard, cur_used) == want


# --- safety property ---------------------------------------------------------------------

_STEP = st.one_of(
    st.tuples(st.just("create"), st.integers(min_value=0, max_value=1500)),  # millicores
    st.tuples(st.just("finish"), st.integers(min_value=0, max_value=50)),  # a pod goes terminal
    st.tuples(st.just("recalc"), st.integers(min_value=0, max_value=50)),  # controller, lagging
)


@settings(max_examples=200, deadline=None)
@given(hard_m=st.integers(min_value=0, max_value=5000), steps=st.lists(_STEP, max_size=60))
def test_admission_never_admits_past_the_quota(hard_m: int, steps: list[tuple[str, int]]) -> None:
    """Whatever the controller writes to status.used (from informers that lag
    by any number of pods), admission checking against max(status.used, its own
    count) never lets the running pods' requests exceed hard."""
    hard = {"requests.cpu": f"{hard_m}m", "pods": "20"}
    running: list[core_pb2.Pod] = []
    status: dict[str, Fraction] = {}
    for op, n in steps:
        if op == "create":
            p = pod({"requests": {"cpu": f"{n}m"}})
            counted = rq.compute_used(hard, [("pods", "", x) for x in running])
            used = {k: max(status.get(k, F(0)), counted[k]) for k in hard}
            verdict = rq.plan_admission([rq.QuotaView("q", hard, used)], rq.usage_of("pods", "", p), pod=p)
            if not verdict.error:
                status = dict((verdict.charges or {})["q"])
                running.append(p)
        elif op == "finish" and running:
            running.pop(n % len(running))
        elif op == "recalc":
            seen = running[: max(len(running) - n, 0)]  # an informer missing the newest pods
            status = rq.compute_used(hard, [("pods", "", x) for x in seen])
        total = rq.compute_used(hard, [("pods", "", x) for x in running])
        assert total["requests.cpu"] <= F(hard_m, 1000)
        assert total["pods"] <= 20
