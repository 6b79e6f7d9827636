"""Deployments, ReplicaSets and ReplicationControllers end to end, driven by kubectl.

A real `flotilla-master` subprocess (apiserver + controllers behind leader
election, and the scheduler) on the session's etcd cluster, hollow nodes in
the test's event loop playing three node agents, and the machine's kubectl for every user action. kubectl
runs in a thread so the hollow nodes keep heartbeating while it waits.

One master and one hollow cluster serve the module; each test works in a
namespace of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf import json_format

from deploy.etcd_cluster import EtcdCluster
from master.client import Client
from master.client.informer import InformerFactory
from master.reconcile.replicaset import is_pod_ready
from protos.apps.v1 import apps_pb2
from protos.core.v1 import core_pb2
from tests.integration.harness import MasterProcess, master_process
from tests.integration.hollow import hollow_cluster
from tests.integration.test_kubectl import matching_kubectl

TIMEOUT_S = 60


@dataclass
class Env:
    master: MasterProcess
    client: Client
    binary: str
    workdir: Path

    async def kubectl(self, *args: str, stdin: str | None = None, timeout_s: float = TIMEOUT_S,
                      ok: bool = True) -> subprocess.CompletedProcess[str]:
        res = await asyncio.to_thread(
            subprocess.run, [self.binary, *args], input=stdin, capture_output=True, text=True,
            env=self.master.env(), timeout=timeout_s + 10, check=False)
        if ok:
            assert res.returncode == 0, self.explain(args, res)
        return res

    def explain(self, args: tuple[str, ...], res: subprocess.CompletedProcess[str]) -> str:
        log = self.master.log_path.read_text(errors="replace")[-3000:]
        return (f"kubectl {' '.join(args)} -> exit {res.returncode}\nstdout:\n{res.stdout}\n"
                f"stderr:\n{res.stderr}\nmaster log tail:\n{log}")

    async def apply(self, text: str) -> None:
        await self.kubectl("apply", "-f", "-", stdin=text)

    async def pods(self, ns: str, app: str) -> list[core_pb2.Pod]:
        pods, _ = await self.client.list(core_pb2.Pod, namespace=ns, label_selector=f"app={app}")
        return [p for p in pods if not p.metadata.HasField("deletion_timestamp")]


async def wait_for(what: str, check: Callable[[], object], *, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def master(etcd_cluster: EtcdCluster) -> Iterator[tuple[MasterProcess, Path]]:
    with tempfile.TemporaryDirectory(prefix="flotilla-deploy-") as tmp, \
            master_process(etcd_cluster.endpoints, Path(tmp)) as m:
        yield m, Path(tmp)


@pytest_asyncio.fixture
async def env(master: tuple[MasterProcess, Path]) -> AsyncIterator[Env]:
    m, tmp = master
    async with await Client.connect(m.grpc_target) as client, \
            hollow_cluster(client, nodes=3, binder=False):
        yield Env(m, client, matching_kubectl(m), tmp)


def deployment_yaml(ns: str, name: str, *, replicas: int, image: str = "nginx:1.25",
                    surge: str = "1", unavailable: str = "1", strategy: str = "RollingUpdate") -> str:
    rolling = (f"\n    rollingUpdate:\n      maxSurge: {surge}\n      maxUnavailable: {unavailable}"
               if strategy == "RollingUpdate" else "")
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  strategy:
    type: {strategy}{rolling}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: main
        image: {image}
"""


def fresh_ns() -> str:
    return f"dep-{uuid.uuid4().hex[:8]}"


@dataclass
class BoundsWatch:
    """Every pod change of one app, checked against the rollout's bounds as it happens."""

    max_pods: int
    min_available: int
    violations: list[str] = field(default_factory=list)
    states: int = 0
    armed: bool = False  # the informer's first list arrives pod by pod: not a state

    def check(self, pods: list[core_pb2.Pod]) -> None:
        if not self.armed:
            return
        active = [p for p in pods if not p.metadata.HasField("deletion_timestamp")
                  and p.status.phase not in ("Succeeded", "Failed")]
        ready = [p for p in active if is_pod_ready(p)]
        self.states += 1
        if len(active) > self.max_pods:
            self.violations.append(f"{len(active)} pods > {self.max_pods}")
        if len(ready) < self.min_available:
            self.violations.append(f"{len(ready)} available < {self.min_available}")


