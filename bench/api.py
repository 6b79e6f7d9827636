"""The apiserver benchmark: the figures in README's performance table.

Run `.venv/bin/python bench/api.py [--quick] [--json PATH]` (or `make bench`).
It starts its own three-member etcd cluster (temp dir, free ports) and one
`flotilla-master` subprocess against it, then measures, each figure beside a
baseline taken in the same run against the same etcd:

1. single-object latency over REST (create, get, list of 100, update) at 1, 10
   and 50 concurrent clients, beside the same operation on raw etcd;
2. write throughput: pod creates/s at 50 clients (half over REST, half over
   gRPC) beside raw etcd Puts/s of the same value size at the same
   concurrency, and beside the floor: Puts/s through bench/relay.py, a
   grpc.aio relay that does nothing but forward each call to etcd as one
   Put (no Python apiserver on this machine can beat it); then every pod
   gets a Running status over gRPC, as an agent
   would write it. Each write phase also reports the cores the master, the
   etcd members and this client used (and the CPU-ms per write), and the
   master's etcd RPCs and watch events per create (from its /metrics);
3. a LIST of those 10,000 pods as JSON, as a kubectl Table and over gRPC,
   beside a raw etcd range read of the same keys;
4. watch fan-out: delivery latency and missing events for 1, 100 and 1,000
   REST watchers while a writer makes 200 updates/s, beside one raw etcd
   watch on the same keys, with the CPU the master and this client used.
   Every watcher stays connected and reads its stream, and every one's
   events are counted; delivery latency is timed on up to 100 of them,
   evenly spread, so that this client (200,000 events/s at 1,000
   watchers) does not become what is measured;
5. the master's RSS after the LIST and after the fan-out.

`--only PHASE` re-measures one part (list brings throughput along).

It prints markdown tables and asserts nothing: timings are never pass/fail,
and the machine is shared, so the figures are noisy by nature. It owns the
processes and the temp dir it creates and removes them on any exit,
Ctrl-C and SIGTERM included; it never touches another etcd or master.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import grpc  # noqa: E402
from aetcd import rpc  # noqa: E402
from google.protobuf import any_pb2  # noqa: E402

from bench.relay import METHOD as RELAY_METHOD  # noqa: E402
from deploy.etcd_cluster import EtcdCluster, free_port_block  # noqa: E402
from master.storage.etcd import EtcdStore, grpc_target  # noqa: E402
from protos.api.v1 import objects_pb2, objects_pb2_grpc  # noqa: E402
from protos.codec import from_dict  # noqa: E402
from protos.core.v1 import core_pb2  # noqa: E402
from tests.integration.harness import MasterProcess, master_process  # noqa: E402

C = TypeVar("C")
T = TypeVar("T")
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
# The writer puts its send time in data.t; watchers look for nothing else.
T_VALUE = re.compile(rb'"t":"([0-9.]+)"')
RAW_T_VALUE = re.compile(rb"([0-9]{10}\.[0-9]{6})")  # the same value inside etcd's protobuf bytes
RAW_PREFIX = "/bench-raw"
ETCD_COUNTER = re.compile(r'^apiserver_etcd_(requests|watch_events)_total(?:\{type="(\w+)"\})? ([0-9.e+]+)$', re.M)
# Watchers whose delivery latency is timed (evenly spread); the rest count events.
WATCH_SAMPLE = 100


@dataclass(frozen=True)
class Sizes:
    requests_per_verb: int = 400
    concurrency: tuple[int, ...] = (1, 10, 50)
    list_objects: int = 100
    writers: int = 50
    pods: int = 10_000
    list_repeats: int = 5
    put_window_s: float = 3.0
    # One watcher first: the floor through the apiserver, and the CPU the writes alone cost.
    watchers: tuple[int, ...] = (1, 100, 1000)
    events_per_s: int = 200
    watch_window_s: float = 5.0
    drain_s: float = 15.0


QUICK = Sizes(requests_per_verb=10, concurrency=(1, 5), list_objects=10, writers=5, pods=60, list_repeats=2,
              put_window_s=0.3, watchers=(1, 10), events_per_s=20, watch_window_s=1.0, drain_s=3.0)


@dataclass
class Row:
    section: str
    figure: str
    value: str
    baseline: str
    target: str = ""
    met: bool | None = None
    numbers: dict[str, float] = field(default_factory=dict)


# --- statistics and rendering (pure) -------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """CPU seconds every process on the machine has used (all of /proc/stat but idle and iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every value was observed)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms_pair(samples: Sequence[float]) -> str:
    return " / ".join(fmt_ms(percentile(samples, p)) for p in (50, 99))


