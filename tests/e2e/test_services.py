"""Services end to end: real iptables-legacy in real network namespaces, real
flotilla-proxy processes, a real master (in-process, real etcd) with the
endpoints controller.

Three host namespaces on a switch bridge (tests/e2e/svcnet.py), "pods" as
namespaces on each host's bridge running busybox httpd that answers its own
name; the pods' status (IP, Ready) is written by the test, as a node agent
would. Each proxy reaches the master's gRPC face through a unix socket the
test relays to 127.0.0.1 (a host namespace has no route to the root one).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio

from master.client import Client
from master.client.errors import NotFound
from master.controllers.manager import ControllerManager
from master.kubeconfig import write_kubeconfig
from netproxy.dnsrecords import render_resolv_conf
from protos.core.v1 import core_pb2
from tests.e2e.svcnet import ServiceNet, sh
from tests.integration.conftest import etcd_cluster  # noqa: F401 - the real etcd, as in integration
from tests.integration.harness import in_process_master

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
UDP_PORT = 5353


@dataclass
class Cluster:
    net: ServiceNet
    client: Client
    socket: str
    url: str
    proxies: dict[int, Any] = field(default_factory=dict)


async def _relay(path: str, port: int) -> asyncio.AbstractServer:
    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    return await asyncio.start_unix_server(handle, path)


@pytest_asyncio.fixture
async def cluster(etcd_cluster: Any) -> AsyncIterator[Cluster]:  # noqa: F811
    net = ServiceNet(hosts=3)
    sock = f"/tmp/flt-master-{uuid.uuid4().hex[:8]}.sock"
    try:
        await asyncio.to_thread(net.build)
        async with in_process_master(etcd_cluster.endpoints) as m:
            relay = await _relay(sock, m.server.grpc_port)
            async with await Client.connect(m.grpc_target) as c:
                cm = ControllerManager(c, enabled=["endpoints"])
                cm_task = asyncio.create_task(cm.run())
                try:
                    for n in (1, 2, 3):
                        node = core_pb2.Node()
                        node.metadata.name = f"h{n}"
                        node.spec.pod_cidr = f"10.244.{n}.0/24"  # as the agent's registration gives it
                        node = await c.create(node)  # status is the agent's: written apart
                        node.status.addresses.add(type="InternalIP", address=net.host_ip(n))
                        await c.update_status(node)
                    yield Cluster(net, c, sock, m.url)
                finally:
                    cm_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await cm_task
                    relay.close()
    finally:
        await asyncio.to_thread(net.close)
        Path(sock).unlink(missing_ok=True)


def start_proxy(c: Cluster, n: int) -> None:
    ip = c.net.host_ip(n)
    c.proxies[n] = c.net.spawn(
        c.net.host_ns(n), sys.executable, "-m", "netproxy.main", "--master", f"unix:{c.socket}",
        "--hostname-override", f"h{n}", "--healthz-bind-address", f"{ip}:10256",
        "--cluster-cidr", "10.244.0.0/16", "--cluster-dns", "10.96.0.10",  # DNS on the Node's InternalIP
        "--dns-upstream", "", log=c.net.tmp / f"proxy-h{n}.log")


def proxy_logs(c: Cluster) -> str:
    return "\n".join(p.read_text()[-2000:] for p in sorted(c.net.tmp.glob("proxy-*.log")))


async def add_backend(c: Cluster, name: str, host: int, *, labels: dict[str, str] | None = None) -> None:
    resolv = render_resolv_conf("default", "cluster.local", ("10.96.0.10",))
    udp = UDP_PORT if labels is None else 0
    pod = await asyncio.to_thread(c.net.add_pod, name, host, resolv_conf=resolv, udp_port=udp)
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.labels.update(labels if labels is not None else {"app": "web"})
    p.spec.node_name = f"h{host}"
    p.spec.containers.add(name="web", image="busybox").ports.add(name="http", container_port=8080)
    created = await c.client.create(p)
    created.status.phase, created.status.pod_ip = "Running", pod.ip
    created.status.conditions.add(type="Ready", status="True")
    await c.client.update_status(created)


async def set_ready(c: Cluster, name: str, ready: bool) -> None:
    p = await c.client.get(core_pb2.Pod, name, namespace="default")
    for cond in p.status.conditions:
        if cond.type == "Ready":
            cond.status = "True" if ready else "False"
    await c.client.update_status(p)


def web_service(name: str = "web", *, cluster_ip: str = "", node_port: int = 0) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = name, "default"
    s.spec.type = "NodePort"
    s.spec.selector["app"] = "web"
    port = s.spec.ports.add(name="http", port=80, node_port=node_port or None)
    port.target_port.string_value = "http"
    s.spec.ports.add(name="echo", port=UDP_PORT, protocol="UDP").target_port.number_value = UDP_PORT
    if cluster_ip:
        s.spec.cluster_ip = cluster_ip
    return s


async def wait_for(what: str, check: Callable[[], Any], c: Cluster) -> Any:
    deadline = time.monotonic() + WAIT_S
    last: Any = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(check)
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last={last}\n{proxy_logs(c)}")


def counts(c: Cluster, ns: str, url: str, n: int, *, timeout_s: float = 2.0) -> dict[str, int]:
    result = c.net.fetch(ns, url, n, timeout_s=timeout_s)
    got: dict[str, int] = result["counts"]  # type: ignore[assignment]
    return got


async def setup_web(c: Cluster) -> tuple[str, int]:
    for name, host in (("web-a", 1), ("web-b", 1), ("web-c", 3)):
        await add_backend(c, name, host)
    await add_backend(c, "client", 2, labels={"app": "client"})
    svc = await c.client.create(web_service())
    dns = core_pb2.Service()
    dns.metadata.name, dns.metadata.namespace = "kube-dns", "kube-system"
    dns.spec.cluster_ip = "10.96.0.10"
    dns.spec.ports.add(name="dns", port=53, protocol="UDP")
    dns.spec.ports.add(name="dns-tcp", port=53, protocol="TCP")
    await c.client.create(dns)
    for n in (1, 2, 3):
        start_proxy(c, n)
    vip, node_port = svc.spec.cluster_ip, svc.spec.ports[0].node_port
    client_ns = c.net.pods["client"].ns
    await wait_for("three backends", lambda: len(counts(c, client_ns, f"http://{vip}/", 30, timeout_s=1)) == 3, c)
    return vip, node_port


async def assert_cleanup(c: Cluster) -> None:
    for proc in c.proxies.values():
        proc.terminate()
    for proc in c.proxies.values():
        await asyncio.to_thread(proc.wait, 10)
    for n in (1, 2, 3):
        out = await asyncio.to_thread(c.net.ns_exec, c.net.host_ns(n), sys.executable, "-m", "netproxy.main",
                                      "--cleanup")
        assert "removed chain nat/FLOTILLA-SERVICES" in out.stdout, out.stdout
        assert "FLOTILLA" not in await asyncio.to_thread(c.net.iptables_save, n)


async def test_clusterip_nodeport_hairpin_dns_and_cleanup(cluster: Cluster) -> None:
    c = cluster
    vip, node_port = await setup_web(c)
    client_ns = c.net.pods["client"].ns

    # 300 requests from a pod on host 2 reach all three backends (on hosts 1 and 3)
    got = await asyncio.to_thread(counts, c, client_ns, f"http://{vip}/", 300)
    print("spread over 300:", got)
    assert sorted(got) == ["web-a", "web-b", "web-c"] and all(v >= 45 for v in got.values()), got

    # hairpin: a backend reaches its own service; a stall would be a ~1 s wait (LAB-NOTES)
    result = await asyncio.to_thread(c.net.fetch, c.net.pods["web-a"].ns, f"http://{vip}/", 30, timeout_s=0.9)
    print("hairpin:", result)
    assert result["n_errors"] == 0 and sum(result["counts"].values()) == 30, result  # type: ignore[attr-defined]

    # NodePort on host 1's and host 3's address, from host 2's namespace and from a pod
    for n in (1, 3):
        url = f"http://{c.net.host_ip(n)}:{node_port}/"
        assert sum((await asyncio.to_thread(counts, c, c.net.host_ns(2), url, 10)).values()) == 10
        assert sum((await asyncio.to_thread(counts, c, client_ns, url, 10)).values()) == 10

    # cluster DNS: the pod's resolv.conf names 10.96.0.10 (DNATed to its host's proxy)
    for url in ("http://web.default.svc.cluster.local/", "http://web/"):
        assert sum((await asyncio.to_thread(counts, c, client_ns, url, 5)).values()) == 5, (url, proxy_logs(c))
    srv = await asyncio.to_thread(
        c.net.ns_exec, client_ns, sys.executable, "-c",
        "import dns.resolver as r; a = r.resolve('_http._tcp.web.default.svc.cluster.local', 'SRV');"
        "print([x.port for x in a])")
    assert srv.stdout.strip() == "[80]", srv
    # /healthz and /metrics on 10256
    probe = await asyncio.to_thread(
        c.net.ns_exec, c.net.host_ns(1), sys.executable, "-c",
        "import urllib.request as u; h = u.urlopen('http://192.168.77.1:10256/healthz', timeout=5);"
        "m = u.urlopen('http://192.168.77.1:10256/metrics', timeout=5).read().decode();"
        "print(h.status, [ln for ln in m.splitlines() if ln.startswith('flotilla_proxy_rules ')])")
    assert probe.stdout.startswith("200 ['flotilla_proxy_rules "), probe

    # flotctl net explain renders the path from the same state
    kubeconfig = c.net.tmp / "kubeconfig"
    write_kubeconfig(kubeconfig, c.url)
    explained = await asyncio.to_thread(
        sh, sys.executable, "-m", "flotctl.main", "--kubeconfig", str(kubeconfig),
        "net", "explain", "client", f"{vip}:80", check=False)
    print(explained.stdout)
    assert explained.stdout.count("(overall 1/3, 33.3%)") == 3, explained
    nx = await asyncio.to_thread(
        c.net.ns_exec, client_ns, sys.executable, "-c",
        "import time, dns.resolver as r, dns.message as m, dns.query as q, dns.rcode as rc\n"
        "t = time.monotonic(); a = q.udp(m.make_query('example.org', 'A'), '10.96.0.10', timeout=3)\n"
        "b = q.udp(m.make_query('nope.default.svc.cluster.local', 'A'), '10.96.0.10', timeout=3)\n"
        "c = q.tcp(m.make_query('web.default.svc.cluster.local', 'A'), '10.96.0.10', timeout=3)\n"
        "print(rc.to_text(a.rcode()), rc.to_text(b.rcode()), c.answer[0][0].to_text(), round(time.monotonic() - t, 3))")
    assert nx.stdout.split()[:3] == ["SERVFAIL", "NXDOMAIN", vip], nx
    await assert_cleanup(c)


async def test_readiness_scale_down_delete_and_cleanup(cluster: Cluster) -> None:
    c = cluster
    vip, node_port = await setup_web(c)
    client_ns = c.net.pods["client"].ns
    url = f"http://{vip}/"

    # UDP: a client keeping its source port keeps its conntrack entry; when its
    # endpoint leaves, the proxy deletes the entry and the next datagram goes elsewhere
    def ask() -> str:
        return c.net.udp_ask(client_ns, vip, UDP_PORT, src_port=40000)

    first = await wait_for("a UDP answer", lambda: (lambda a: a if a.startswith("web-") else "")(ask()), c)
    assert [ask() for _ in range(5)] == [first] * 5  # the same entry, the same backend
    await set_ready(c, first, False)
    moved = await wait_for("the UDP client moved", lambda: (lambda a: a if a.startswith("web-") and a != first
                                                                    else "")(ask()), c)
    print(f"UDP {first} -> {moved} once {first} left")
    await set_ready(c, first, True)
    await wait_for(f"{first} back", lambda: first in counts(c, client_ns, url, 30), c)

    await set_ready(c, "web-c", False)
    await wait_for("web-c out of rotation", lambda: "web-c" not in counts(c, client_ns, url, 30), c)
    assert "web-c" not in await asyncio.to_thread(counts, c, client_ns, url, 60)
    await set_ready(c, "web-c", True)
    await wait_for("web-c back", lambda: "web-c" in counts(c, client_ns, url, 30), c)

    # sessionAffinity ClientIP: one client sticks to one backend (-m recent), and lets go when turned off
    svc = await c.client.get(core_pb2.Service, "web", namespace="default")
    svc.spec.session_affinity = "ClientIP"
    await c.client.update(svc)
    await wait_for("affinity", lambda: len(counts(c, client_ns, url, 20)) == 1, c)
    assert len(await asyncio.to_thread(counts, c, client_ns, url, 40)) == 1
    svc = await c.client.get(core_pb2.Service, "web", namespace="default")
    svc.spec.session_affinity = "None"
    svc.spec.ClearField("session_affinity_config")
    await c.client.update(svc)
    await wait_for("no affinity", lambda: len(counts(c, client_ns, url, 30)) == 3, c)

    # scale to one: within 1 s of the deletes, no request reaches a removed pod
    for name in ("web-b", "web-c"):
        await c.client.delete(core_pb2.Pod, name, namespace="default", grace_period_seconds=0)
    t0 = time.monotonic()
    await asyncio.sleep(1.0)
    got = await asyncio.to_thread(counts, c, client_ns, url, 100)
    print(f"after scale-down (+{time.monotonic() - t0:.2f}s):", got)
    assert got == {"web-a": 100}, got

    # deleting the service removes its rules on every host and frees its IP and port
    await c.client.delete(core_pb2.Service, "web", namespace="default")
    for n in (1, 2, 3):
        await wait_for(f"rules of web gone on h{n}", lambda n=n: f"{vip}/32" not in c.net.iptables_save(n) and
                       f"--dport {node_port}" not in c.net.iptables_save(n), c)
    again = await c.client.create(web_service("web2", cluster_ip=vip, node_port=node_port))
    assert again.spec.cluster_ip == vip and again.spec.ports[0].node_port == node_port
    with contextlib.suppress(NotFound):
        await c.client.delete(core_pb2.Service, "web2", namespace="default")
    await assert_cleanup(c)


def test_refuses_a_host_with_rules_on_the_other_backend() -> None:
    net = ServiceNet(hosts=1)
    try:
        net.build()
        h = net.host_ns(1)
        net.ns_exec(h, "iptables-nft", "-t", "nat", "-N", "FLOTILLA-SERVICES")
        out = net.ns_exec(h, sys.executable, "-m", "netproxy.main", "--master", "127.0.0.1:1", check=False)
        assert out.returncode == 3 and "never mixes backends" in out.stderr, out
        cleaned = net.ns_exec(h, sys.executable, "-m", "netproxy.main", "--cleanup", "--iptables-backend", "nft")
        assert "removed chain nat/FLOTILLA-SERVICES" in cleaned.stdout
        assert "FLOTILLA" not in net.ns_exec(h, "iptables-nft-save").stdout
    finally:
        net.close()