@contextlib.asynccontextmanager
async def watch_bounds(client: Client, ns: str, app: str, bounds: BoundsWatch) -> AsyncIterator[BoundsWatch]:
    factory = InformerFactory(lambda cls, **kw: client.lister_watcher(
        cls, namespace=ns, label_selector=f"app={app}"))
    informer = factory.informer(core_pb2.Pod)

    def on_change(*_: object) -> None:
        bounds.check(informer.list())

    informer.add_handler(on_add=on_change, on_update=on_change, on_delete=on_change)
    ready = asyncio.Event()
    task = asyncio.create_task(factory.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        bounds.armed = True
        bounds.check(informer.list())
        yield bounds
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_deployment_spreads_scales_rolls_and_undoes(env: Env) -> None:
    ns = fresh_ns()
    await env.apply(deployment_yaml(ns, "web", replicas=3))
    await env.kubectl("wait", "--for=condition=Available", "deployment/web", "-n", ns, "--timeout=60s")
    await env.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    pods = await env.pods(ns, "web")
    assert len(pods) == 3
    assert len({p.spec.node_name for p in pods}) == 3, [p.spec.node_name for p in pods]
    assert all(p.metadata.name.startswith("web-") and len(p.metadata.name.split("-")[-1]) == 5 for p in pods)

    await env.kubectl("scale", "deployment/web", "--replicas=10", "-n", ns)
    await env.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    await wait_for("10 ready pods", lambda: _ready_count(env, ns, "web", 10))

    # An image change rolls within maxSurge 1 / maxUnavailable 1 at every observed state.
    async with watch_bounds(env.client, ns, "web", BoundsWatch(max_pods=11, min_available=9)) as bounds:
        await env.kubectl("set", "image", "deployment/web", "main=nginx:1.26", "-n", ns)
        await env.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout_s=90)
    assert bounds.states > 10 and not bounds.violations, bounds.violations[:5]
    pods = await env.pods(ns, "web")
    assert len(pods) == 10 and {p.spec.containers[0].image for p in pods} == {"nginx:1.26"}

    history = (await env.kubectl("rollout", "history", "deployment/web", "-n", ns)).stdout
    assert "1 " in history and "2 " in history, history
    first_revision = (await env.kubectl("rollout", "history", "deployment/web", "-n", ns, "--revision=1")).stdout
    assert "nginx:1.25" in first_revision and "pod-template-hash" in first_revision, first_revision
    rss, _ = await env.client.list(apps_pb2.ReplicaSet, namespace=ns)
    assert sorted(rs.metadata.annotations["deployment.kubernetes.io/revision"] for rs in rss) == ["1", "2"]

    await env.kubectl("rollout", "undo", "deployment/web", "-n", ns)
    await env.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", timeout_s=90)
    d = await env.client.get(apps_pb2.Deployment, "web", namespace=ns)
    assert d.spec.template.spec.containers[0].image == "nginx:1.25"
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    rss, _ = await env.client.list(apps_pb2.ReplicaSet, namespace=ns)
    assert len(rss) == 2, "the undo reuses the first ReplicaSet instead of making a new one:\n" + "\n".join(
        json.dumps(json_format.MessageToDict(rs.spec.template), sort_keys=True) for rs in rss)
    first = next(rs for rs in rss if rs.spec.template.spec.containers[0].image == "nginx:1.25")
    assert first.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert first.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    pods = await env.pods(ns, "web")
    assert {p.spec.containers[0].image for p in pods} == {"nginx:1.25"}


async def _ready_count(env: Env, ns: str, app: str, n: int) -> bool:
    pods = await env.pods(ns, app)
    return len(pods) == n and all(is_pod_ready(p) for p in pods)