def fmt_ms(seconds: float) -> str:
    return "∞" if math.isinf(seconds) else f"{seconds * 1e3:.1f}"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def render(rows: Sequence[Row]) -> str:
    out: list[str] = []
    for section in dict.fromkeys(r.section for r in rows):
        out += ["", f"### {section}", "", "| figure | flotilla | baseline | target |", "|---|---|---|---|"]
        for r in (r for r in rows if r.section == section):
            mark = {True: " ✓", False: " ✗", None: ""}[r.met]
            out.append(f"| {r.figure} | {r.value} | {r.baseline} | {r.target}{mark} |")
    return "\n".join(out)


# --- objects -----------------------------------------------------------------------------


def config_map(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "config"}},
            "data": {"mode": "fast", "config.yaml": "listen: 0.0.0.0:8080\nworkers: 4\nlog: info\n"}}


def pod(name: str, i: int) -> dict[str, Any]:
    """A pod as a Deployment would make it (the shape kubectl stores)."""
    def probe(path: str) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5,
                "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}

    container = {
        "name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "livenessProbe": probe("/healthz"), "readinessProbe": probe("/ready"),
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web", "pod-template-hash": "7c5ddbdf54"}},
            "spec": {"containers": [container], "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                     "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
                     "nodeName": f"node-{i % 5}"}}


def pod_status(i: int) -> dict[str, Any]:
    started = "2025-01-01T00:00:00Z"
    return {"phase": "Running", "hostIP": f"10.0.0.{i % 5 + 10}", "podIP": f"10.244.{i % 5}.{i % 250 + 2}",
            "startTime": started, "qosClass": "Burstable",
            "containerStatuses": [{"name": "web", "ready": True, "started": True, "restartCount": 0,
                                   "image": "nginx:1.27", "imageID": "docker-pullable://nginx@sha256:" + "ab" * 32,
                                   "containerID": "docker://" + f"{i:064x}",
                                   "state": {"running": {"startedAt": started}}}]}


# --- drivers -------------------------------------------------------------------------------


async def timed_clients(clients: Sequence[C], requests: int, call: Callable[[C, int], Awaitable[object]]) -> tuple[list[float], float]:
    """`requests` calls spread over the clients, each client sequential; (latencies, elapsed)."""
    latencies: list[float] = []

    async def client(k: int) -> None:
        for j in range(k, requests, len(clients)):
            start = time.perf_counter()
            await call(clients[k], j)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(len(clients))))
    return latencies, time.perf_counter() - start


async def rate_for(window_s: float, workers: int, call: Callable[[int, int], Awaitable[object]]) -> float:
    """Calls/s that `workers` sequential loops sustain over window_s."""
    deadline = time.perf_counter() + window_s
    done = 0

    async def worker(k: int) -> None:
        nonlocal done
        j = 0
        while time.perf_counter() < deadline:
            await call(k, j)
            j, done = j + 1, done + 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(workers)))
    return done / (time.perf_counter() - start)


