"""The service proxy benchmark: render + apply at scale, and network programming latency.

Run `.venv/bin/python bench/proxy.py [--sizes 100,1000,5000,10000] [--latency-sizes 100,1000]`
(as root: it makes network namespaces).

1. Rule programming, in a network namespace of its own per size (iptables-legacy,
   the proxy's backend), with the proxy's own Syncer and adapter: for 100,
   1,000, 5,000 and 10,000 services with 1 and 10 endpoints each, the render
   time alone, the first full sync (render + one iptables-restore), the
   addition of one service to that table (an incremental sync; the median of
   five added one by one), and a full resync over the populated table
   (iptables-save for leftovers + restore). The proxy runs with a cluster
   CIDR and a node /24, as on the lab (254 hairpin rules in every table).
   Beside it, the same first full sync at 1,000 services on the nft backend,
   the baseline the backend choice was made against.
2. Network programming latency at 100 and 1,000 services: a real master
   (in-process, on a three-member etcd this script starts) and a real
   flotilla-proxy process in a host namespace; the probe Service's Endpoints
   flip between two pod namespaces running httpd; per flip, the time from the
   Endpoints write returning to (a) the new DNAT rule being in the kernel and
   (b) the first HTTP request through the cluster IP answered by the new pod,
   as seen by a poller inside the host namespace (CLOCK_MONOTONIC is shared).

It prints markdown tables, asserts nothing, and removes every namespace,
process and temp dir it made, on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploy.etcd_cluster import EtcdCluster, free_port_block  # noqa: E402
from master.client import Client  # noqa: E402
from netproxy.fake import FakeConntrack  # noqa: E402
from netproxy.iptables import LegacyIptables  # noqa: E402
from netproxy.model import compute_service_ports  # noqa: E402
from netproxy.render import ProxyOptions, render  # noqa: E402
from netproxy.syncer import Syncer  # noqa: E402
from protos.core.v1 import core_pb2  # noqa: E402
from tests.e2e.svcnet import ServiceNet  # noqa: E402
from tests.integration.harness import in_process_master  # noqa: E402

POLLER = r"""
import subprocess, sys, time, urllib.request
def present(vip, dest):
    out = subprocess.run(["iptables-legacy", "-w", "-t", "nat", "-S", "FLOTILLA-SERVICES"],
                         capture_output=True, text=True).stdout
    return any(f"-d {vip}/32" in ln and f"--to-destination {dest}" in ln for ln in out.splitlines())
for line in sys.stdin:
    vip, dest, url, want = line.split()
    while not present(vip, dest):  # a one-endpoint service is DNATed by its dispatch rule
        time.sleep(0.002)
    t_rule = time.monotonic()
    while True:
        try:
            if urllib.request.urlopen(url, timeout=0.3).read().decode().strip() == want:
                break
        except Exception:
            pass
        time.sleep(0.002)
    print(t_rule, time.monotonic(), flush=True)
"""


ENDPOINTS = [1, 10]
ADDS = 5  # services added one by one per size; the table shows the median
# What a lab proxy runs with: off-cluster masquerade and a node /24 (254 hairpin rules).
OPTIONS = ProxyOptions(cluster_cidr="10.244.0.0/13", node_cidr="10.252.0.0/24")


def service(i: int, n_endpoints: int) -> tuple[core_pb2.Service, core_pb2.Endpoints]:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = f"s{i}", "bench"
    s.spec.type = "ClusterIP"
    s.spec.cluster_ip = f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    s.spec.ports.add(name="http", port=80, protocol="TCP")
    e = core_pb2.Endpoints()
    e.metadata.CopyFrom(s.metadata)
    sub = e.subsets.add()
    for j in range(n_endpoints):
        k = i * n_endpoints + j
        sub.addresses.add(ip=f"10.{244 + k // 65536 % 8}.{(k // 256) % 256}.{k % 256}")
    sub.ports.add(name="http", port=8080, protocol="TCP")
    return s, e


class TimedIptables(LegacyIptables):
    """The proxy's adapter, remembering how long its last iptables-restore took."""

    last_restore_s = 0.0

    def restore(self, text: str) -> None:
        t = time.perf_counter()
        super().restore(text)
        self.last_restore_s = time.perf_counter() - t


