"""PodManager + workers against FakeRuntime, FakePodNetwork, FakeNodeAPI and a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from master.client.clock import FakeClock
from node_agent.network.errors import NetlinkError, NetworkError
from node_agent.network.fake import FakePodNetwork
from node_agent.pods.api import FakeNodeAPI
from node_agent.pods.manager import PodManager
from node_agent.runtime.fake import FakeRuntime
from node_agent.runtime.interface import (
    LABEL_CONTAINER_NAME,
    LABEL_NODE,
    LABEL_POD_UID,
    ContainerState,
)
from protos.core.v1 import core_pb2
from tests.unit.pod_fixtures import make_pod


class FakeEvents:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, str, str]] = []  # (pod name, type, reason, message)

    def event(self, obj: object, type_: str, reason: str, message: str) -> None:
        self.got.append((obj.metadata.name, type_, reason, message))  # type: ignore[attr-defined]

    def reasons(self, pod: str) -> list[str]:
        return [r for p, _, r, _ in self.got if p == pod]


@dataclass
class Env:
    events: FakeEvents
    clock: FakeClock
    runtime: FakeRuntime
    network: FakePodNetwork
    api: FakeNodeAPI
    manager: PodManager
    root: Path


async def eventually(cond: Callable[[], object], *, what: str = "condition") -> None:
    for i in range(4000):
        if cond():
            return
        await asyncio.sleep(0 if i < 2000 else 0.001)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def running(tmp_path: Path, *, runtime: FakeRuntime | None = None, network: FakePodNetwork | None = None,
                  api: FakeNodeAPI | None = None, clock: FakeClock | None = None) -> AsyncIterator[Env]:
    clock = clock or FakeClock()
    runtime = runtime or FakeRuntime(clock=clock)
    network = network or FakePodNetwork()
    api = api or FakeNodeAPI()
    events = FakeEvents()
    m = PodManager(runtime, network, api, node_name="node-1", clock=clock, root_dir=str(tmp_path),
                   host_ip="192.168.0.1", relist_period_s=1.0, volume_resync_s=5.0, events=events)
    ready = asyncio.Event()
    task = asyncio.create_task(m.run(ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield Env(events, clock, runtime, network, api, m, tmp_path)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def status(env: Env, pod: core_pb2.Pod) -> core_pb2.PodStatus:
    st = env.api.last_status(pod.metadata.uid)
    return st if st is not None else core_pb2.PodStatus()


def cstatus(env: Env, pod: core_pb2.Pod, name: str) -> core_pb2.ContainerStatus:
    return next((c for c in status(env, pod).container_statuses if c.name == name), core_pb2.ContainerStatus())


def ready(env: Env, pod: core_pb2.Pod) -> str:
    return next((c.status for c in status(env, pod).conditions if c.type == "Ready"), "")


async def tick(env: Env, seconds: float = 1.0) -> None:
    """Advance the fake clock (the relist runs every second) and let tasks run."""
    env.clock.advance(seconds)
    for _ in range(50):
        await asyncio.sleep(0)


TWO = [{"name": "web", "image": "flotilla/busybox:test"}, {"name": "side", "image": "flotilla/busybox:test"}]


async def test_two_containers_go_running(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO)
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running", what="Running")
        await eventually(lambda: ready(env, pod) == "True", what="Ready")
        st = status(env, pod)
        assert st.pod_ip == env.network.pod_ip(pod.metadata.uid) and st.host_ip == "192.168.0.1"
        running_ = env.runtime.running()
        assert sorted(c.name for c in running_) == ["side", "web"]
        for c in running_:
            assert c.labels[LABEL_POD_UID] == pod.metadata.uid and c.labels[LABEL_NODE] == "node-1"
        assert (tmp_path / "pods" / pod.metadata.uid / "etc-hosts").read_text().count(st.pod_ip) == 1
        assert [p.metadata.uid for p in env.manager.pods()] == [pod.metadata.uid]


async def test_crash_restart_then_backoff(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO[:1])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        first = env.runtime.running("web")[0].id
        env.runtime.exit_container(first, 137)
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 1, what="restart 1")
        assert cstatus(env, pod, "web").state.HasField("running")
        assert cstatus(env, pod, "web").last_state.terminated.exit_code == 137
        env.runtime.exit_container(env.runtime.running("web")[0].id, 1)
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").state.waiting.reason == "CrashLoopBackOff")
        msg = cstatus(env, pod, "web").state.waiting.message
        assert msg == f"back-off 10s restarting failed container=web pod=p_default({pod.metadata.uid})"
        await tick(env, 10.5)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 2, what="restart 2")
        reasons = env.events.reasons("p")
        assert reasons[:3] == ["Pulled", "Created", "Started"] and "BackOff" in reasons
        assert (f"Back-off restarting failed container web in pod p_default({pod.metadata.uid})"
                in [m for _, _, _, m in env.events.got])


async def test_restart_policies(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        never = make_pod("never", containers=TWO[:1], restartPolicy="Never")
        onf = make_pod("onf", containers=TWO[:1], restartPolicy="OnFailure")
        env.manager.set_pods([never, onf])
        await eventually(lambda: status(env, never).phase == "Running" and status(env, onf).phase == "Running")
        by_pod = {c.labels[LABEL_POD_UID]: c.id for c in env.runtime.running()}
        env.runtime.exit_container(by_pod[never.metadata.uid], 3)
        env.runtime.exit_container(by_pod[onf.metadata.uid], 0)
        await tick(env)
        await eventually(lambda: status(env, never).phase == "Failed" and status(env, onf).phase == "Succeeded")
        assert cstatus(env, never, "web").state.terminated.exit_code == 3
        assert env.network.pod_ip(never.metadata.uid) is None  # the IP is released


async def test_oom_killed(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO[:1])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        env.runtime.exit_container(env.runtime.running("web")[0].id, 137, oom=True)
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").last_state.terminated.reason == "OOMKilled")


async def test_bad_image_fails_alone(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        bad = make_pod("bad", containers=[{"name": "web", "image": "nosuch/image:1"}])
        good = make_pod("good", containers=TWO[:1])
        env.manager.set_pods([bad, good])
        await eventually(lambda: cstatus(env, bad, "web").state.waiting.reason == "ErrImagePull")
        assert "pull access denied" in cstatus(env, bad, "web").state.waiting.message
        await tick(env)
        await eventually(lambda: cstatus(env, bad, "web").state.waiting.reason == "ImagePullBackOff")
        assert cstatus(env, bad, "web").state.waiting.message == 'Back-off pulling image "nosuch/image:1"'
        assert {"Pulling", "Failed", "BackOff"} <= set(env.events.reasons("bad"))
        await eventually(lambda: status(env, good).phase == "Running")
        assert status(env, bad).phase == "Pending"


async def test_missing_config_map_is_config_error(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=[{"name": "web", "image": "flotilla/busybox:test", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}])
        env.manager.set_pods([pod])
        await eventually(lambda: cstatus(env, pod, "web").state.waiting.reason == "CreateContainerConfigError")
        assert cstatus(env, pod, "web").state.waiting.message == 'configmap "cm" not found'
        env.api.config_maps[("default", "cm")] = core_pb2.ConfigMap(data={"k": "v"})
        await tick(env, 11)
        await eventually(lambda: status(env, pod).phase == "Running")
        assert env.runtime.containers[env.runtime.running("web")[0].id].config.env["X"] == "v"


async def test_init_containers_run_in_order(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO[:1], initContainers=[
            {"name": "i1", "image": "flotilla/busybox:test"}, {"name": "i2", "image": "flotilla/busybox:test"}])
        env.manager.set_pods([pod])
        await eventually(lambda: len(env.runtime.running("i1")) == 1)
        assert not env.runtime.running("i2") and not env.runtime.running("web")
        await eventually(lambda: status(env, pod).phase == "Pending")
        env.runtime.exit_container(env.runtime.running("i1")[0].id, 0)
        await tick(env)
        await eventually(lambda: len(env.runtime.running("i2")) == 1)
        env.runtime.exit_container(env.runtime.running("i2")[0].id, 0)
        await tick(env)
        await eventually(lambda: status(env, pod).phase == "Running")
        init = next(c for c in status(env, pod).conditions if c.type == "Initialized")
        assert init.status == "True"


async def test_graceful_deletion(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO, terminationGracePeriodSeconds=7)
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        deleting = core_pb2.Pod()
        deleting.CopyFrom(pod)
        deleting.metadata.deletion_timestamp.GetCurrentTime()
        deleting.metadata.deletion_grace_period_seconds = 5
        env.manager.upsert_pod(deleting)
        app_ids = {c.id for c in env.runtime.running()} - set(env.runtime.sandboxes)
        await eventually(lambda: env.api.deleted == [pod.metadata.uid], what="delete_pod")
        assert {(cid, t) for cid, t in env.runtime.stops if cid in app_ids} == {(cid, 5.0) for cid in app_ids}
        assert not env.runtime.containers and not env.runtime.sandboxes
        assert env.network.pod_ip(pod.metadata.uid) is None
        assert not (tmp_path / "pods" / pod.metadata.uid).exists()
        await eventually(lambda: not env.manager.workers, what="worker gone")


class SlowStatusAPI(FakeNodeAPI):
    """Status writes wait for `release` while `hold` is set: an update can land in the middle."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def update_pod_status(self, pod: core_pb2.Pod) -> None:
        if self.hold:
            self.holding.set()
            await self.release.wait()
        await super().update_pod_status(pod)