async def rest(session: aiohttp.ClientSession, method: str, path: str, *, body: Any = None,
               parse: bool = True, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    async with session.request(method, path, data=data, headers={**hdrs, **(headers or {})}) as resp:
        raw = await resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {raw[:300]!r}")
        return json.loads(raw) if parse else raw


@contextlib.asynccontextmanager
async def sessions(url: str, n: int) -> AsyncIterator[list[aiohttp.ClientSession]]:
    """n simulated clients, each its own keep-alive connection pool."""
    group = [aiohttp.ClientSession(base_url=url) for _ in range(n)]
    try:
        yield group
    finally:
        await asyncio.gather(*(s.close() for s in group))


@dataclass
class Bench:
    sizes: Sizes
    master: MasterProcess
    store: EtcdStore
    endpoints: list[str]
    etcd_pids: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)  # when -> MiB
    helpers: dict[str, int] = field(default_factory=dict)  # other processes whose CPU counts: name -> PID

    def key(self, resource: str, namespace: str, name: str = "") -> str:
        return f"{self.master.prefix}/registry/{resource}/{namespace}/{name}"

    def add(self, section: str, figure: str, value: str, baseline: str, **kw: Any) -> None:
        self.rows.append(Row(section, figure, value, baseline, **kw))
        print(f"  {figure}: {value} (baseline {baseline})", file=sys.stderr, flush=True)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.master.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def master_cpu_s(self) -> float:
        """User + system CPU seconds the master has used so far."""
        return proc_cpu_s(self.master.proc.pid)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of the master, each etcd member, this client and the whole machine."""
        out = {"master": self.master_cpu_s()}
        for i, pid in enumerate(self.etcd_pids):
            out[f"etcd{i}"] = proc_cpu_s(pid)
        for name, pid in self.helpers.items():
            out[name] = proc_cpu_s(pid)
        out["client"] = time.process_time()
        out["machine"] = machine_cpu_s()
        return out

    async def timed_cores(self, count: int, work: Awaitable[object]) -> tuple[float, dict[str, float]]:
        """(count / wall seconds, cores busy on average per process) while `work` runs."""
        start = time.perf_counter()
        _, cores = await self.cores_during(work)
        return count / (time.perf_counter() - start), cores

    async def cores_during(self, work: Awaitable[T]) -> tuple[T, dict[str, float]]:
        """(what `work` returns, cores busy on average per process while it ran)."""
        cpu, start = self.cpu_s(), time.perf_counter()
        result = await work
        elapsed = time.perf_counter() - start
        return result, {k: (v - cpu[k]) / elapsed for k, v in self.cpu_s().items()}

    async def etcd_counts(self) -> dict[str, float]:
        """The master's etcd RPCs by request type and watch events, from its /metrics."""
        async with aiohttp.ClientSession(base_url=self.master.url) as s:
            text = (await rest(s, "GET", "/metrics", parse=False)).decode()
        counts = {}
        for m in ETCD_COUNTER.finditer(text):
            counts[m.group(2) or m.group(1)] = float(m.group(3))
        return counts

    async def namespace(self, name: str) -> None:
        async with aiohttp.ClientSession(base_url=self.master.url) as s:
            await rest(s, "POST", "/api/v1/namespaces", body={"metadata": {"name": name}})


# --- 1. single-object latency --------------------------------------------------------------


async def latency(b: Bench) -> None:
    section = "Single-object latency, p50 / p99 ms (REST vs raw etcd)"
    await b.namespace("lat-list")
    async with sessions(b.master.url, 10) as group:
        await timed_clients(group, b.sizes.list_objects,
                            lambda s, j: rest(s, "POST", "/api/v1/namespaces/lat-list/configmaps", body=config_map(f"cm-{j}")))
    kv = await b.store.get(b.key("configmaps", "lat-list", "cm-0"))
    assert kv is not None
    for c in b.sizes.concurrency:
        api = await latency_api(b, c)
        raw = await latency_etcd(b, c, value=kv.value)
        for verb in api:
            b.add(section, f"{verb}, {plural(c, 'client')}", ms_pair(api[verb]), ms_pair(raw[verb]),
                  numbers={"p50_ms": percentile(api[verb], 50) * 1e3, "p99_ms": percentile(api[verb], 99) * 1e3,
                           "base_p50_ms": percentile(raw[verb], 50) * 1e3, "base_p99_ms": percentile(raw[verb], 99) * 1e3})


async def latency_api(b: Bench, c: int) -> dict[str, list[float]]:
    ns, n = f"lat-{c}", b.sizes.requests_per_verb
    await b.namespace(ns)
    base = f"/api/v1/namespaces/{ns}/configmaps"
    objs: dict[int, dict[str, Any]] = {}

    async def create(s: aiohttp.ClientSession, j: int) -> None:
        objs[j] = await rest(s, "POST", base, body=config_map(f"cm-{j}"))

    async def update(s: aiohttp.ClientSession, j: int) -> None:
        obj = objs[j]
        obj["data"]["mode"] = "slow"
        objs[j] = await rest(s, "PUT", f"{base}/cm-{j}", body=obj)

    async with sessions(b.master.url, c) as group:
        out = {"create": (await timed_clients(group, n, create))[0]}
        out["get"] = (await timed_clients(group, n, lambda s, j: rest(s, "GET", f"{base}/cm-{j}", parse=False)))[0]
        out[f"list ({b.sizes.list_objects} objects)"] = (await timed_clients(
            group, n, lambda s, j: rest(s, "GET", "/api/v1/namespaces/lat-list/configmaps", parse=False)))[0]
        out["update"] = (await timed_clients(group, n, update))[0]
    return out


