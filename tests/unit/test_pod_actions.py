"""compute_pod_actions as a table: (pod, observed runtime state, now) -> the next step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from node_agent.pods.actions import (
    ObservedPod,
    StartFailure,
    compute_pod_actions,
    container_hash,
    go_duration,
)
from node_agent.pods.backoff import BackoffEntry, BackoffPolicy, backoff_remaining, next_backoff
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


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def sandbox(id_: str = "sb1", ready: bool = True, created: float = T0) -> PodSandboxStatus:
    return PodSandboxStatus(id=id_, state=SandboxState.READY if ready else SandboxState.NOTREADY, labels={},
                            created_at=at(created))


def ctr(pod, name: str, state: ContainerState, *, id_: str | None = None, exit_code: int = 0, restarts: int = 0,
        sb: str = "sb1", started: float = T0, finished: float | None = None, hash_: str | None = None) -> ContainerStatus:
    spec = next(c for c in list(pod.spec.containers) + list(pod.spec.init_containers) if c.name == name)
    labels = {LABEL_RESTART_COUNT: str(restarts), LABEL_SANDBOX_ID: sb,
              LABEL_CONTAINER_HASH: hash_ or container_hash(spec)}
    return ContainerStatus(id=id_ or f"{name}-{restarts}", name=name, state=state, labels=labels, image=spec.image,
                           created_at=at(started), started_at=at(started),
                           finished_at=at(finished) if finished else None, exit_code=exit_code,
                           reason="" if state == ContainerState.RUNNING else ("Completed" if exit_code == 0 else "Error"))


TWO = [{"name": "web", "image": "img:1"}, {"name": "side", "image": "img:1"}]
INIT = [{"name": "i1", "image": "img:1"}, {"name": "i2", "image": "img:1"}]
R, X = ContainerState.RUNNING, ContainerState.EXITED


def case_no_sandbox():
    pod = make_pod(containers=TWO)
    return pod, ObservedPod(), {}, dict(create_sandbox=True)


def case_start_both():
    pod = make_pod(containers=TWO)
    return pod, ObservedPod(sandboxes=(sandbox(),)), {}, dict(start=["web", "side"])


def case_all_running():
    pod = make_pod(containers=TWO)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", R), ctr(pod, "side", R)))
    return pod, obs, {}, dict()


def case_first_crash_restarts_now():
    pod = make_pod(containers=TWO)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", X, exit_code=137, finished=T0 + 5),
                                                          ctr(pod, "side", R)))
    return pod, obs, {}, dict(start=["web"], restart_counts=[1])


def case_second_crash_backs_off():
    pod = make_pod(containers=TWO)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(
        ctr(pod, "web", X, exit_code=1, restarts=1, finished=T0 + 5), ctr(pod, "side", R)))
    backoff = {f"{pod.metadata.uid}/web": BackoffEntry(delay_s=10, last_update=T0 + 1)}
    return pod, obs, {"backoff": backoff, "now": T0 + 6}, dict(waits=[("web", "CrashLoopBackOff")], wake=9.0)


def case_backoff_expired():
    pod = make_pod(containers=TWO)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(
        ctr(pod, "web", X, exit_code=1, restarts=1, finished=T0 + 5), ctr(pod, "side", R)))
    backoff = {f"{pod.metadata.uid}/web": BackoffEntry(delay_s=10, last_update=T0 + 1)}
    return pod, obs, {"backoff": backoff, "now": T0 + 16}, dict(start=["web"], restart_counts=[2])


def case_never_exit3_finished():
    pod = make_pod(containers=TWO[:1], restartPolicy="Never")
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", X, exit_code=3, finished=T0 + 1),))
    return pod, obs, {}, dict(finished=True, kill_sandboxes=["sb1"])


def case_onfailure_exit0_finished():
    pod = make_pod(containers=TWO[:1], restartPolicy="OnFailure")
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", X, exit_code=0, finished=T0 + 1),))
    return pod, obs, {}, dict(finished=True, kill_sandboxes=["sb1"])


def case_onfailure_exit1_restarts():
    pod = make_pod(containers=TWO[:1], restartPolicy="OnFailure")
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", X, exit_code=1, finished=T0 + 1),))
    return pod, obs, {}, dict(start=["web"])


def case_first_init_only():
    pod = make_pod(containers=TWO[:1], initContainers=INIT)
    return pod, ObservedPod(sandboxes=(sandbox(),)), {}, dict(start=["i1"])


def case_init_running_waits():
    pod = make_pod(containers=TWO[:1], initContainers=INIT)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "i1", R),))
    return pod, obs, {}, dict()


def case_second_init_after_first():
    pod = make_pod(containers=TWO[:1], initContainers=INIT)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "i1", X, exit_code=0, finished=T0 + 1),))
    return pod, obs, {}, dict(start=["i2"])


def case_app_after_inits():
    pod = make_pod(containers=TWO[:1], initContainers=INIT)
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "i1", X, finished=T0 + 1),
                                                          ctr(pod, "i2", X, finished=T0 + 2)))
    return pod, obs, {}, dict(start=["web"])


def case_init_fails_never():
    pod = make_pod(containers=TWO[:1], initContainers=INIT, restartPolicy="Never")
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "i1", X, exit_code=2, finished=T0 + 1),))
    return pod, obs, {}, dict(finished=True, kill_sandboxes=["sb1"])


def case_liveness_failed_kills():
    pod = make_pod(containers=TWO[:1])
    c = ctr(pod, "web", R)
    return pod, ObservedPod(sandboxes=(sandbox(),), containers=(c,), unhealthy=frozenset({c.id})), {}, dict(
        kill=["web"])


def case_sandbox_died_recreate():
    pod = make_pod(containers=TWO[:1])
    obs = ObservedPod(sandboxes=(sandbox(ready=False),), containers=(ctr(pod, "web", R),))
    return pod, obs, {}, dict(create_sandbox=True, kill=["web"])


def case_new_sandbox_restarts_app():
    pod = make_pod(containers=TWO[:1])
    obs = ObservedPod(sandboxes=(sandbox("sb2", created=T0 + 9), sandbox(ready=False)),
                      containers=(ctr(pod, "web", X, exit_code=137, finished=T0 + 8),))
    return pod, obs, {}, dict(start=["web"], restart_counts=[1])


def case_never_sandbox_died_no_new_one():
    pod = make_pod(containers=TWO[:1], restartPolicy="Never")
    obs = ObservedPod(sandboxes=(sandbox(ready=False),), containers=(ctr(pod, "web", X, exit_code=0, finished=T0),))
    return pod, obs, {}, dict(finished=True)


def case_spec_changed_kills():
    pod = make_pod(containers=TWO[:1])
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(ctr(pod, "web", R, hash_="old"),))
    return pod, obs, {}, dict(kill=["web"])


def case_pull_backoff():
    pod = make_pod(containers=TWO[:1])
    fail = {"web": StartFailure("ErrImagePull", "nope", BackoffEntry(delay_s=10, last_update=T0))}
    return pod, ObservedPod(sandboxes=(sandbox(),)), {"start_failures": fail, "now": T0 + 3}, dict(
        waits=[("web", "ImagePullBackOff")], wake=7.0)


def case_pull_retry_after_backoff():
    pod = make_pod(containers=TWO[:1])
    fail = {"web": StartFailure("ErrImagePull", "nope", BackoffEntry(delay_s=10, last_update=T0))}
    return pod, ObservedPod(sandboxes=(sandbox(),)), {"start_failures": fail, "now": T0 + 11}, dict(start=["web"])


def case_old_dead_instances_removed():
    pod = make_pod(containers=TWO[:1])
    obs = ObservedPod(sandboxes=(sandbox(),), containers=(
        ctr(pod, "web", R, restarts=2, id_="new", started=T0 + 20),
        ctr(pod, "web", X, restarts=1, id_="mid", exit_code=1, finished=T0 + 10),
        ctr(pod, "web", X, restarts=0, id_="old", exit_code=1, finished=T0 + 5)))
    return pod, obs, {}, dict(remove=["old"])


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_compute_pod_actions(case) -> None:
    pod, observed, kw, want = case()
    now = kw.pop("now", T0 + 100)
    plan = compute_pod_actions(pod, observed, now, **kw)
    assert plan.create_sandbox == want.get("create_sandbox", False)
    assert [s.name for s in plan.start] == want.get("start", [])
    if "restart_counts" in want:
        assert [s.restart_count for s in plan.start] == want["restart_counts"]
    assert [k.name for k in plan.kill] == want.get("kill", [])
    assert [(w.name, w.reason) for w in plan.waits] == want.get("waits", [])
    assert plan.finished == want.get("finished", False)
    assert sorted(plan.remove) == sorted(want.get("remove", []))
    if "kill_sandboxes" in want:
        assert list(plan.kill_sandboxes) == want["kill_sandboxes"]
    if "wake" in want:
        assert plan.wake_after_s == pytest.approx(want["wake"])


def test_crash_loop_message_format() -> None:
    pod = make_pod("web-1", containers=TWO)
    _, obs, kw, _ = case_second_crash_backs_off()
    obs = ObservedPod(sandboxes=obs.sandboxes, containers=(
        ctr(pod, "web", X, exit_code=1, restarts=1, finished=T0 + 5), ctr(pod, "side", R)))
    backoff = {f"{pod.metadata.uid}/web": BackoffEntry(delay_s=20, last_update=T0 + 1)}
    plan = compute_pod_actions(pod, obs, T0 + 6, backoff=backoff)
    assert plan.waits[0].message == (
        f"back-off 20s restarting failed container=web pod=web-1_default({pod.metadata.uid})")


@pytest.mark.parametrize("seconds,text", [(10, "10s"), (40, "40s"), (80, "1m20s"), (300, "5m0s"), (3700, "1h1m40s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_backoff_doubles_to_max_and_resets() -> None:
    policy = BackoffPolicy(initial_s=10, max_s=300, reset_s=600)
    e = None
    delays = []
    t = 0.0
    for _ in range(8):
        e = next_backoff(e, now=t, policy=policy)
        delays.append(e.delay_s)
        t += 1
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    # A container that ran for 10 minutes starts over.
    assert next_backoff(e, now=t, policy=policy, ran_s=600).delay_s == 10
    # Nothing for longer than reset_s: starts over.
    assert next_backoff(e, now=t + 601, policy=policy).delay_s == 10
    assert backoff_remaining(e, event_time=t, now=t + 100, policy=policy) == 200
    assert backoff_remaining(e, event_time=t, now=t + 300, policy=policy) == 0
    assert backoff_remaining(None, event_time=t, now=t, policy=policy) == 0
