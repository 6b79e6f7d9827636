"""Pods in real Docker through the node agent (one host in a namespace of the test's own).

Each test starts an agent host (tests/e2e/pods_harness.py) and removes every
container labelled with its node at the end, even on failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time
import uuid
from contextlib import suppress
from pathlib import Path

import aiohttp

from node_agent.runtime.interface import LABEL_KIND, LABEL_NODE, LABEL_POD_UID, PodSandboxConfig
from protos.core.v1 import core_pb2
from tests.e2e.pods_harness import agent_host, local_registry
from tests.unit.pod_fixtures import make_pod

IMG = "flotilla/busybox:test"


def web_pod(node: str) -> core_pb2.Pod:
    return make_pod("web", node=node, containers=[
        {"name": "web", "image": IMG, "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
         "ports": [{"name": "http", "containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1,
                            "timeoutSeconds": 10},
         "volumeMounts": [{"name": "site", "mountPath": "/www"}, {"name": "secret", "mountPath": "/etc/sec"}],
         "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "site", "key": "greeting"}}},
                 {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                 {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                 {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
         "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
        {"name": "side", "image": IMG, "command": ["sh", "-c",
         "while true; do timeout 3 busybox wget -qO- http://localhost:8080/index.html; sleep 1; done"]},
    ], volumes=[{"name": "site", "configMap": {"name": "site"}}, {"name": "secret", "secret": {"secretName": "creds"}}])


async def http_get(url: str) -> str:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s, s.get(url) as r:
        return await r.text()


async def test_two_container_pod_logs_exec_volumes_restart_and_bad_image(tmp_path: Path) -> None:
    async with agent_host(tmp_path) as host:
        host.api.config_maps[("default", "site")] = core_pb2.ConfigMap(
            data={"index.html": "version one\n", "greeting": "hello"})
        host.api.secrets[("default", "creds")] = core_pb2.Secret(data={"password": b"s3cret"})
        pod = web_pod(host.node)
        # A registry on a closed loopback port: the pull fails with Docker's message, off the network.
        bad = make_pod("bad", node=host.node, containers=[{"name": "app", "image": "127.0.0.1:9/nosuch:1"}])
        host.manager.set_pods([pod, bad])

        await host.wait(lambda: host.status(pod).phase == "Running", what="web Running")
        await host.wait(lambda: host.condition(pod, "Ready") == "True", what="web Ready (httpGet readiness)")
        st = host.status(pod)
        assert ipaddress.ip_address(st.pod_ip) in ipaddress.ip_network(host.pod_cidr)
        assert await http_get(f"http://{st.pod_ip}:8080/index.html") == "version one\n"

        # The sidecar reaches the web container on localhost.
        async def side_log() -> str:
            return await http_get(f"http://127.0.0.1:{host.port}/containerLogs/default/web/side")
        deadline = time.monotonic() + 30
        while "version one" not in await side_log():
            assert time.monotonic() < deadline, "sidecar never reached localhost:8080"
            await asyncio.sleep(0.5)
        tail = await http_get(f"http://127.0.0.1:{host.port}/containerLogs/default/web/side?tailLines=1")
        assert tail == "version one\n"

        # exec through the agent: hostname, env, secret file, /etc/hosts, exit codes, stdin.
        out, _, status = await host.exec(pod, "web", ["cat", "/etc/hostname"])
        assert out == b"web\n" and status["status"] == "Success"
        out, _, _ = await host.exec(pod, "web", ["sh", "-c", "echo $GREETING $PASSWORD $POD_NAME $POD_IP"])
        assert out.decode().split() == ["hello", "s3cret", "web", st.pod_ip]
        out, _, _ = await host.exec(pod, "web", ["cat", "/etc/resolv.conf"])
        assert b"nameserver 10.96.0.10" in out and b"search default.svc.cluster.local svc.cluster.local" in out
        assert b"ndots:5" in out
        out, _, _ = await host.exec(pod, "web", ["cat", "/etc/sec/password", "/etc/hosts"])
        assert out.startswith(b"s3cret") and f"{st.pod_ip}\tweb".encode() in out
        out, err, status = await host.exec(pod, "web", ["sh", "-c", "echo out; echo err >&2; exit 3"],
                                           protocol="v4.channel.k8s.io")
        assert (out, err) == (b"out\n", b"err\n")
        assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "3"
        out, _, _ = await host.exec(pod, "web", ["cat"], stdin=b"typed in\n")
        assert out == b"typed in\n"
        out, err, status = await host.exec(pod, "web", ["sh", "-c", "tty; echo to-stderr >&2"], tty=True)
        assert b"/dev/pts/" in out and b"to-stderr" in out and err == b"" and status["status"] == "Success"

        # configMap volume follows the object.
        host.api.config_maps[("default", "site")] = core_pb2.ConfigMap(
            data={"index.html": "version two\n", "greeting": "hello"})
        deadline = time.monotonic() + 30
        while await http_get(f"http://{st.pod_ip}:8080/index.html") != "version two\n":
            assert time.monotonic() < deadline, "configMap volume not updated"
            await asyncio.sleep(0.5)

        # The bad image fails alone, clearly.
        await host.wait(lambda: host.cstatus(bad, "app").state.waiting.reason in ("ErrImagePull", "ImagePullBackOff"),
                        what="ErrImagePull")
        await host.wait(lambda: host.cstatus(bad, "app").state.waiting.reason == "ImagePullBackOff",
                        what="ImagePullBackOff")
        assert host.status(bad).phase == "Pending"
        assert host.status(pod).phase == "Running"

        # kill -9 of the app's process: restarted, restartCount 1, same pod IP.
        web_id = host.cstatus(pod, "web").container_id.removeprefix("docker://")
        pid = (await host.runtime.container_status(web_id)).pid
        os.kill(pid, signal.SIGKILL)
        await host.wait(lambda: host.cstatus(pod, "web").restart_count == 1
                        and host.cstatus(pod, "web").state.HasField("running"), what="restart after kill -9")
        cs = host.cstatus(pod, "web")
        assert cs.last_state.terminated.exit_code == 137 and cs.container_id != f"docker://{web_id}"
        assert host.status(pod).pod_ip == st.pod_ip

        # Logs of the instance before (previous), timestamps, limits; clear errors.
        base = f"http://127.0.0.1:{host.port}/containerLogs/default/web"
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/web?previous=true") as r:
                assert r.status == 200
            async with s.get(f"{base}/side?previous=true") as r:
                assert r.status == 400
                assert (await r.json())["message"] == 'previous terminated container "side" in pod "web" not found'
            async with s.get(f"{base}/side?timestamps=true&tailLines=2&sinceSeconds=600") as r:
                lines = (await r.text()).splitlines()
                assert len(lines) == 2 and all(line[:4].isdigit() and line[10] == "T" for line in lines)
            async with s.get(f"{base}/side?limitBytes=5") as r:
                assert (await r.text()).encode() == (await side_log()).encode()[:5]
            async with s.get(f"{base}/nosuch") as r:
                assert r.status == 400 and "is not valid for pod web" in (await r.json())["message"]

        # The read-only port.
        assert await http_get(f"http://127.0.0.1:{host.read_only_port}/healthz") == "ok"
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{host.read_only_port}/pods") as r:
            listed = await r.json()
        assert listed["kind"] == "PodList" and {p["metadata"]["name"] for p in listed["items"]} == {"web", "bad"}
        assert any(p["status"].get("podIP") == st.pod_ip for p in listed["items"])


async def test_probes_policies_and_oom(tmp_path: Path) -> None:
    async with agent_host(tmp_path) as host:
        probed = make_pod("probed", node=host.node, containers=[{
            "name": "app", "image": IMG, "command": ["sh", "-c", "touch /tmp/alive; exec sleep 3600"],
            "livenessProbe": {"exec": {"command": ["cat", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 2,
                              "timeoutSeconds": 10},
            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "timeoutSeconds": 10},
        }], terminationGracePeriodSeconds=1)
        never = make_pod("never", node=host.node, restartPolicy="Never",
                         containers=[{"name": "app", "image": IMG,
                                      "command": ["sh", "-c", "echo bye > /dev/termination-log; exit 3"]}])
        onfailure = make_pod("onfailure", node=host.node, restartPolicy="OnFailure",
                             containers=[{"name": "app", "image": IMG, "command": ["true"]}])
        oom = make_pod("oom", node=host.node, restartPolicy="Never", containers=[{
            "name": "hog", "image": IMG, "command": ["sh", "-c", "tail /dev/zero"],
            "resources": {"limits": {"memory": "24Mi"}}}])
        init = make_pod("init", node=host.node, initContainers=[
            {"name": "first", "image": IMG, "command": ["sh", "-c", "echo one > /work/log"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            {"name": "second", "image": IMG, "command": ["sh", "-c", "echo two >> /work/log"],
             "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        ], containers=[{"name": "app", "image": IMG, "command": ["sleep", "3600"],
                        "volumeMounts": [{"name": "work", "mountPath": "/work"},
                                         {"name": "ram", "mountPath": "/ram"}]}],
            volumes=[{"name": "work", "emptyDir": {}}, {"name": "ram", "emptyDir": {"medium": "Memory",
                                                                                     "sizeLimit": "8Mi"}}])
        host.manager.set_pods([probed, never, onfailure, oom, init])

        await host.wait(lambda: host.status(never).phase == "Failed", what="Never + exit 3 -> Failed")
        assert host.cstatus(never, "app").state.terminated.exit_code == 3
        assert host.cstatus(never, "app").state.terminated.message == "bye\n"
        await host.wait(lambda: host.status(onfailure).phase == "Succeeded", what="OnFailure + exit 0 -> Succeeded")
        await host.wait(lambda: host.status(oom).phase == "Failed", what="OOM pod Failed")
        assert host.cstatus(oom, "hog").state.terminated.reason == "OOMKilled"

        await host.wait(lambda: host.status(init).phase == "Running", what="init pod Running")
        out, _, _ = await host.exec(init, "app", ["cat", "/work/log"])
        assert out == b"one\ntwo\n"
        out, _, _ = await host.exec(init, "app", ["sh", "-c", "grep ' /ram ' /proc/mounts"])
        assert out.startswith(b"tmpfs /ram tmpfs") and b"size=8192k" in out
        assert [c.state.terminated.reason for c in host.status(init).init_container_statuses] == ["Completed"] * 2

        await host.wait(lambda: host.status(probed).phase == "Running", what="probed Running")
        assert host.condition(probed, "Ready") == "False"
        await host.exec(probed, "app", ["touch", "/tmp/ready"])
        await host.wait(lambda: host.condition(probed, "Ready") == "True", what="Ready True")
        await host.exec(probed, "app", ["rm", "/tmp/ready"])
        await host.wait(lambda: host.condition(probed, "Ready") == "False", what="Ready False again")
        await host.exec(probed, "app", ["rm", "/tmp/alive"])
        await host.wait(lambda: host.cstatus(probed, "app").restart_count == 1
                        and host.cstatus(probed, "app").state.HasField("running"), what="liveness restart")


async def test_graceful_termination_and_agent_restart(tmp_path: Path) -> None:
    async with agent_host(tmp_path) as host:
        keep = make_pod("keep", node=host.node, containers=[
            {"name": "a", "image": IMG, "command": ["sleep", "3600"]},
            {"name": "b", "image": IMG, "command": ["sleep", "3600"]}])
        polite = make_pod("polite", node=host.node, terminationGracePeriodSeconds=20, containers=[{
            "name": "app", "image": IMG,
            "command": ["sh", "-c", "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.2; done"]}])
        stubborn = make_pod("stubborn", node=host.node, terminationGracePeriodSeconds=2, containers=[{
            "name": "app", "image": IMG, "command": ["sh", "-c", "sleep 3600"]}])
        host.manager.set_pods([keep, polite, stubborn])
        for p in (keep, polite, stubborn):
            await host.wait(lambda p=p: host.status(p).phase == "Running", what=f"{p.metadata.name} Running")
        ids = sorted(c.container_id for c in host.status(keep).container_statuses)
        ip = host.status(keep).pod_ip

        # The agent dies; an unclaimed Flotilla container appears; the agent comes back.
        await host.stop_manager()
        orphan_uid = str(uuid.uuid4())
        orphan = await host.runtime.run_pod_sandbox(PodSandboxConfig(
            name="orphan", namespace="default", uid=orphan_uid, hostname="orphan",
            labels={LABEL_NODE: host.node, LABEL_POD_UID: orphan_uid}))
        host.api.statuses.clear()
        await host.start_manager()
        assert orphan_uid in host.manager.recovered_uids
        host.manager.set_pods([keep, polite, stubborn])
        await host.wait(lambda: host.status(keep).phase == "Running", what="status after agent restart")
        assert sorted(c.container_id for c in host.status(keep).container_statuses) == ids
        assert host.status(keep).pod_ip == ip
        assert all(c.restart_count == 0 for c in host.status(keep).container_statuses)
        await host.wait(lambda: orphan_uid in host.manager.orphans_removed, what="orphan removed")
        assert not [s for s in await host.runtime.list_pod_sandboxes({LABEL_POD_UID: orphan_uid})]
        assert orphan not in {s.id for s in await host.runtime.list_pod_sandboxes({LABEL_NODE: host.node})}

        # Graceful deletion: SIGTERM honoured by one, SIGKILL after the grace for the other.
        times: dict[str, float] = {}
        for p, grace in ((polite, 20), (stubborn, 2)):
            d = core_pb2.Pod()
            d.CopyFrom(p)
            d.metadata.deletion_timestamp.GetCurrentTime()
            d.metadata.deletion_grace_period_seconds = grace
            times[p.metadata.uid] = time.monotonic()
            host.manager.upsert_pod(d)
        await host.wait(lambda: set(times) <= set(host.api.deleted), what="both pods deleted")
        # FakeNodeAPI keeps only the order; time each by polling Docker is enough here.
        done_at = time.monotonic()
        for uid in times:
            assert not await host.runtime.list_containers({LABEL_POD_UID: uid})
            assert not await host.runtime.list_pod_sandboxes({LABEL_POD_UID: uid})
        took = done_at - min(times.values())
        assert took >= 2.0  # the stubborn one needed its full grace
        assert took < 20  # the polite one did not wait for its own
        assert {s.labels.get(LABEL_KIND) for s in await host.runtime.list_pod_sandboxes({LABEL_NODE: host.node})} \
            == {"sandbox"}


async def test_pull_from_the_configured_registry(tmp_path: Path) -> None:
    import docker

    api = docker.APIClient(version="auto", timeout=60)
    name = f"flotilla/e2e-pull-{uuid.uuid4().hex[:6]}"
    with local_registry(tmp_path) as registry:
        remote = f"{registry}/{name}"
        try:
            api.tag(IMG, remote, "1")
            for line in api.push(remote, tag="1", stream=True, decode=True):
                assert "error" not in line, line
            api.remove_image(f"{remote}:1")
            async with agent_host(tmp_path, registry=registry) as host:
                pod = make_pod("pulled", node=host.node, containers=[
                    {"name": "app", "image": f"{name}:1", "command": ["sleep", "3600"]}])
                unknown = make_pod("unknown", node=host.node, containers=[
                    {"name": "app", "image": f"{name}-missing:1"}])
                host.manager.set_pods([pod, unknown])
                await host.wait(lambda: host.status(pod).phase == "Running", what="pulled image Running")
                await host.wait(lambda: host.cstatus(unknown, "app").state.waiting.reason
                                in ("ErrImagePull", "ImagePullBackOff"), what="missing image fails")
        finally:
            for ref in (f"{name}:1", f"{remote}:1"):
                with suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                    api.remove_image(ref)
            api.close()
