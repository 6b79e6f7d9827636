"""Probe thresholds, pod status computation and env resolution (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from node_agent.pods.actions import ObservedPod, container_hash
from node_agent.pods.env import (
    ConfigError,
    compute_env,
    memory_limit_bytes,
    nano_cpus,
    render_hosts,
)
from node_agent.pods.probes import (
    LIVENESS,
    READINESS,
    ProbeSpec,
    initial_probe_state,
    probe_spec,
    record_probe,
)
from node_agent.pods.status import StatusInputs, compute_pod_status
from node_agent.runtime.interface import (
    LABEL_CONTAINER_HASH,
    LABEL_RESTART_COUNT,
    LABEL_SANDBOX_ID,
    ContainerState,
    ContainerStatus,
    PodSandboxStatus,
    SandboxState,
)
from protos.core.v1 import core_pb2
from tests.unit.pod_fixtures import make_pod

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("kind,outcomes,results", [
    (READINESS, [True], [True]),
    (READINESS, [False, False, False], [False, False, False]),
    (LIVENESS, [False, False, False], [True, True, False]),
    (LIVENESS, [False, False, True, False, False, False], [True, True, True, True, True, False]),
])
def test_probe_thresholds(kind: str, outcomes: list[bool], results: list[bool]) -> None:
    spec = ProbeSpec(kind=kind, failure_threshold=3, success_threshold=1)
    st = initial_probe_state(kind)
    got = []
    for ok in outcomes:
        st = record_probe(st, ok, spec)
        got.append(st.result)
    assert got == results


def test_readiness_success_threshold() -> None:
    spec = ProbeSpec(kind=READINESS, success_threshold=2, failure_threshold=1)
    st = initial_probe_state(READINESS)
    st = record_probe(st, True, spec)
    assert not st.result
    st = record_probe(st, True, spec)
    assert st.result
    st = record_probe(st, False, spec)
    assert not st.result


def test_probe_defaults() -> None:
    spec = probe_spec(LIVENESS, core_pb2.Probe(success_threshold=5))
    assert (spec.period_s, spec.timeout_s, spec.failure_threshold, spec.success_threshold) == (10, 1, 3, 1)


def _c(pod, name, state, *, restarts=0, exit_code=0, reason="", id_=None):
    spec = next(c for c in pod.spec.containers if c.name == name)
    return ContainerStatus(id=id_ or f"{name}{restarts}", name=name, state=state, image=spec.image,
                           labels={LABEL_RESTART_COUNT: str(restarts), LABEL_SANDBOX_ID: "sb",
                                   LABEL_CONTAINER_HASH: container_hash(spec)},
                           created_at=NOW, started_at=NOW, finished_at=NOW if state == ContainerState.EXITED else None,
                           exit_code=exit_code, reason=reason)


SB = (PodSandboxStatus(id="sb", state=SandboxState.READY, labels={}, created_at=NOW),)
TWO = [{"name": "a", "image": "i:1"}, {"name": "b", "image": "i:1"}]


def status(pod, containers, **inputs):
    inputs.setdefault("sandbox_id", "sb")
    inputs.setdefault("pod_ip", "10.244.0.5")
    return compute_pod_status(pod, ObservedPod(sandboxes=SB, containers=tuple(containers)), StatusInputs(**inputs),
                              now=NOW)


def cond(st, type_):
    return next(c for c in st.conditions if c.type == type_)


def test_running_and_ready() -> None:
    pod = make_pod(containers=TWO)
    st = status(pod, [_c(pod, "a", ContainerState.RUNNING), _c(pod, "b", ContainerState.RUNNING)], host_ip="1.2.3.4")
    assert st.phase == "Running"
    assert cond(st, "Ready").status == "True" and cond(st, "ContainersReady").status == "True"
    assert cond(st, "Initialized").status == "True" and cond(st, "PodScheduled").status == "True"
    assert st.pod_ip == "10.244.0.5" and st.pod_ips[0].ip == "10.244.0.5" and st.host_ip == "1.2.3.4"
    assert [c.ready for c in st.container_statuses] == [True, True]
    assert st.container_statuses[0].container_id.startswith("docker://")
    assert st.qos_class == "BestEffort"


def test_readiness_false_makes_pod_unready() -> None:
    pod = make_pod(containers=TWO)
    st = status(pod, [_c(pod, "a", ContainerState.RUNNING), _c(pod, "b", ContainerState.RUNNING)],
                ready={"b0": False})
    ready = cond(st, "Ready")
    assert (ready.status, ready.reason, ready.message) == ("False", "ContainersNotReady",
                                                           "containers with unready status: [b]")


def test_creating_is_pending() -> None:
    pod = make_pod(containers=TWO)
    st = status(pod, [_c(pod, "a", ContainerState.RUNNING)])
    assert st.phase == "Pending"
    assert st.container_statuses[1].state.waiting.reason == "ContainerCreating"


def test_crash_loop_status() -> None:
    pod = make_pod(containers=TWO[:1])
    st = status(pod, [_c(pod, "a", ContainerState.EXITED, restarts=2, exit_code=1, reason="Error")],
                waiting={"a": ("CrashLoopBackOff", "back-off 20s ...")})
    cs = st.container_statuses[0]
    assert st.phase == "Running"
    assert cs.state.waiting.reason == "CrashLoopBackOff" and cs.restart_count == 2
    assert cs.last_state.terminated.exit_code == 1 and cs.last_state.terminated.reason == "Error"


def test_oom_killed_last_state() -> None:
    pod = make_pod(containers=TWO[:1])
    st = status(pod, [_c(pod, "a", ContainerState.RUNNING, restarts=1, id_="new"),
                      _c(pod, "a", ContainerState.EXITED, exit_code=137, reason="OOMKilled", id_="old")])
    assert st.container_statuses[0].last_state.terminated.reason == "OOMKilled"
    assert st.container_statuses[0].restart_count == 1


@pytest.mark.parametrize("policy,code,phase", [("Never", 3, "Failed"), ("Never", 0, "Succeeded"),
                                               ("OnFailure", 0, "Succeeded"), ("Always", 0, "Running")])
def test_terminal_phases(policy: str, code: int, phase: str) -> None:
    pod = make_pod(containers=TWO[:1], restartPolicy=policy)
    st = status(pod, [_c(pod, "a", ContainerState.EXITED, exit_code=code)])
    assert st.phase == phase
    if phase in ("Failed", "Succeeded"):
        assert st.container_statuses[0].state.terminated.exit_code == code
        assert cond(st, "Ready").reason == "PodCompleted"


def test_init_pending() -> None:
    pod = make_pod(containers=TWO[:1], initContainers=[{"name": "i", "image": "i:1"}])
    st = status(pod, [])
    assert st.phase == "Pending"
    init = cond(st, "Initialized")
    assert (init.status, init.reason, init.message) == ("False", "ContainersNotInitialized",
                                                        "containers with incomplete status: [i]")
    assert st.container_statuses[0].state.waiting.reason == "PodInitializing"


def test_transition_time_is_stable() -> None:
    pod = make_pod(containers=TWO[:1])
    first = status(pod, [_c(pod, "a", ContainerState.RUNNING)])
    pod.status.CopyFrom(first)
    later = compute_pod_status(pod, ObservedPod(sandboxes=SB, containers=(_c(pod, "a", ContainerState.RUNNING),)),
                               StatusInputs(sandbox_id="sb", pod_ip="10.244.0.5"),
                               now=datetime(2026, 1, 2, tzinfo=UTC))
    assert cond(later, "Ready").last_transition_time == cond(first, "Ready").last_transition_time


def test_env_sources() -> None:
    pod = make_pod(containers=[{
        "name": "a", "image": "i:1", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "PLAIN", "value": "x"},
            {"name": "EXPANDED", "value": "$(PLAIN)-y-$$(PLAIN)"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ]}])
    c = pod.spec.containers[0]
    cm = core_pb2.ConfigMap(data={"k": "v", "other": "o"})
    sec = core_pb2.Secret(data={"pw": b"hunter2"})
    env = compute_env(pod, c, config_maps={"cm": cm}, secrets={"s": sec}, pod_ip="10.244.0.9", host_ip="h")
    assert env == {"CM_k": "v", "CM_other": "o", "PLAIN": "x", "EXPANDED": "x-y-$(PLAIN)", "FROM_CM": "v",
                   "FROM_SECRET": "hunter2", "POD_NAME": "p", "POD_NS": "default", "POD_IP": "10.244.0.9",
                   "NODE": "node-1", "MEM": "64"}
    assert memory_limit_bytes(c) == 64 * 2**20 and nano_cpus(c) == 500_000_000
    with pytest.raises(ConfigError, match='configmap "cm" not found'):
        compute_env(pod, c, config_maps={}, secrets={"s": sec}, pod_ip="", host_ip="")
    with pytest.raises(ConfigError, match="couldn't find key pw in Secret default/s"):
        compute_env(pod, c, config_maps={"cm": cm}, secrets={"s": core_pb2.Secret()}, pod_ip="", host_ip="")


def test_hosts_file() -> None:
    pod = make_pod("web")
    text = render_hosts(pod, pod_ip="10.244.1.7")
    assert "127.0.0.1\tlocalhost" in text and "10.244.1.7\tweb" in text


@pytest.mark.parametrize("spec,dns,want", [
    ({}, ("10.96.0.10",), (("10.96.0.10",), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"),
                          ("ndots:5",))),
    ({}, (), ((), (), ())),
    ({"dnsPolicy": "Default"}, ("10.96.0.10",), ((), (), ())),
    ({"hostNetwork": True}, ("10.96.0.10",), ((), (), ())),
    ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, ("10.96.0.10",),
     (("10.96.0.10",), ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"), ("ndots:5",))),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["x.y"],
                                          "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}},
     ("10.96.0.10",), (("1.2.3.4",), ("x.y",), ("ndots:2", "edns0"))),
])
def test_dns_policy(spec: dict, dns: tuple, want: tuple) -> None:
    from node_agent.pods.env import compute_dns

    pod = make_pod(**spec)
    assert compute_dns(pod, cluster_dns=dns, cluster_domain="cluster.local") == want