async def test_pause_resume_restart(env: Env) -> None:
    ns = fresh_ns()
    await env.apply(deployment_yaml(ns, "api", replicas=2))
    await env.kubectl("rollout", "status", "deployment/api", "-n", ns, "--timeout=60s")
    await env.kubectl("rollout", "pause", "deployment/api", "-n", ns)
    await env.kubectl("set", "image", "deployment/api", "main=nginx:1.27", "-n", ns)

    async def progressing_reason() -> str:
        d = await env.client.get(apps_pb2.Deployment, "api", namespace=ns)
        return next((c.reason for c in d.status.conditions if c.type == "Progressing"), "")

    await wait_for("DeploymentPaused", lambda: _eq(progressing_reason(), "DeploymentPaused"))
    await asyncio.sleep(1.0)
    rss, _ = await env.client.list(apps_pb2.ReplicaSet, namespace=ns)
    assert len(rss) == 1, "a paused deployment does not roll"
    res = await env.kubectl("rollout", "restart", "deployment/api", "-n", ns, ok=False)
    assert res.returncode != 0 and "paused" in res.stderr

    await env.kubectl("rollout", "resume", "deployment/api", "-n", ns)
    await env.kubectl("rollout", "status", "deployment/api", "-n", ns, "--timeout=60s")
    pods = await env.pods(ns, "api")
    assert {p.spec.containers[0].image for p in pods} == {"nginx:1.27"}

    await env.kubectl("rollout", "restart", "deployment/api", "-n", ns)
    await env.kubectl("rollout", "status", "deployment/api", "-n", ns, "--timeout=60s")
    d = await env.client.get(apps_pb2.Deployment, "api", namespace=ns)
    assert "kubectl.kubernetes.io/restartedAt" in d.spec.template.metadata.annotations
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    out = json.loads((await env.kubectl("get", "deployment/api", "-n", ns, "-o", "json")).stdout)
    assert out["status"]["updatedReplicas"] == out["status"]["availableReplicas"] == 2
    assert {c["type"]: c["reason"] for c in out["status"]["conditions"]} == {
        "Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}


async def _eq(value: object, expected: object) -> bool:
    if asyncio.iscoroutine(value):
        value = await value
    return value == expected


async def test_recreate_replaces_every_pod(env: Env) -> None:
    ns = fresh_ns()
    await env.apply(deployment_yaml(ns, "batch", replicas=3, strategy="Recreate"))
    await env.kubectl("rollout", "status", "deployment/batch", "-n", ns, "--timeout=60s")
    async with watch_bounds(env.client, ns, "batch", BoundsWatch(max_pods=3, min_available=0)) as bounds:
        await env.kubectl("set", "image", "deployment/batch", "main=nginx:1.26", "-n", ns)
        await env.kubectl("rollout", "status", "deployment/batch", "-n", ns, "--timeout=60s")
    assert not bounds.violations, bounds.violations[:5]
    pods = await env.pods(ns, "batch")
    assert len(pods) == 3 and {p.spec.containers[0].image for p in pods} == {"nginx:1.26"}


async def test_replication_controller_replaces_deleted_pods(env: Env) -> None:
    ns = fresh_ns()
    await env.apply(f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: legacy
  namespace: {ns}
spec:
  replicas: 2
  selector:
    app: legacy
  template:
    metadata:
      labels:
        app: legacy
    spec:
      containers:
      - name: main
        image: nginx:1.25
""")
    await wait_for("2 ready pods", lambda: _ready_count(env, ns, "legacy", 2))
    victim = (await env.pods(ns, "legacy"))[0]
    await env.kubectl("delete", "pod", victim.metadata.name, "-n", ns)
    await wait_for("a replacement", lambda: _replaced(env, ns, victim.metadata.name))
    rc = await env.client.get(core_pb2.ReplicationController, "legacy", namespace=ns)
    await wait_for("status", lambda: _rc_status(env, ns))
    assert rc.metadata.name == "legacy"


async def _replaced(env: Env, ns: str, gone: str) -> bool:
    pods = await env.pods(ns, "legacy")
    return len(pods) == 2 and gone not in {p.metadata.name for p in pods} and all(map(is_pod_ready, pods))


async def _rc_status(env: Env, ns: str) -> bool:
    rc = await env.client.get(core_pb2.ReplicationController, "legacy", namespace=ns)
    s = rc.status
    return (s.replicas, s.ready_replicas, s.available_replicas, s.fully_labeled_replicas) == (2, 2, 2, 2) \
        and s.observed_generation == rc.metadata.generation


async def test_replicaset_adopts_orphans_and_releases_strays(env: Env) -> None:
    ns = fresh_ns()
    await env.kubectl("create", "namespace", ns)
    orphan = core_pb2.Pod(api_version="v1", kind="Pod")
    orphan.metadata.name, orphan.metadata.namespace = "orphan", ns
    orphan.metadata.labels["app"] = "owned"
    orphan.spec.containers.add(name="main", image="nginx:1.25")
    await env.client.create(orphan)
    await env.apply(f"""\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: owned
  namespace: {ns}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: owned
  template:
    metadata:
      labels:
        app: owned
    spec:
      containers:
      - name: main
        image: nginx:1.25
""")
    await wait_for("2 ready pods", lambda: _ready_count(env, ns, "owned", 2))
    pod = await env.client.get(core_pb2.Pod, "orphan", namespace=ns)
    assert [r.kind for r in pod.metadata.owner_references] == ["ReplicaSet"], "the orphan was adopted"
    # Relabel it: it is released and a new pod takes its place.
    await env.kubectl("label", "pod", "orphan", "app=stray", "--overwrite", "-n", ns)

    async def released() -> bool:
        p = await env.client.get(core_pb2.Pod, "orphan", namespace=ns)
        return not p.metadata.owner_references and await _ready_count(env, ns, "owned", 2)

    await wait_for("release and replacement", released)
    out = (await env.kubectl("get", "rs", "owned", "-n", ns)).stdout
    assert out.split("\n")[1].split()[1:4] == ["2", "2", "2"], out


async def test_progress_deadline_history_limit_and_min_ready(env: Env) -> None:
    ns = fresh_ns()
    text = deployment_yaml(ns, "slow", replicas=2, surge="1", unavailable="0")
    text = text.replace("  replicas: 2\n", "  replicas: 2\n  minReadySeconds: 1\n  revisionHistoryLimit: 1\n"
                        "  progressDeadlineSeconds: 3\n")
    await env.apply(text)
    await env.kubectl("rollout", "status", "deployment/slow", "-n", ns, "--timeout=60s")
    d = await env.client.get(apps_pb2.Deployment, "slow", namespace=ns)
    rss, _ = await env.client.list(apps_pb2.ReplicaSet, namespace=ns)
    assert d.status.available_replicas == 2 and rss[0].spec.min_ready_seconds == 1

    # Two more revisions: with revisionHistoryLimit 1 only one old ReplicaSet stays.
    for image in ("nginx:1.26", "nginx:1.27"):
        await env.kubectl("set", "image", "deployment/slow", f"main={image}", "-n", ns)
        await env.kubectl("rollout", "status", "deployment/slow", "-n", ns, "--timeout=60s")

    async def two_sets() -> bool:
        rss, _ = await env.client.list(apps_pb2.ReplicaSet, namespace=ns)
        return sorted(r.metadata.annotations["deployment.kubernetes.io/revision"] for r in rss) == ["2", "3"]

    await wait_for("history cleanup", two_sets)

    # New pods that never turn Ready: the rollout misses its 3 s deadline.
    await env.kubectl("patch", "deployment/slow", "-n", ns, "-p", json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"hollow.flotilla.dev/ready": "false"}}}}}))
    res = await env.kubectl("rollout", "status", "deployment/slow", "-n", ns, "--timeout=60s", ok=False)
    assert res.returncode != 0 and "exceeded its progress deadline" in res.stderr, env.explain(("rollout",), res)
    d = await env.client.get(apps_pb2.Deployment, "slow", namespace=ns)
    progressing = next(c for c in d.status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("False", "ProgressDeadlineExceeded")
    assert {c.type: c.status for c in d.status.conditions}["Available"] == "True", "maxUnavailable 0 held"