async def latency_etcd(b: Bench, c: int, *, value: bytes) -> dict[str, list[float]]:
    n, store, revs = b.sizes.requests_per_verb, b.store, {}
    raw = f"{RAW_PREFIX}/lat-{c}/"

    async def create(_: object, j: int) -> None:
        revs[j] = await store.create(f"{raw}{j}", value)

    async def update(_: object, j: int) -> None:
        revs[j] = await store.update(f"{raw}{j}", value, expected_revision=revs[j])

    clients = [None] * c
    out = {"create": (await timed_clients(clients, n, create))[0]}
    out["get"] = (await timed_clients(clients, n, lambda _, j: store.get(b.key("configmaps", f"lat-{c}", f"cm-{j}"))))[0]
    out[f"list ({b.sizes.list_objects} objects)"] = (await timed_clients(
        clients, n, lambda _, j: store.list(b.key("configmaps", "lat-list"))))[0]
    out["update"] = (await timed_clients(clients, n, update))[0]
    return out


# --- 2. write throughput (it also makes the pods the LIST reads) ---------------------------


PODS_NS = "list-pods"
POD_TYPE = "type.googleapis.com/flotilla.core.v1.Pod"
PODS_REF = objects_pb2.ResourceRef(group="", resource="pods", namespace=PODS_NS)


def pod_name(i: int) -> str:
    return f"web-{i:05d}"


def pod_messages() -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    """(pod i, a status-only pod i) as protobuf, copied from one decoded template."""
    template, _ = from_dict(core_pb2.Pod, pod(pod_name(0), 0))
    status, _ = from_dict(core_pb2.PodStatus, pod_status(0))

    def make_pod(i: int) -> Any:
        msg = core_pb2.Pod()
        msg.CopyFrom(template)
        msg.metadata.name, msg.spec.node_name = pod_name(i), f"node-{i % 5}"
        return msg

    def make_status(i: int) -> Any:
        # Only name, namespace and status count on a /status write.
        msg = core_pb2.Pod()
        msg.metadata.name, msg.metadata.namespace = pod_name(i), PODS_NS
        msg.status.CopyFrom(status)
        msg.status.pod_ip = f"10.244.{i % 5}.{i % 250 + 2}"
        msg.status.container_statuses[0].container_id = f"docker://{i:064x}"
        return msg

    return make_pod, make_status


def packed(msg: Any) -> any_pb2.Any:
    return any_pb2.Any(type_url=POD_TYPE, value=msg.SerializeToString())