async def test_a_deletion_arriving_during_a_status_write_is_kept(tmp_path: Path) -> None:
    api = SlowStatusAPI()
    async with running(tmp_path, api=api) as env:
        pod = make_pod(containers=TWO[:1], terminationGracePeriodSeconds=3)
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        api.hold = True
        env.runtime.exit_container(env.runtime.running()[0].id, 1)
        await tick(env)  # the relist sees the exit; the worker writes the new status and waits in it
        await asyncio.wait_for(api.holding.wait(), 5)
        deleting = core_pb2.Pod()
        deleting.CopyFrom(pod)
        deleting.metadata.deletion_timestamp.GetCurrentTime()
        deleting.metadata.deletion_grace_period_seconds = 3
        env.manager.upsert_pod(deleting)
        api.hold = False
        api.release.set()
        await eventually(lambda: env.api.deleted == [pod.metadata.uid], what="the deletion to be carried out")


class SlowStopRuntime(FakeRuntime):
    """A stop with a long timeout waits (as docker stop does for a process that
    ignores SIGTERM) until a stop with a shorter one arrives for that container."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.shortened = asyncio.Event()

    async def stop_container(self, container_id: str, timeout_s: float) -> None:
        if timeout_s > 10:
            self.stops.append((container_id, timeout_s))
            await self.shortened.wait()
            return
        await super().stop_container(container_id, timeout_s)
        self.shortened.set()


@pytest.mark.parametrize("how", ["shorter grace", "forced"])
async def test_a_later_shorter_deletion_shortens_the_stop(tmp_path: Path, how: str) -> None:
    clock = FakeClock()
    runtime = SlowStopRuntime(clock)
    async with running(tmp_path, runtime=runtime, clock=clock) as env:
        pod = make_pod(containers=TWO[:1], terminationGracePeriodSeconds=30)
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        app = env.runtime.running()[0].id
        deleting = core_pb2.Pod()
        deleting.CopyFrom(pod)
        deleting.metadata.deletion_timestamp.GetCurrentTime()
        deleting.metadata.deletion_grace_period_seconds = 30
        env.manager.upsert_pod(deleting)
        await eventually(lambda: (app, 30.0) in env.runtime.stops, what="the 30 s stop")
        if how == "forced":
            env.manager.remove_pod(pod.metadata.uid)  # gone from the API at once
            want = 2.0
        else:
            again = core_pb2.Pod()
            again.CopyFrom(deleting)
            again.metadata.deletion_grace_period_seconds = 1
            env.manager.upsert_pod(again)
            want = 1.0
        await eventually(lambda: (app, want) in env.runtime.stops, what="the shorter stop")
        await eventually(lambda: not env.runtime.containers and not env.runtime.sandboxes, what="cleanup")
        if how == "shorter grace":
            await eventually(lambda: env.api.deleted == [pod.metadata.uid], what="delete_pod")


async def test_liveness_failure_restarts(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=[{"name": "web", "image": "flotilla/busybox:test", "livenessProbe": {
            "exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2}}])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        env.runtime.exec_results[("check",)] = (1, b"unhealthy")
        for _ in range(4):
            await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 1, what="liveness restart")
        msgs = [m for _, _, _, m in env.events.got]
        assert "Liveness probe failed: unhealthy" in msgs
        assert "Container web failed liveness probe, will be restarted" in msgs


async def test_readiness_flips(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=[{"name": "web", "image": "flotilla/busybox:test", "readinessProbe": {
            "exec": {"command": ["ready"]}, "periodSeconds": 1, "failureThreshold": 1}}])
        env.runtime.exec_results[("ready",)] = (1, b"")
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        await tick(env)
        assert ready(env, pod) == "False"
        env.runtime.exec_results[("ready",)] = (0, b"")
        for _ in range(2):
            await tick(env)
        await eventually(lambda: ready(env, pod) == "True", what="Ready True")
        env.runtime.exec_results[("ready",)] = (1, b"")
        for _ in range(2):
            await tick(env)
        await eventually(lambda: ready(env, pod) == "False", what="Ready False again")


async def test_recovery_keeps_containers_and_removes_orphans(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock=clock)
    network = FakePodNetwork()
    keep = make_pod("keep", containers=TWO)
    gone = make_pod("gone", containers=TWO[:1])
    async with running(tmp_path, runtime=runtime, network=network, clock=clock) as env:
        env.manager.set_pods([keep, gone])
        await eventually(lambda: status(env, keep).phase == "Running" and status(env, gone).phase == "Running")
    ids_before = {c.id for c in runtime.running() if c.labels[LABEL_POD_UID] == keep.metadata.uid}
    # Another node's container on the same dockerd is never touched.
    foreign = await runtime.run_pod_sandbox(__import__("node_agent.runtime.interface", fromlist=["x"])
                                            .PodSandboxConfig(name="x", namespace="d", uid="u",
                                                              hostname="x", labels={LABEL_NODE: "node-2"}))
    api = FakeNodeAPI()
    async with running(tmp_path, runtime=runtime, network=network, clock=clock, api=api) as env:
        assert env.manager.recovered_uids == {keep.metadata.uid, gone.metadata.uid}
        env.manager.set_pods([keep])
        await eventually(lambda: status(env, keep).phase == "Running", what="status after restart")
        await tick(env)
        await eventually(lambda: gone.metadata.uid in env.manager.orphans_removed, what="orphan removed")
        ids_after = {c.id for c in runtime.running() if c.labels[LABEL_POD_UID] == keep.metadata.uid}
        assert ids_after == ids_before
        assert not [c for c in runtime.containers.values() if c.status.labels[LABEL_POD_UID] == gone.metadata.uid]
        assert foreign in runtime.sandboxes
        assert all(cs.restart_count == 0 for cs in status(env, keep).container_statuses)


async def test_pods_of_other_nodes_are_ignored(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        env.manager.set_pods([make_pod(node="node-2")])
        for _ in range(3):
            await tick(env)
        assert not env.runtime.containers and not env.manager.workers


@pytest.mark.parametrize("policy,calls", [("Never", 0), ("IfNotPresent", 0), ("Always", 1)])
async def test_pull_policy(tmp_path: Path, policy: str, calls: int) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=[{"name": "web", "image": "flotilla/busybox:test", "imagePullPolicy": policy}])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        assert len(env.runtime.pulls) == calls
        assert env.runtime.running("web")[0].labels[LABEL_CONTAINER_NAME] == "web"
        assert env.runtime.running("web")[0].state == ContainerState.RUNNING


async def test_startup_probe_gates_then_kills_past_threshold(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=[{"name": "web", "image": "flotilla/busybox:test",
                                    "startupProbe": {"exec": {"command": ["started"]}, "periodSeconds": 1,
                                                     "failureThreshold": 3},
                                    "livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1,
                                                      "failureThreshold": 1}}])
        env.runtime.exec_results[("started",)] = (1, b"")
        env.runtime.exec_results[("alive",)] = (1, b"")  # would kill at once if it ran before startup
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        await tick(env)
        await tick(env)
        assert cstatus(env, pod, "web").restart_count == 0 and not cstatus(env, pod, "web").started
        env.runtime.exec_results[("started",)] = (0, b"")
        env.runtime.exec_results[("alive",)] = (0, b"")
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").started, what="started")
        assert cstatus(env, pod, "web").restart_count == 0
        # A new container that never starts is killed at the threshold.
        env.runtime.exec_results[("started",)] = (1, b"")
        env.runtime.exit_container(env.runtime.running("web")[0].id, 1)
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 1, what="restart")
        for _ in range(4):
            await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 2 or
                         cstatus(env, pod, "web").state.waiting.reason == "CrashLoopBackOff",
                         what="killed by the startup probe")


async def test_host_network_pod_uses_the_node_address(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(hostNetwork=True)
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        assert status(env, pod).pod_ip == "192.168.0.1" and not env.network.setup_calls
        sandbox = next(iter(env.runtime.sandboxes.values()))
        assert sandbox.config.host_network
        app = env.runtime.running("app")[0]
        assert all(m.container_path != "/etc/hosts" for m in env.runtime.containers[app.id].config.mounts)


async def test_dead_sandbox_means_a_new_one(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(containers=TWO[:1])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        (old_sb,) = env.runtime.sandboxes
        old_app = env.runtime.running("web")[0].id
        env.runtime.kill_sandbox(old_sb)
        await tick(env)
        await eventually(lambda: cstatus(env, pod, "web").restart_count == 1
                         and cstatus(env, pod, "web").state.HasField("running"), what="restart in a new sandbox")
        assert old_sb not in env.runtime.sandboxes  # the dead one is gone, never restarted
        (new_sb,) = env.runtime.sandboxes
        assert env.runtime.containers[env.runtime.running("web")[0].id].sandbox_id == new_sb
        assert (old_app, 30.0) in env.runtime.stops  # the app in the dead netns was stopped
        assert len(env.network.setup_calls) == 2


async def test_pre_stop_runs_before_the_stop_signal_and_post_start_failure_kills(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        pod = make_pod(terminationGracePeriodSeconds=20, containers=[{
            "name": "web", "image": "flotilla/busybox:test",
            "lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}}])
        hooked = make_pod("hooked", containers=[{
            "name": "web", "image": "flotilla/busybox:test",
            "lifecycle": {"postStart": {"exec": {"command": ["setup"]}}}}])
        env.runtime.exec_results[("setup",)] = (1, b"no")
        env.manager.set_pods([pod, hooked])
        await eventually(lambda: status(env, pod).phase == "Running")
        cid = next(c.id for c in env.runtime.running("web") if c.labels[LABEL_POD_UID] == pod.metadata.uid)
        deleting = core_pb2.Pod()
        deleting.CopyFrom(pod)
        deleting.metadata.deletion_timestamp.GetCurrentTime()
        env.manager.upsert_pod(deleting)
        await eventually(lambda: pod.metadata.uid in env.api.deleted, what="deleted")
        calls = env.runtime.calls
        assert calls.index(f"exec {cid} drain") < calls.index(f"stop_container {cid}")
        assert (cid, 20.0) in env.runtime.stops
        await eventually(lambda: "FailedPostStartHook" in env.events.reasons("hooked"), what="postStart failed")
        await tick(env)
        await eventually(lambda: cstatus(env, hooked, "web").restart_count >= 1, what="restarted after the hook")


async def test_termination_messages(tmp_path: Path) -> None:
    async with running(tmp_path) as env:
        filed = make_pod("filed", restartPolicy="Never", containers=[
            {"name": "app", "image": "flotilla/busybox:test", "terminationMessagePath": "/tmp/why"}])
        logged = make_pod("logged", restartPolicy="Never", containers=[
            {"name": "app", "image": "flotilla/busybox:test", "terminationMessagePolicy": "FallbackToLogsOnError"}])
        env.manager.set_pods([filed, logged])
        await eventually(lambda: status(env, filed).phase == "Running" and status(env, logged).phase == "Running")
        by_pod = {c.labels[LABEL_POD_UID]: c.id for c in env.runtime.running()}
        mount = next(m for m in env.runtime.containers[by_pod[filed.metadata.uid]].config.mounts
                     if m.container_path == "/tmp/why")
        Path(mount.host_path).write_text("disk full\n")
        env.runtime.logs[by_pod[logged.metadata.uid]] = [b"starting\n", b"panic: nope\n"]
        env.runtime.exit_container(by_pod[filed.metadata.uid], 1)
        env.runtime.exit_container(by_pod[logged.metadata.uid], 2)
        await tick(env)
        await eventually(lambda: status(env, filed).phase == "Failed" and status(env, logged).phase == "Failed")
        assert cstatus(env, filed, "app").state.terminated.message == "disk full\n"
        assert cstatus(env, logged, "app").state.terminated.message == "starting\npanic: nope\n"


class FlakyTeardownNetwork(FakePodNetwork):
    """teardown_pod fails `failures` times (a netlink hiccup), then works."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def teardown_pod(self, *, pod_uid: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise NetlinkError(f"remove veth of {pod_uid}: Device or resource busy")
        await super().teardown_pod(pod_uid=pod_uid)


