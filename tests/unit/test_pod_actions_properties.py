"""Safety properties of compute_pod_actions over random runtime states (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent.pods.actions import ObservedPod, compute_pod_actions, container_hash
from node_agent.pods.backoff import BackoffEntry
from node_agent.runtime.interface import (
    LABEL_CONTAINER_HASH,
    LABEL_RESTART_COUNT,
    LABEL_SANDBOX_ID,
    ContainerState,
    ContainerStatus,
    PodSandboxStatus,
    SandboxState,
)
from tests.unit.pod_fixtures import make_pod

T0 = 1_000_000.0
INITS = ["i1", "i2"]
APPS = ["a1", "a2"]


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


instance = st.fixed_dictionaries({
    "name": st.sampled_from(INITS + APPS),
    "state": st.sampled_from([ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED]),
    "exit": st.sampled_from([0, 1, 137]),
    "restarts": st.integers(0, 3),
    "sandbox": st.sampled_from(["sb1", "sb2"]),
    "t": st.floats(0, 100),
})


@settings(max_examples=int(__import__("os").environ.get("POD_PLAN_EXAMPLES", "400")), deadline=None)
@given(policy=st.sampled_from(["Always", "OnFailure", "Never"]), with_init=st.booleans(),
       sandboxes=st.lists(st.tuples(st.sampled_from(["sb1", "sb2"]), st.booleans()), max_size=2, unique_by=lambda x: x[0]),
       items=st.lists(instance, max_size=6), backoff_delay=st.sampled_from([None, 10.0, 300.0]),
       now_offset=st.floats(0, 400))
def test_plans_are_safe(policy, with_init, sandboxes, items, backoff_delay, now_offset) -> None:
    pod = make_pod(restartPolicy=policy, containers=[{"name": n, "image": "i:1"} for n in APPS],
                   **({"initContainers": [{"name": n, "image": "i:1"} for n in INITS]} if with_init else {}))
    specs = {c.name: c for c in list(pod.spec.containers) + list(pod.spec.init_containers)}
    containers = []
    for k, it in enumerate(items):
        if it["name"] not in specs:
            continue
        containers.append(ContainerStatus(
            id=f"c{k}", name=it["name"], state=it["state"], image="i:1",
            labels={LABEL_RESTART_COUNT: str(it["restarts"]), LABEL_SANDBOX_ID: it["sandbox"],
                    LABEL_CONTAINER_HASH: container_hash(specs[it["name"]])},
            created_at=at(T0 + it["t"]), started_at=at(T0 + it["t"]),
            finished_at=at(T0 + it["t"] + 1) if it["state"] == ContainerState.EXITED else None,
            exit_code=it["exit"] if it["state"] == ContainerState.EXITED else 0))
    obs = ObservedPod(
        sandboxes=tuple(PodSandboxStatus(id=s, state=SandboxState.READY if ok else SandboxState.NOTREADY, labels={},
                                         created_at=at(T0 + i)) for i, (s, ok) in enumerate(sandboxes)),
        containers=tuple(containers))
    backoff = {}
    if backoff_delay is not None:
        backoff = {f"{pod.metadata.uid}/{n}": BackoffEntry(backoff_delay, T0 + 50) for n in INITS + APPS}
    plan = compute_pod_actions(pod, obs, T0 + 100 + now_offset, backoff=backoff)

    started = [s.name for s in plan.start]
    inits = [s for s in plan.start if s.init]
    apps = [s for s in plan.start if not s.init]
    # Init containers run one at a time and never beside app containers.
    assert len(inits) <= 1 and not (inits and apps)
    # One step at a time: a new sandbox comes alone.
    if plan.create_sandbox:
        assert not plan.start
    # Nothing starts twice, nothing is started and killed at once, and nothing starts without a sandbox.
    assert len(started) == len(set(started))
    assert not ({k.name for k in plan.kill} & set(started))
    if plan.start:
        assert plan.sandbox_id
    # restartPolicy Never: a container that already ran is never started again.
    by_name = {}
    for c in containers:
        by_name.setdefault(c.name, []).append(c)
    if policy == "Never":
        assert not plan.create_sandbox or not containers
        for s in plan.start:
            current = [c for c in by_name.get(s.name, []) if c.labels[LABEL_SANDBOX_ID] == plan.sandbox_id]
            assert not any(c.state == ContainerState.EXITED for c in current)
    # App containers start only when every init container succeeded in the current sandbox.
    if apps and with_init:
        for name in INITS:
            done = [c for c in by_name.get(name, []) if c.labels[LABEL_SANDBOX_ID] == plan.sandbox_id
                    and c.state == ContainerState.EXITED and c.exit_code == 0]
            assert done, f"{[a.name for a in apps]} started before {name} succeeded"
    # A waiting container is not also started.
    assert not ({w.name for w in plan.waits} & set(started))
    # Restart counts only grow.
    for s in plan.start:
        prev = [c.restart_count for c in by_name.get(s.name, [])]
        assert not prev or s.restart_count >= max(prev), f"{s.name}: restart count fell below {max(prev)}"
