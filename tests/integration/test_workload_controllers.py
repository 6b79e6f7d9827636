"""DaemonSet, StatefulSet, Job and CronJob controllers against a real master on etcd.

Each test runs an in-process master on the shared etcd cluster, a
ControllerManager with only the controller under test, and hollow nodes
(tests/integration/hollow.py) that make bound pods Running and Ready and
remove pods marked for deletion; `binder=True` stands in for the scheduler
for StatefulSet and Job pods, so each test runs only the controller it is
about (the scheduler's own tests are tests/integration/test_scheduler.py).
DaemonSet tests run the real scheduler: it binds daemon pods, as in
Kubernetes, and the binder's round robin would ignore their node affinity.
Job pods exit with the code in their `hollow.flotilla.dev/exit-code`
annotation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from master.client import Client
from master.client.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.reconcile.daemonset import target_node
from master.scheduler import Scheduler
from protos.apps.v1 import apps_pb2
from protos.batch.v1 import batch_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import eventually, in_process_master, running
from tests.integration.hollow import EXIT_CODE_ANNOTATION, hollow_cluster

NS = "default"
T = TypeVar("T")


@contextlib.asynccontextmanager
async def controllers(client: Client, *names: str, clock: Any = None) -> AsyncIterator[ControllerManager]:
    manager = ControllerManager(client, enabled=list(names), clock=clock,
                                options={"job": {"backoff_base_s": 0}})
    async with running(lambda ready: manager.run(ready=ready), what="controllers"):
        yield manager


@contextlib.asynccontextmanager
async def scheduler(client: Client) -> AsyncIterator[Scheduler]:
    sched = Scheduler(client, seed=1)
    async with running(lambda ready: sched.run(ready=ready), what="scheduler"):
        yield sched


async def kubectl(url: str, *args: str, timeout_s: float = 60) -> str:
    """Run the real kubectl (the dispatcher picks the server's minor) against `url`."""
    proc = await asyncio.create_subprocess_exec(
        "/usr/bin/kubectl", f"--server={url}", "-n", NS, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode()
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {text}"
    return text


def template(labels: dict[str, str], *, restart_policy: str = "Always") -> core_pb2.PodTemplateSpec:
    t = core_pb2.PodTemplateSpec()
    t.metadata.labels.update(labels)
    t.spec.containers.add(name="app", image="busybox:stable")
    t.spec.restart_policy = restart_policy
    return t


async def pods_of(client: Client, selector: str) -> list[core_pb2.Pod]:
    items, _ = await client.list(core_pb2.Pod, namespace=NS, label_selector=selector)
    return items


async def test_daemonset_follows_nodes(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=2) as hc, scheduler(client), controllers(client, "daemonset"):
        await client.create(daemonset("agent"))

        async def nodes_running() -> set[str]:
            return {p.spec.node_name for p in await pods_of(client, "app=agent")
                    if p.status.phase == "Running" and not p.metadata.HasField("deletion_timestamp")}

        async def on_all_nodes() -> bool:
            return await nodes_running() == set(hc.nodes)

        await eventually(on_all_nodes, what="a pod on each node")
        joined = (await hc.add_node()).name
        await eventually(lambda: _has(nodes_running, joined), what="a pod on the joining node")
        status = await eventually(lambda: _ds_status(client, 3), what="DaemonSet status")
        assert (status.desired_number_scheduled, status.current_number_scheduled,
                status.updated_number_scheduled, status.number_misscheduled) == (3, 3, 3, 0)
        # a template change rolls one node at a time; kubectl rollout status reads the status
        current = await client.get(apps_pb2.DaemonSet, "agent", namespace=NS)
        current.spec.template.spec.containers[0].image = "busybox:2"
        await client.update(current)
        out = await kubectl(m.url, "rollout", "status", "ds/agent", "--timeout=60s")
        assert "successfully rolled out" in out
        pods = [p for p in await pods_of(client, "app=agent") if not p.metadata.HasField("deletion_timestamp")]
        assert {p.spec.containers[0].image for p in pods} == {"busybox:2"} and len(pods) == 3
        await hc.remove_node(joined)

        async def gone() -> bool:
            return joined not in {p.spec.node_name for p in await pods_of(client, "app=agent")}

        await eventually(gone, what="the leaving node's pod removed")
        await eventually(lambda: _ds_status(client, 2), what="DaemonSet status after the node left")


def daemonset(name: str, *, cpu: str = "") -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet(api_version="apps/v1", kind="DaemonSet")
    ds.metadata.name, ds.metadata.namespace = name, NS
    ds.spec.selector.match_labels["app"] = name
    ds.spec.template.CopyFrom(template({"app": name}))
    if cpu:
        ds.spec.template.spec.containers[0].resources.requests["cpu"] = cpu
    return ds


async def test_daemonset_pods_are_bound_by_the_scheduler(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=2) as hc, scheduler(client), controllers(client, "daemonset"):
        small = (await hc.add_node(capacity={"cpu": "1", "memory": "8Gi", "pods": "110"})).name
        await client.create(daemonset("light", cpu="100m"))
        await client.create(daemonset("heavy", cpu="2"))

        async def all_running(selector: str, count: int) -> list[core_pb2.Pod] | None:
            pods = [p for p in await pods_of(client, selector) if p.status.phase == "Running"]
            return pods if len(pods) == count else None

        light = await eventually(lambda: all_running("app=light", 3), what="3 light pods Running")
        assert sorted(p.spec.node_name for p in light) == sorted(hc.nodes)
        for p in light:  # created for one node, bound there by the scheduler
            assert target_node(p) == p.spec.node_name
            assert p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
                .node_selector_terms[0].match_fields[0].values == [p.spec.node_name]
            event = await eventually(lambda p=p: _event(client, p.metadata.name, "Scheduled"),
                                     what="Scheduled event")
            assert event.message == f"Successfully assigned {NS}/{p.metadata.name} to {p.spec.node_name}"

        heavy = await eventually(lambda: all_running("app=heavy", 2), what="2 heavy pods Running")
        assert small not in {p.spec.node_name for p in heavy}
        (stuck,) = [p for p in await pods_of(client, "app=heavy") if target_node(p) == small]
        expected = ("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node "
                    "affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims "
                    "found for incoming pod, 2 Preemption is not helpful for scheduling.")

        async def unschedulable() -> core_pb2.PodCondition | None:
            p = await client.get(core_pb2.Pod, stuck.metadata.name, namespace=NS)
            return next((c for c in p.status.conditions if c.type == "PodScheduled" and c.status == "False"), None)

        cond = await eventually(unschedulable, what="PodScheduled=False")
        assert (cond.reason, cond.message) == ("Unschedulable", expected)
        event = await eventually(lambda: _event(client, stuck.metadata.name, "FailedScheduling"),
                                 what="FailedScheduling event")
        assert (event.type, event.message) == ("Warning", expected)

        # Kubernetes' counts: the Pending pod is "scheduled" (its node has a daemon pod), not ready.
        counts = (3, 3, 2, 2, 3, 0, 1)
        got = await eventually(lambda: _counts(client, "heavy", counts), what="heavy DaemonSet status")
        assert got == counts
        assert await eventually(lambda: _counts(client, "light", (3, 3, 3, 3, 3, 0, 0)),
                                what="light DaemonSet status")
        current = await client.get(core_pb2.Pod, stuck.metadata.name, namespace=NS)
        assert current.status.phase == "Pending" and not current.spec.node_name
        assert len(await pods_of(client, "app=heavy")) == 3  # not duplicated while it waits

        await hc.remove_node(small)  # its Pending pod goes with it

        async def stuck_gone() -> bool:
            return stuck.metadata.name not in {p.metadata.name for p in await pods_of(client, "app=heavy")}

        await eventually(stuck_gone, what="the Pending pod of the removed node deleted")
        await eventually(lambda: _counts(client, "heavy", (2, 2, 2, 2, 2, 0, 0)),
                         what="heavy DaemonSet status after the small node left")


async def _event(client: Client, name: str, reason: str) -> core_pb2.Event | None:
    events, _ = await client.list(core_pb2.Event, namespace=NS)
    return next((e for e in events if e.involved_object.name == name and e.reason == reason), None)


async def _counts(client: Client, name: str, want: tuple[int, ...]) -> tuple[int, ...] | None:
    """(desired, current, ready, available, updated, misscheduled, unavailable) once equal to `want`."""
    s = (await client.get(apps_pb2.DaemonSet, name, namespace=NS)).status
    got = (s.desired_number_scheduled, s.current_number_scheduled, s.number_ready, s.number_available,
           s.updated_number_scheduled, s.number_misscheduled, s.number_unavailable)
    return got if got == want else None


async def _has(nodes_running: Callable[[], Awaitable[set[str]]], node: str) -> bool:
    return node in await nodes_running()


async def _ds_status(client: Client, desired: int) -> apps_pb2.DaemonSetStatus | None:
    got = await client.get(apps_pb2.DaemonSet, "agent", namespace=NS)
    s = got.status
    ok = (s.desired_number_scheduled == desired and s.number_available == desired
          and s.updated_number_scheduled == desired and s.observed_generation >= got.metadata.generation)
    return s if ok else None


async def test_statefulset_orders_scale_up_and_down(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=2, binder=True), controllers(client, "statefulset"):
        sts = apps_pb2.StatefulSet(api_version="apps/v1", kind="StatefulSet")
        sts.metadata.name, sts.metadata.namespace = "web", NS
        sts.spec.replicas = 3
        sts.spec.service_name = "nginx"
        sts.spec.selector.match_labels["app"] = "web"
        sts.spec.template.CopyFrom(template({"app": "web"}))
        await client.create(sts)

        log = await _watch_log(client, "web-", until=lambda log: _first(log, "ADDED", "web-2") >= 0)
        # each pod is created only after the one before it was Running and Ready
        assert 0 <= _first(log, "READY", "web-0") < _first(log, "ADDED", "web-1")
        assert 0 <= _first(log, "READY", "web-1") < _first(log, "ADDED", "web-2")
        pods = {p.metadata.name: p for p in await pods_of(client, "app=web")}
        for ordinal in range(3):
            p = pods[f"web-{ordinal}"]
            assert p.spec.hostname == f"web-{ordinal}" and p.spec.subdomain == "nginx"
            assert p.metadata.labels["apps.kubernetes.io/pod-index"] == str(ordinal)
            assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"web-{ordinal}"

        async def ready3() -> apps_pb2.StatefulSetStatus | None:
            s = (await client.get(apps_pb2.StatefulSet, "web", namespace=NS)).status
            return s if s.ready_replicas == 3 and s.updated_replicas == 3 else None

        status = await eventually(ready3, what="3 ready replicas")
        assert status.current_revision == status.update_revision
        first_revision = status.update_revision

        # a rolling update replaces pods from the highest ordinal down
        current = await client.get(apps_pb2.StatefulSet, "web", namespace=NS)
        current.spec.template.spec.containers[0].image = "busybox:2"
        _, rv = await client.list(core_pb2.Pod, namespace=NS)
        await client.update(current)
        out = await kubectl(m.url, "rollout", "status", "sts/web", "--timeout=60s")
        assert "roll" in out and "complete" in out, out
        log = await _watch_log(client, "web-", rv=rv, until=lambda log: _first(log, "DELETED", "web-0") >= 0)
        assert [name for type_, name in log if type_ == "DELETED"] == ["web-2", "web-1", "web-0"]
        status = (await client.get(apps_pb2.StatefulSet, "web", namespace=NS)).status
        assert status.current_revision == status.update_revision != first_revision

        current = await client.get(apps_pb2.StatefulSet, "web", namespace=NS)
        current.spec.replicas = 0
        _, rv = await client.list(core_pb2.Pod, namespace=NS)
        await client.update(current)
        log = await _watch_log(client, "web-", rv=rv, until=lambda log: _first(log, "DELETED", "web-0") >= 0)
        deleted = [name for type_, name in log if type_ == "DELETED"]
        assert deleted == ["web-2", "web-1", "web-0"]
        # one at a time: web-1 is marked for deletion only after web-2 is gone
        assert _first(log, "DELETED", "web-2") < _first(log, "TERMINATING", "web-1")
        assert _first(log, "DELETED", "web-1") < _first(log, "TERMINATING", "web-0")


async def _watch_log(client: Client, prefix: str, *, until: Callable[[list[tuple[str, str]]], bool],
                     rv: str = "0") -> list[tuple[str, str]]:
    """(ADDED|READY|TERMINATING|DELETED, pod name) in the order the watch shows them, each once."""
    log: list[tuple[str, str]] = []

    async def follow() -> None:
        nonlocal rv
        while True:
            async for event in client.watch(core_pb2.Pod, namespace=NS, resource_version=rv,
                                            timeout_seconds=60):
                pod = event.object
                rv = pod.metadata.resource_version
                if not pod.metadata.name.startswith(prefix):
                    continue
                for kind, happened in (
                        ("ADDED", event.type == "ADDED"),
                        ("READY", any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)),
                        ("TERMINATING", pod.metadata.HasField("deletion_timestamp")),
                        ("DELETED", event.type == "DELETED")):
                    if happened and (kind, pod.metadata.name) not in log:
                        log.append((kind, pod.metadata.name))
                if until(log):
                    return

    await asyncio.wait_for(follow(), 60)
    return log


def _first(log: list[tuple[str, str]], kind: str, name: str) -> int:
    return log.index((kind, name)) if (kind, name) in log else -1


async def test_job_completes(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=2, binder=True), controllers(client, "job"):
        job = batch_pb2.Job(api_version="batch/v1", kind="Job")
        job.metadata.name, job.metadata.namespace = "pi", NS
        job.spec.completions, job.spec.parallelism = 5, 2
        job.spec.template.CopyFrom(template({"app": "pi"}, restart_policy="Never"))
        job.spec.template.metadata.annotations[EXIT_CODE_ANNOTATION] = "0"
        await client.create(job)
        peak = 0

        async def complete() -> batch_pb2.Job | None:
            nonlocal peak
            running = [p for p in await pods_of(client, "job-name=pi")
                       if p.status.phase not in ("Succeeded", "Failed")]
            peak = max(peak, len(running))
            got = await client.get(batch_pb2.Job, "pi", namespace=NS)
            done = any(c.type == "Complete" and c.status == "True" for c in got.status.conditions)
            return got if done else None

        watcher = asyncio.create_task(eventually(complete, timeout_s=60, what="the Job to complete"))
        out = await kubectl(m.url, "wait", "--for=condition=complete", "job/pi", "--timeout=60s")
        assert "condition met" in out
        got = await watcher
        assert got.status.succeeded == 5 and got.status.active == 0
        assert got.status.HasField("completion_time") and got.status.HasField("start_time")
        types = {c.type for c in got.status.conditions}
        assert {"SuccessCriteriaMet", "Complete"} <= types
        assert peak <= 2
        pods = await pods_of(client, "job-name=pi")
        assert len([p for p in pods if p.status.phase == "Succeeded"]) == 5
        events, _ = await client.list(core_pb2.Event, namespace=NS)
        reasons = {e.reason for e in events if e.involved_object.name == "pi"}
        assert {"SuccessfulCreate", "Completed"} <= reasons


async def test_job_backoff_limit(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=1, binder=True), controllers(client, "job"):
        job = batch_pb2.Job(api_version="batch/v1", kind="Job")
        job.metadata.name, job.metadata.namespace = "fails", NS
        job.spec.backoff_limit = 1
        job.spec.template.CopyFrom(template({"app": "fails"}, restart_policy="Never"))
        job.spec.template.metadata.annotations[EXIT_CODE_ANNOTATION] = "1"
        await client.create(job)

        async def failed() -> batch_pb2.Job | None:
            got = await client.get(batch_pb2.Job, "fails", namespace=NS)
            return got if any(c.type == "Failed" and c.status == "True"
                              for c in got.status.conditions) else None

        got = await eventually(failed, timeout_s=60, what="the Job to fail")
        reasons = {c.type: c.reason for c in got.status.conditions}
        assert reasons["Failed"] == reasons["FailureTarget"] == "BackoffLimitExceeded"
        assert got.status.failed == 2


async def test_cronjob_fires(etcd_cluster: Any) -> None:
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=1, binder=True):
        start = datetime.now(UTC)
        clock = FakeClock(wall_start=start)
        async with controllers(client, "cronjob", "job", clock=clock):
            cj = batch_pb2.CronJob(api_version="batch/v1", kind="CronJob")
            cj.metadata.name, cj.metadata.namespace = "tick", NS
            cj.spec.schedule = "* * * * *"
            cj.spec.job_template.spec.template.CopyFrom(template({"app": "tick"}, restart_policy="Never"))
            cj.spec.job_template.spec.template.metadata.annotations[EXIT_CODE_ANNOTATION] = "0"
            await client.create(cj)
            await asyncio.sleep(0.5)
            items, _ = await client.list(batch_pb2.Job, namespace=NS)
            assert items == []  # the next minute has not come on the controllers' clock
            next_minute = (start + timedelta(minutes=1)).replace(second=0, microsecond=0)
            clock.advance((next_minute - start).total_seconds() + 1)

            async def fired() -> list[batch_pb2.Job]:
                return (await client.list(batch_pb2.Job, namespace=NS))[0]

            (job,) = await eventually(fired, what="the CronJob's Job")
            assert job.metadata.name == f"tick-{int(next_minute.timestamp()) // 60}"
            ref = job.metadata.owner_references[0]
            assert (ref.kind, ref.name, ref.controller, ref.block_owner_deletion) == ("CronJob", "tick", True, True)

            # the Job runs to completion; the CronJob sees it finish
            async def finished() -> batch_pb2.CronJobStatus | None:
                s = (await client.get(batch_pb2.CronJob, "tick", namespace=NS)).status
                return s if not s.active and s.HasField("last_successful_time") else None

            s = await eventually(finished, what="CronJob status after its Job completed")
            assert s.last_schedule_time.ToDatetime().replace(tzinfo=UTC) == next_minute
            events, _ = await client.list(core_pb2.Event, namespace=NS)
            reasons = {e.reason for e in events if e.involved_object.name == "tick"}
            assert {"SuccessfulCreate", "SawCompletedJob"} <= reasons