async def throughput(b: Bench) -> None:
    """Pod creates/s (half over REST, half over gRPC), then every pod gets a status."""
    section = "Write throughput"
    n, w = b.sizes.pods, b.sizes.writers
    half = n // 2
    await b.namespace(PODS_NS)
    path = f"/api/v1/namespaces/{PODS_NS}/pods"
    make_pod, make_status = pod_messages()
    cpu: dict[str, dict[str, float]] = {}  # phase -> process -> cores
    counts = [await b.etcd_counts()]
    async with sessions(b.master.url, w) as group:
        rest_rate, cpu["REST creates"] = await b.timed_cores(half, timed_clients(
            group, half, lambda s, j: rest(s, "POST", path, body=pod(pod_name(j), j), parse=False)))
    counts.append(await b.etcd_counts())
    async with grpc_objects(b) as stub:
        grpc_rate, cpu["gRPC creates"] = await b.timed_cores(n - half, timed_clients(
            [stub] * w, n - half,
            lambda s, j: s.Create(objects_pb2.CreateRequest(ref=PODS_REF, object=packed(make_pod(half + j))))))
        counts.append(await b.etcd_counts())
        kv = await b.store.get(b.key("pods", PODS_NS, pod_name(0)))
        assert kv is not None
        put_rate, cpu["raw etcd Puts"] = await raw_put_rate(b, value=kv.value)
        async with relay(b) as relay_put:
            relay_rate, cpu["relay Puts"] = await b.cores_during(rate_for(
                b.sizes.put_window_s, w, lambda k, j: relay_put(kv.value)))
        txn_rate, cpu["raw etcd create txns"] = await b.cores_during(rate_for(
            b.sizes.put_window_s, w, lambda k, j: b.store.create(f"{RAW_PREFIX}/txn/{k}/{j}", kv.value)))
        status_rate, cpu["gRPC status updates"] = await b.timed_cores(n, timed_clients(
            [stub] * w, n,
            lambda s, j: s.UpdateStatus(objects_pb2.UpdateRequest(ref=PODS_REF, object=packed(make_status(j))))))
    base = f"{put_rate:.0f} etcd Put/s ({len(kv.value)} B)"
    for face, rate in (("REST", rest_rate), ("gRPC", grpc_rate)):
        ratio, cores = rate / put_rate, cpu[f"{face} creates"]["master"]
        b.add(section, f"pod creates/s over {face}, {w} clients (master CPU {cores:.2f} cores)", f"{rate:.0f}",
              base, target=f"≥ 0.5x (got {ratio:.2f}x)", met=ratio >= 0.5,
              numbers={"per_s": rate, "base_per_s": put_rate, "ratio": ratio, "master_cores": cores})
    ratio = relay_rate / put_rate
    b.add(section, f"floor: Puts/s through a do-nothing grpc.aio relay, {w} clients (bench/relay.py)",
          f"{relay_rate:.0f}", base, target=f"{ratio:.2f}x: the bound for this stack",
          numbers={"per_s": relay_rate, "base_per_s": put_rate, "ratio": ratio})
    status_cores = cpu["gRPC status updates"]["master"]
    b.add(section, f"pod status updates/s over gRPC, {w} clients (master CPU {status_cores:.2f} cores)",
          f"{status_rate:.0f}", base, numbers={"per_s": status_rate, "master_cores": status_cores})
    b.add(section, f"raw etcd create txns/s, {w} clients (the apiserver's write)", f"{txn_rate:.0f}", base,
          numbers={"per_s": txn_rate})
    rates = {"REST creates": rest_rate, "gRPC creates": grpc_rate, "raw etcd Puts": put_rate,
             "relay Puts": relay_rate, "raw etcd create txns": txn_rate, "gRPC status updates": status_rate}
    report_cpu(b, cpu, rates)
    for face, before, after, count in (("REST", counts[0], counts[1], half), ("gRPC", counts[1], counts[2], n - half)):
        # The /metrics GET between phases is a request too, but it reads no etcd.
        per = {k: (after.get(k, 0) - before.get(k, 0)) / count for k in after}
        text = ", ".join(f"{k.removesuffix('Request')} {v:.2f}" for k, v in sorted(per.items()) if v)
        b.add(section, f"the master's etcd RPCs and watch events per {face} create", text or "none", "1 create txn",
              numbers=per)


def report_cpu(b: Bench, cpu: dict[str, dict[str, float]], rates: dict[str, float]) -> None:
    """Who used the machine's cores in each phase, and the CPU-ms each write cost them."""
    section = "CPU during the write phases: cores busy (ms of CPU per write)"
    for phase, cores in cpu.items():
        rate = rates[phase]
        etcd = sum(v for k, v in cores.items() if k.startswith("etcd"))
        # The relay phase's server is the relay; the master idles through it.
        server = "relay" if "relay" in cores else "master"
        parts = [(server, cores[server]), ("etcd (3 members)", etcd), ("bench client", cores["client"])]
        text = " / ".join(f"{v:.2f} ({v / rate * 1e3:.2f})" for _, v in parts)
        members = ", ".join(f"{cores[k]:.2f}" for k in sorted(cores) if k.startswith("etcd"))
        b.add(section, f"{phase} at {rate:.0f}/s: {server} / etcd / client", text,
              f"machine {cores['machine']:.2f} of {os.cpu_count()} cores; members {members}",
              numbers={"rate": rate, **cores})