def netns(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def programming(size: int, n_endpoints: int, backend: str) -> dict[str, float]:
    ns = f"flt-bench-{uuid.uuid4().hex[:6]}"
    netns(ns)
    try:
        objs = {f"bench/s{i}": service(i, n_endpoints) for i in range(size)}
        ports = [sp for s, e in objs.values() for sp in compute_service_ports(s, e)]
        t = time.perf_counter()
        text = render(ports, options=OPTIONS).text
        render_s = time.perf_counter() - t
        ipt = TimedIptables(backend=backend, prefix=["ip", "netns", "exec", ns], timeout_s=600)
        syncer = Syncer(ipt, FakeConntrack(), lookup=lambda k: objs.get(k, (None, None)), min_sync_interval_s=0,
                        options=OPTIONS)
        for k in objs:
            syncer.mark(k)
        t = time.perf_counter()
        await syncer.sync_once()
        full_s = time.perf_counter() - t
        adds, add_restores = [], []
        for i in range(ADDS):  # one service at a time, each its own incremental sync: the median
            objs[f"bench/new{i}"] = service(size + 1 + i, n_endpoints)
            syncer.mark(f"bench/new{i}")
            t = time.perf_counter()
            await syncer.sync_once()
            adds.append(time.perf_counter() - t)
            add_restores.append(ipt.last_restore_s)
        add_s, add_restore_s = statistics.median(adds), statistics.median(add_restores)
        syncer.request_full()
        t = time.perf_counter()
        await syncer.sync_once()
        resync_s = time.perf_counter() - t
        rules = text.count("\n-A ")
        return {"render": render_s, "full": full_s, "add": add_s, "add_restore": add_restore_s, "resync": resync_s, "rules": rules,
                "chains": text.count("\n:"), "bytes": len(text)}
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


async def bench_programming(sizes: list[int]) -> None:
    print("\n## Rule programming (one iptables-restore --noflush per sync; seconds)\n")
    print("| services | endpoints each | chains | rules | render (all) | first full sync | add one service (median of 5) "
          "| of which iptables-restore | full resync |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        for eps in ENDPOINTS:
            r = await programming(size, eps, "legacy")
            print(f"| {size:,} | {eps} | {r['chains']:,} | {r['rules']:,} | {r['render']:.3f} | {r['full']:.3f} | "
                  f"{r['add']:.3f} | {r['add_restore']:.3f} | {r['resync']:.3f} |", flush=True)
    if 1000 in sizes:
        r = await programming(1000, 1, "nft")
        print(f"| 1,000 (nft baseline) | 1 | {r['chains']:,} | {r['rules']:,} | {r['render']:.3f} | {r['full']:.3f} | "
              f"{r['add']:.3f} | {r['add_restore']:.3f} | {r['resync']:.3f} |", flush=True)


async def latency(size: int, etcd: EtcdCluster, samples: int) -> tuple[list[float], list[float]]:
    net = ServiceNet(hosts=1)
    sock = f"/tmp/flt-bench-{uuid.uuid4().hex[:8]}.sock"
    tmp = Path(tempfile.mkdtemp(prefix="flt-bench-"))
    try:
        await asyncio.to_thread(net.build)
        a = await asyncio.to_thread(net.add_pod, "a", 1)
        b = await asyncio.to_thread(net.add_pod, "b", 1)
        async with in_process_master(etcd.endpoints) as m:
            relay = await _relay(sock, m.server.grpc_port)
            async with await Client.connect(m.grpc_target) as c:
                ns = core_pb2.Namespace()
                ns.metadata.name = "bench"
                await c.create(ns)
                sem = asyncio.Semaphore(50)

                async def put(i: int) -> None:
                    s, e = service(i + 1, 1)
                    s.spec.ClearField("cluster_ip")
                    async with sem:
                        await c.create(s)
                        await c.create(e)

                await asyncio.gather(*(put(i) for i in range(size - 1)))
                probe = core_pb2.Service()
                probe.metadata.name, probe.metadata.namespace = "probe", "bench"
                probe.spec.ports.add(name="http", port=80, protocol="TCP")
                probe = await c.create(probe)
                vip = probe.spec.cluster_ip
                net.spawn(net.host_ns(1), sys.executable, "-m", "netproxy.main", "--master", f"unix:{sock}",
                          "--hostname-override", "h1", "--healthz-bind-address", "127.0.0.1:10256",
                          log=tmp / "proxy.log")
                script = tmp / "poller.py"
                script.write_text(POLLER)
                poller = subprocess.Popen(["ip", "netns", "exec", net.host_ns(1), sys.executable, str(script)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                net.procs.append(poller)  # type: ignore[arg-type]
                rule_s, served_s = [], []
                ep = core_pb2.Endpoints()
                ep.metadata.name, ep.metadata.namespace = "probe", "bench"
                current = None
                for k in range(samples + 1):
                    pod = (a, b)[k % 2]
                    ep.ClearField("subsets")
                    sub = ep.subsets.add()
                    sub.addresses.add(ip=pod.ip)
                    sub.ports.add(name="http", port=8080, protocol="TCP")
                    now = time.time()
                    ep.metadata.annotations["endpoints.kubernetes.io/last-change-trigger-time"] = (
                        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z")
                    t0 = time.monotonic()
                    if current is None:
                        current = await c.create(ep)
                    else:
                        ep.metadata.resource_version = current.metadata.resource_version
                        current = await c.update(ep)
                    assert poller.stdin is not None and poller.stdout is not None
                    poller.stdin.write(f"{vip} {pod.ip}:8080 http://{vip}/ {pod.name}\n")
                    poller.stdin.flush()
                    t_rule, t_served = map(float, (await asyncio.to_thread(poller.stdout.readline)).split())
                    if k:  # the first one waits for the proxy's start
                        rule_s.append(t_rule - t0)
                        served_s.append(t_served - t0)
                    await asyncio.sleep(0.3)
            relay.close()
        return rule_s, served_s
    finally:
        await asyncio.to_thread(net.close)
        Path(sock).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


async def _relay(path: str, port: int) -> asyncio.AbstractServer:
    async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        w.close()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    return await asyncio.start_unix_server(handle, path)


async def bench_latency(sizes: list[int], samples: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="flt-bench-etcd-"))
    etcd = EtcdCluster(data_dir, base_port=free_port_block())
    try:
        await etcd.start()
        print("\n## Network programming latency (Endpoints write -> ...; seconds)\n")
        print("| services | samples | rule present p50 | p99 | first request served p50 | p99 |")
        print("|---|---|---|---|---|---|")
        for size in sizes:
            rule, served = await latency(size, etcd, samples)
            print(f"| {size:,} | {len(rule)} | {percentile(rule, 50):.3f} | {percentile(rule, 99):.3f} | "
                  f"{percentile(served, 50):.3f} | {percentile(served, 99):.3f} |", flush=True)
    finally:
        await etcd.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,1000,5000,10000")
    p.add_argument("--latency-sizes", default="100,1000")
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--endpoints", default="1,10", help="endpoints per service in the programming table")
    args = p.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x]
    lat = [int(x) for x in args.latency_sizes.split(",") if x]
    ENDPOINTS[:] = [int(x) for x in args.endpoints.split(",") if x]

    async def run() -> None:
        if sizes:
            await bench_programming(sizes)
        if lat:
            await bench_latency(lat, args.samples)

    def stop(*_: object) -> None:
        raise KeyboardInterrupt  # unwinds through every finally: namespaces and processes go

    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
