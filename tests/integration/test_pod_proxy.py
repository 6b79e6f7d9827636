"""kubectl logs / logs -f / exec through a real master's pods/log and pods/exec
proxy to a node agent's HTTP server (FakeRuntime, FakePodNetwork, statuses
written through the real apiserver by ClientNodeAPI).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio
from google.protobuf import json_format

from deploy.etcd_cluster import EtcdCluster
from master.client.client import Client
from master.client.events import EventRecorder
from master.kubeconfig import write_kubeconfig
from node_agent.network.fake import FakePodNetwork
from node_agent.pods.api import ClientNodeAPI
from node_agent.pods.manager import PodManager
from node_agent.runtime.fake import FakeRuntime
from node_agent.server import AgentServer
from protos.core.v1 import core_pb2
from tests.integration.harness import InProcessMaster, in_process_master
from tests.integration.test_kubectl import matching_kubectl

NODE = "proxy-node"


@dataclass
class Setup:
    master: InProcessMaster
    client: Client
    runtime: FakeRuntime
    manager: PodManager
    server: AgentServer
    kubeconfig: Path
    kubectl: str

    def kube(self, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.kubeconfig.parent))
        return subprocess.run([self.kubectl, *args], capture_output=True, text=True, env=env, timeout=timeout_s)

    def kube_input(self, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), HOME=str(self.kubeconfig.parent))
        return subprocess.run([self.kubectl, *args], input=stdin, capture_output=True, text=True, env=env,
                              timeout=30)

    async def akube(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.kube, *args)


def _msg(cls: type, body: dict) -> object:
    m = cls()
    json_format.ParseDict(body, m)
    return m


@pytest_asyncio.fixture
async def setup(etcd_cluster: EtcdCluster, tmp_path: Path) -> AsyncIterator[Setup]:
    async with in_process_master(etcd_cluster.endpoints) as m:
        client = await Client.connect(m.grpc_target)
        runtime = FakeRuntime()
        events = EventRecorder(client, "kubelet", host=NODE)
        manager = PodManager(runtime, FakePodNetwork(), ClientNodeAPI(client), node_name=NODE,
                             root_dir=str(tmp_path / "agent"), host_ip="127.0.0.1", relist_period_s=0.2,
                             events=events)
        server = AgentServer(manager, runtime, host="127.0.0.1", port=0, read_only_port=0)
        ready, served = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(manager.run(ready=ready)), asyncio.create_task(server.run(ready=served)),
                 asyncio.create_task(events.run())]
        try:
            await asyncio.wait_for(asyncio.gather(ready.wait(), served.wait()), 30)
            node = _msg(core_pb2.Node, {"metadata": {"name": NODE}})
            await client.create(node)
            node = await client.get(core_pb2.Node, NODE)
            node.status.addresses.add(type="InternalIP", address="127.0.0.1")
            node.status.daemon_endpoints.kubelet_endpoint.port = server.bound["main"]
            await client.update_status(node)
            kubeconfig = tmp_path / "kubeconfig"
            write_kubeconfig(kubeconfig, m.url)
            kubectl = await asyncio.to_thread(matching_kubectl, m)  # type: ignore[arg-type]
            yield Setup(m, client, runtime, manager, server, kubeconfig, kubectl)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()


async def _running_pod(s: Setup, name: str, containers: list[dict]) -> core_pb2.Pod:
    pod = _msg(core_pb2.Pod, {"metadata": {"name": name, "namespace": "default"},
                              "spec": {"nodeName": NODE, "containers": containers}})
    pod = await s.client.create(pod)
    s.manager.upsert_pod(pod)
    for _ in range(300):
        got = await s.client.get(core_pb2.Pod, name, namespace="default")
        if got.status.phase == "Running":
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"pod {name} never Running through the apiserver")


def _cid(pod: core_pb2.Pod, container: str) -> str:
    cs = next(c for c in pod.status.container_statuses if c.name == container)
    return cs.container_id.removeprefix("docker://")


async def test_kubectl_logs_and_exec_through_the_master(setup: Setup) -> None:
    s = setup
    pod = await _running_pod(s, "talker", [{"name": "app", "image": "flotilla/busybox:test"}])
    s.runtime.logs[_cid(pod, "app")] = [b"line one\n", b"line two\n", b"line three\n"]
    res = await s.akube("logs", "talker")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "line one\nline two\nline three\n"
    res = await s.akube("logs", "talker", "--tail=1")
    assert res.stdout == "line three\n", res.stderr
    res = await s.akube("logs", "-f", "talker")
    assert res.returncode == 0 and res.stdout.endswith("line three\n"), res.stderr

    s.runtime.exec_results[("cat", "/etc/hostname")] = (0, b"talker\n")
    res = await s.akube("exec", "talker", "--", "cat", "/etc/hostname")
    assert (res.returncode, res.stdout) == (0, "talker\n"), res.stderr
    res = await asyncio.to_thread(s.kube_input, "typed through the proxy\n", "exec", "-i", "talker", "--", "cat")
    assert (res.returncode, res.stdout) == (0, "typed through the proxy\n"), res.stderr
    s.runtime.exec_results[("false",)] = (3, b"")
    res = await s.akube("exec", "talker", "--", "false")
    assert res.returncode == 3, res.stderr
    assert "exit code 3" in res.stderr

    # The status the agent wrote is what the apiserver serves.
    got = json.loads((await s.akube("get", "pod", "talker", "-o", "json")).stdout)
    assert got["status"]["phase"] == "Running" and got["status"]["podIP"].startswith("10.244.0.")
    ready = next(c for c in got["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    # The agent's Events, as kubectl describe shows them.
    described = await s.akube("describe", "pod", "talker")
    assert "Started container app" in described.stdout and "kubelet" in described.stdout, described.stdout


async def test_proxy_errors_are_statuses(setup: Setup) -> None:
    s = setup
    await _running_pod(s, "two", [{"name": "a", "image": "flotilla/busybox:test"},
                                  {"name": "b", "image": "flotilla/busybox:test"}])
    base = f"{s.master.url}/api/v1/namespaces/default/pods"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/two/log") as r:
            body = await r.json()
            assert r.status == 400 and "choose one of: [a b]" in body["message"]
        async with http.get(f"{base}/two/log?container=zz") as r:
            assert r.status == 400 and (await r.json())["message"] == "container zz is not valid for pod two"
        async with http.get(f"{base}/nosuch/log") as r:
            assert r.status == 404 and (await r.json())["reason"] == "NotFound"
        async with http.get(f"{base}/two/exec?container=a&command=ls") as r:
            assert r.status == 400 and "WebSocket" in (await r.json())["message"]

    # kubectl exec into a container that cannot start: the agent's reason, not a bare handshake error.
    stuck = _msg(core_pb2.Pod, {"metadata": {"name": "stuck", "namespace": "default"}, "spec": {
        "nodeName": NODE, "containers": [{"name": "app", "image": "flotilla/busybox:test", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]}})
    stuck = await s.client.create(stuck)
    s.manager.upsert_pod(stuck)
    for _ in range(300):
        got = await s.client.get(core_pb2.Pod, "stuck", namespace="default")
        if any(c.state.waiting.reason == "CreateContainerConfigError" for c in got.status.container_statuses):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("stuck never showed CreateContainerConfigError")
    res = await s.akube("exec", "stuck", "--", "ls")
    assert res.returncode != 0
    assert 'container "app" in pod "stuck" is waiting to start: CreateContainerConfigError' in res.stderr, res.stderr