@contextlib.asynccontextmanager
async def grpc_objects(b: Bench) -> AsyncIterator[Any]:
    options = [("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(b.master.grpc_target, options=options) as channel:
        yield objects_pb2_grpc.ObjectsStub(channel)


async def raw_put_rate(b: Bench, *, value: bytes) -> tuple[float, dict[str, float]]:
    """Plain etcd Puts through aetcd's stubs on a round-robin channel, as the store connects;
    (Puts/s, cores busy per process)."""
    channel = rpc.insecure_channel(await grpc_target(b.endpoints),
                                   options=[("grpc.lb_policy_name", "round_robin")])
    try:
        kv = rpc.KVStub(channel)
        return await b.cores_during(rate_for(
            b.sizes.put_window_s, b.sizes.writers,
            lambda k, j: kv.Put(rpc.PutRequest(key=f"{RAW_PREFIX}/put/{k}/{j}".encode(), value=value))))
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def relay(b: Bench) -> AsyncIterator[Callable[[bytes], Awaitable[object]]]:
    """bench/relay.py as a subprocess, its CPU counted as "relay"; yields its Put call."""
    target = await grpc_target(b.endpoints)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("relay.py")), "--etcd", target,
        "--key-prefix", f"{RAW_PREFIX}/relay", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.strip().isdigit():
            raise RuntimeError(f"bench/relay.py did not start: {line[:200]!r}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{int(line)}") as channel:
            b.helpers["relay"] = proc.pid
            try:
                yield channel.unary_unary(RELAY_METHOD)
            finally:
                del b.helpers["relay"]
    finally:
        if proc.returncode is None:
            proc.terminate()
        if proc.stdin is not None:
            proc.stdin.close()
        await proc.wait()


# --- 3. LIST of all the pods ------------------------------------------------------------------


async def list_pods(b: Bench) -> None:
    n, reps = b.sizes.pods, b.sizes.list_repeats
    section = f"LIST of {n:,} pods, p50 / max ms"
    path = f"/api/v1/namespaces/{PODS_NS}/pods"
    async with aiohttp.ClientSession(base_url=b.master.url) as s:
        first = json.loads(await rest(s, "GET", path, parse=False))
        if len(first["items"]) != n or "containerStatuses" not in first["items"][-1]["status"]:
            raise RuntimeError(f"LIST returned {len(first['items'])} items, or pods without status")
        as_json = await repeat(reps, lambda: rest(s, "GET", path, parse=False))
        table = await repeat(reps, lambda: rest(s, "GET", path, parse=False, headers={"Accept": TABLE_ACCEPT}))
    by_grpc = await grpc_lists(b, reps)
    raw = await repeat(reps, lambda: b.store.list(b.key("pods", PODS_NS)))
    raw_text = f"{pair_max(raw)} etcd range"
    for figure, samples in (("JSON", as_json), ("kubectl Table", table), ("gRPC List", by_grpc)):
        p50 = percentile(samples, 50)
        b.add(section, figure, pair_max(samples), raw_text, target="p50 ≤ 1000", met=p50 <= 1.0,
              numbers={"p50_ms": p50 * 1e3, "max_ms": max(samples) * 1e3, "base_p50_ms": percentile(raw, 50) * 1e3})
    b.rss["after the LIST"] = b.rss_mib()


async def grpc_lists(b: Bench, reps: int) -> list[float]:
    async with grpc_objects(b) as stub:
        request = objects_pb2.ListRequest(ref=PODS_REF)
        resp = await stub.List(request)
        if len(resp.items) != b.sizes.pods:
            raise RuntimeError(f"gRPC List returned {len(resp.items)} items")
        return await repeat(reps, lambda: stub.List(request))


async def repeat(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


def pair_max(samples: Sequence[float]) -> str:
    return f"{percentile(samples, 50) * 1e3:.0f} / {max(samples) * 1e3:.0f}"


# --- 4. watch fan-out ------------------------------------------------------------------------


class Watcher(asyncio.Protocol):
    """One REST watch on a raw connection: finds data.t in each line, nothing more.

    Cheap on purpose: a thousand of these share the machine's two cores with
    the master, so a chunk costs one regex scan, not a JSON parse per event.
    Only sampled watchers (`latencies` given) time events; the others count
    lines, so that the client does not become the bottleneck at 1,000
    watchers (200,000 events/s) while every stream stays open and is read.
    """

    def __init__(self, latencies: list[float] | None) -> None:
        self.latencies = latencies
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.seen = 0
        self.closed_early = False  # by the server, before we hung up
        self.hung_up = False
        self.transport: asyncio.Transport | None = None

    def hang_up(self) -> None:
        self.hung_up = True
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self.buffer + data
        if not self.ready.done():
            head, sep, buf = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = head
                return
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.ready.set_exception(RuntimeError(f"watch refused: {head[:200]!r}"))
                return
            self.ready.set_result(None)
        cut = buf.rfind(b"\n") + 1
        if self.latencies is None:
            self.seen += buf.count(b"\n", 0, cut)  # one event per line
        else:
            # Scanning up to the last newline cannot cut a value in half.
            found = T_VALUE.findall(buf, 0, cut)
            self.latencies.extend([now - float(t) for t in found])
            self.seen += len(found)
        self.buffer = buf[cut:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed_early = not self.hung_up
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("watch closed before its headers"))


async def open_watchers(b: Bench, n: int, rv: str, latencies: list[float]) -> list[Watcher]:
    loop = asyncio.get_running_loop()
    request = (f"GET /api/v1/namespaces/watch/configmaps?watch=true&resourceVersion={rv} HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{b.master.rest_port}\r\nAccept: application/json\r\n\r\n").encode()

    every = max(1, n // WATCH_SAMPLE)

    async def one(i: int) -> Watcher:
        w = Watcher(latencies if i % every == 0 else None)
        await loop.create_connection(lambda: w, "127.0.0.1", b.master.rest_port)
        assert w.transport is not None
        w.transport.write(request)
        await w.ready
        return w

    watchers: list[Watcher] = []
    for start in range(0, n, 100):  # under the master's listen backlog
        watchers += await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))
    return watchers


async def fan_out(b: Bench) -> None:
    await b.namespace("watch")
    writers, rate = 20, b.sizes.events_per_s
    async with sessions(b.master.url, writers) as group:
        objs = [await rest(group[k], "POST", "/api/v1/namespaces/watch/configmaps", body=config_map(f"w-{k}"))
                for k in range(writers)]
        for n in b.sizes.watchers:
            rv = (await rest(group[0], "GET", "/api/v1/namespaces/watch/configmaps"))["metadata"]["resourceVersion"]
            latencies: list[float] = []
            watchers = await open_watchers(b, n, rv, latencies)
            raw: list[float] = []
            etcd_watch = asyncio.create_task(raw_watch(b, int(rv) + 1, raw))
            cpu, cpu_self, start = b.master_cpu_s(), time.process_time(), time.perf_counter()
            try:
                write_start = time.perf_counter()
                sent = await write_events(group, objs, rate=rate, count=int(rate * b.sizes.watch_window_s))
                achieved = sent / (time.perf_counter() - write_start)
                await wait_delivered(watchers, sent, deadline=time.perf_counter() + b.sizes.drain_s)
            finally:
                etcd_watch.cancel()
                for w in watchers:
                    w.hang_up()
            elapsed = time.perf_counter() - start
            cores = ((b.master_cpu_s() - cpu) / elapsed, (time.process_time() - cpu_self) / elapsed)
            report_fan_out(b, n, sent, watchers, latencies, raw=raw, cores=cores, achieved=achieved)
    b.rss[f"after the fan-out to {plural(max(b.sizes.watchers), 'watcher')}"] = b.rss_mib()


async def raw_watch(b: Bench, revision: int, latencies: list[float]) -> None:
    """The baseline: one etcd watch on the same keys; t is found in the stored bytes."""
    events = b.store.watch(b.key("configmaps", "watch"), start_revision=revision)
    # EtcdStore.watch is an async generator, though typed as the Store's AsyncIterator.
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        async for event in events:
            now = time.time()
            found = RAW_T_VALUE.search(event.value)
            if found:
                latencies.append(now - float(found.group(1)))


async def write_events(group: Sequence[aiohttp.ClientSession], objs: list[dict[str, Any]], *, rate: int, count: int) -> int:
    """`count` updates at `rate`/s on an absolute schedule; each writer owns one ConfigMap."""
    start = time.perf_counter() + 0.05

    async def writer(k: int) -> int:
        done = 0
        for i in range(k, count, len(objs)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            obj = objs[k]
            obj["data"]["t"] = f"{time.time():.6f}"
            objs[k] = await rest(group[k], "PUT", f"/api/v1/namespaces/watch/configmaps/{obj['metadata']['name']}", body=obj)
            done += 1
        return done

    return sum(await asyncio.gather(*(writer(k) for k in range(len(objs)))))


async def wait_delivered(watchers: list[Watcher], sent: int, *, deadline: float) -> None:
    """Until every open watcher has every event, or the deadline passes."""
    while time.perf_counter() < deadline and any(w.seen < sent and not w.closed_early for w in watchers):
        await asyncio.sleep(0.1)


def report_fan_out(b: Bench, n: int, sent: int, watchers: list[Watcher], latencies: list[float], *,
                   raw: list[float], cores: tuple[float, float], achieved: float) -> None:
    missing = sum(max(0, sent - w.seen) for w in watchers)
    sampled_missing = sum(max(0, sent - w.seen) for w in watchers if w.latencies is not None)
    closed = sum(w.closed_early for w in watchers)
    # An event not delivered by the deadline counts as infinitely late, so a
    # percentile it reaches reads "∞" rather than flattering the others.
    samples = sorted(latencies + [math.inf] * sampled_missing)  # sorted once: the percentiles below re-sort in O(n)
    raw.sort()
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    section = (f"Watch fan-out: {b.sizes.events_per_s} events/s for {b.sizes.watch_window_s:g} s "
               f"(∞: not delivered {b.sizes.drain_s:g} s after the last write; latency timed on "
               f"up to {WATCH_SAMPLE} evenly spread watchers, every watcher's events counted)")
    who = plural(n, "watcher")
    b.add(section, f"{who}: delivery p50 / p99 ms", ms_pair(samples), f"{ms_pair(raw)} one etcd watch",
          target="p99 ≤ 200", met=p99 <= 0.2,
          numbers={"p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "base_p50_ms": percentile(raw, 50) * 1e3,
                   "base_p99_ms": percentile(raw, 99) * 1e3})
    b.add(section, f"{who}: events not delivered in time / delivered (streams the server closed)",
          f"{missing:,} / {sent * n - missing:,} ({closed})", f"{sent * n:,} expected ({sent} × {n})",
          target="0 missing", met=missing == 0,
          numbers={"missing": missing, "delivered": sent * n - missing, "closed_early": closed,
                   "timed": len(latencies)})
    b.add(section, f"{who}: CPU cores busy, master / bench client ({achieved:.0f} updates/s achieved)",
          f"{cores[0]:.2f} / {cores[1]:.2f}", "—",
          numbers={"master_cores": cores[0], "client_cores": cores[1], "updates_per_s": achieved})


# --- the run -------------------------------------------------------------------------------------


async def run(sizes: Sizes, *, json_path: Path | None, only: Sequence[str] = ()) -> list[Row]:
    started, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-") as tmp:
        async with EtcdCluster(Path(tmp) / "etcd", base_port=free_port_block()) as cluster:
            with master_process(cluster.endpoints, Path(tmp),
                                extra_args=("--disable-controllers", "--disable-scheduler")) as master:
                store = await EtcdStore.open(cluster.endpoints)
                b = Bench(sizes, master, store, cluster.endpoints,
                          etcd_pids=[pid for pid in cluster.pids if pid is not None])
                try:
                    for name in chosen_phases(only):
                        print(f"{name} ...", file=sys.stderr, flush=True)
                        phase_start = time.perf_counter()
                        await PHASES[name](b)
                        print(f"{name}: {time.perf_counter() - phase_start:.0f} s", file=sys.stderr, flush=True)
                    for when, mib in b.rss.items():
                        b.add("Master memory (VmRSS)", when, f"{mib:.0f} MiB", "—", numbers={"rss_mib": mib})
                except Exception:
                    print(render(b.rows), "\n--- master log tail ---", file=sys.stderr)
                    print(Path(master.log_path).read_text()[-3000:], file=sys.stderr)
                    raise
                finally:
                    await store.close()
    elapsed = time.perf_counter() - started
    print(header(sizes, elapsed, load_before=load) + render(b.rows))
    if json_path is not None:
        doc = {"sizes": asdict(sizes), "elapsed_s": elapsed, "rows": [asdict(r) for r in b.rows]}
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
    return b.rows


PHASES: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "latency": latency, "throughput": throughput, "list": list_pods, "watch": fan_out}


def chosen_phases(only: Sequence[str]) -> list[str]:
    """Every phase by default; "list" needs the pods that "throughput" creates."""
    wanted = set(only or PHASES)
    if "list" in wanted:
        wanted.add("throughput")
    return [name for name in PHASES if name in wanted]


def header(sizes: Sizes, elapsed: float, *, load_before: float) -> str:
    return (f"## Flotilla apiserver benchmark\n\n{os.cpu_count()} cores shared with other work (1-min load "
            f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after), {elapsed:.0f} s in all; "
            f"3-member etcd 3.4 on loopback, one master; {sizes.requests_per_verb} requests per verb and "
            f"level, {sizes.pods:,} pods.\n"
            "Baselines: the same operation on raw etcd (EtcdStore / aetcd stubs) from the same process.\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small counts, for a smoke test")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--only", action="append", choices=list(PHASES), default=[],
                   help="run only this phase (repeatable; for re-measuring one figure)")
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()

    async def supervised() -> None:
        task = asyncio.current_task()
        assert task is not None
        # SIGTERM unwinds like Ctrl-C does, so every finally (master, etcd, temp dir) runs.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        await run(sizes, json_path=args.json, only=args.only)

    try:
        asyncio.run(supervised())
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)


if __name__ == "__main__":
    main()