async def test_termination_retries_a_network_error_and_still_deletes(tmp_path: Path) -> None:
    network = FlakyTeardownNetwork()
    async with running(tmp_path, network=network) as env:
        pod = make_pod(containers=TWO[:1])
        env.manager.set_pods([pod])
        await eventually(lambda: status(env, pod).phase == "Running")
        network.failures = 2
        deleting = core_pb2.Pod()
        deleting.CopyFrom(pod)
        deleting.metadata.deletion_timestamp.GetCurrentTime()
        deleting.metadata.deletion_grace_period_seconds = 0
        env.manager.upsert_pod(deleting)
        for _ in range(20):  # each failed attempt waits 2 s (fake) before the next
            if env.api.deleted:
                break
            await tick(env, 2.0)
            await asyncio.sleep(0.01)  # volume teardown runs in a real thread
        await eventually(lambda: env.api.deleted == [pod.metadata.uid], what="delete_pod after the retries")
        assert network.failures == 0
        assert not env.runtime.containers and network.pod_ip(pod.metadata.uid) is None


async def test_orphan_removal_error_does_not_stop_the_manager(tmp_path: Path) -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock=clock)
    network = FlakyTeardownNetwork()
    gone = make_pod("gone", containers=TWO[:1])
    async with running(tmp_path, runtime=runtime, network=network, clock=clock) as env:
        env.manager.set_pods([gone])
        await eventually(lambda: status(env, gone).phase == "Running")
    network.failures = 1
    async with running(tmp_path, runtime=runtime, network=network, clock=clock) as env:
        env.manager.set_pods([])
        await tick(env)
        await eventually(lambda: network.failures == 0, what="the first, failing removal")
        await tick(env)
        await eventually(lambda: gone.metadata.uid in env.manager.orphans_removed, what="removal retried")
        assert not runtime.sandboxes and network.pod_ip(gone.metadata.uid) is None
        assert env.manager._running  # the relist loop survived the failed teardown


async def test_a_pod_network_failure_is_an_event_and_is_retried(tmp_path: Path) -> None:
    network = FakePodNetwork()
    network.fail_setup = NetworkError("pod default/web: plumb vf0123: No space left on device")
    async with running(tmp_path, network=network) as env:
        pod = make_pod(containers=TWO[:1])
        env.manager.set_pods([pod])
        await eventually(lambda: "FailedCreatePodSandBox" in env.events.reasons(pod.metadata.name))
        msg = next(m for _, _, r, m in env.events.got if r == "FailedCreatePodSandBox")
        assert msg == "Failed to create pod sandbox: pod default/web: plumb vf0123: No space left on device"
        assert not env.runtime.sandboxes  # the half-made sandbox went
        network.fail_setup = None
        for _ in range(10):  # the worker retries 2 s (fake) after a failed sync
            if status(env, pod).phase == "Running":
                break
            await tick(env, 2.0)
        assert status(env, pod).phase == "Running"
