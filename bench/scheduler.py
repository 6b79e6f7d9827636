"""The scheduler benchmark: pods bound per second on 100, 1,000 and 5,000 nodes.

Run `.venv/bin/python bench/scheduler.py [--quick] [--sizes 100x1000,1000x2000] [--json PATH]`.
For each size it starts a fresh `flotilla-master` subprocess on its own
three-member etcd (temp dir, free ports), creates the Node objects (Ready,
cpu 32 / memory 128Gi / pods 110, no agents: "hollow" in Kubernetes' sense)
and the pending pods (100m / 128Mi, ten pods per owner), then starts the real
`Scheduler` in this process and measures, side by side:

1. end to end: pods bound per second through the apiserver (informer list,
   decision, explanation, Binding with its annotation), from the moment the
   scheduler's informers are synced until the last bind has succeeded;
2. baseline, the API alone: pod creates per second at 64 concurrent
   clients against the same master (a bind is one such write);
3. baseline, the decision alone: decisions per second (compute_decision +
   explanation + assume) on the same cluster shape, no I/O, and the time
   each plugin takes per pod;
4. master and scheduler RSS after the run.

It prints markdown tables and asserts nothing (timings are never pass/fail;
the machine is shared). It owns the processes and temp dirs it creates and
removes them on any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: bench/ is on sys.path, the repo is not
    sys.path.insert(0, str(REPO))

from deploy.etcd_cluster import EtcdCluster, free_port_block  # noqa: E402
from master.client import Client  # noqa: E402
from master.scheduler import Scheduler  # noqa: E402
from master.scheduler.algorithm import compute_decision  # noqa: E402
from master.scheduler.cache import SchedulerCache  # noqa: E402
from master.scheduler.explanation import render_explanation  # noqa: E402
from master.scheduler.framework import FilterPlugin, Profile, ScorePlugin  # noqa: E402
from master.scheduler.plugins import default_profile  # noqa: E402
from master.scheduler.snapshot import PodInfo  # noqa: E402
from protos.core.v1 import core_pb2  # noqa: E402
from tests.integration.harness import master_process  # noqa: E402

TARGETS = {100: 300, 1000: 200, 5000: 100}  # pods/s, issue 4
CLIENTS = 64


@dataclass
class Result:
    nodes: int
    pods: int
    bound_per_s: float = 0.0
    bound_per_cpu_s: float = 0.0  # per CPU-second of the scheduler (this process)
    master_cpu_per_pod_ms: float = 0.0
    creates_per_s: float = 0.0
    decisions_per_s: float = 0.0
    decisions_per_cpu_s: float = 0.0
    plugin_ms: dict[str, float] = field(default_factory=dict)
    master_rss_mib: float = 0.0
    scheduler_rss_mib: float = 0.0
    elapsed_s: float = 0.0


def make_node(i: int) -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = f"bench-node-{i:05}"
    n.metadata.labels["kubernetes.io/hostname"] = n.metadata.name
    n.metadata.labels["topology.kubernetes.io/zone"] = f"zone-{i % 3}"
    return n


def node_status(n: core_pb2.Node) -> core_pb2.Node:
    cap = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    n.status.capacity.update(cap)
    n.status.allocatable.update(cap)
    c = n.status.conditions.add()
    c.type, c.status, c.reason = "Ready", "True", "KubeletReady"
    return n


def make_pod(i: int) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = f"bench-pod-{i:05}"
    p.metadata.namespace = "default"
    p.metadata.labels["app"] = f"app-{i // 10}"
    ref = p.metadata.owner_references.add()
    ref.api_version, ref.kind, ref.name = "apps/v1", "ReplicaSet", f"rs-{i // 10}"
    ref.uid, ref.controller = f"00000000-0000-0000-0000-{i // 10:012}", True
    c = p.spec.containers.add()
    c.name, c.image = "app", "busybox"
    c.resources.requests["cpu"] = "100m"
    c.resources.requests["memory"] = "128Mi"
    return p


async def concurrently(count: int, work: Callable[[int], Awaitable[object]], *, clients: int = CLIENTS) -> float:
    """Run work(0..count-1) on `clients` workers; return items per second."""
    it = iter(range(count))

    async def worker() -> None:
        for i in it:
            await work(i)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(clients, count)):
            tg.create_task(worker())
    return count / (time.perf_counter() - start)


def cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the decision alone, with time per plugin ----------------------------------------------


class _TimedFilter(FilterPlugin):
    def __init__(self, inner: FilterPlugin, acc: dict[str, float]) -> None:
        self.inner, self.acc = inner, acc
        self.name = inner.name  # type: ignore[misc]

    def prepare(self, pod: Any, snapshot: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.inner.prepare(pod, snapshot)
        finally:
            self.acc[f"filter {self.name}"] += time.perf_counter() - t

    def filter(self, state: Any, pod: Any, node: Any) -> Any:
        t = time.perf_counter()
        try:
            return self.inner.filter(state, pod, node)
        finally:
            self.acc[f"filter {self.name}"] += time.perf_counter() - t


class _TimedScore(ScorePlugin):
    def __init__(self, inner: ScorePlugin, acc: dict[str, float]) -> None:
        self.inner, self.acc = inner, acc
        self.name = inner.name  # type: ignore[misc]
        self.weight = inner.weight  # type: ignore[misc]

    def _timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.acc[f"score {self.name}"] += time.perf_counter() - t

    def prepare(self, pod: Any, snapshot: Any, feasible: Any) -> Any:
        return self._timed(self.inner.prepare, pod, snapshot, feasible)

    def score(self, state: Any, pod: Any, node: Any) -> int:
        return int(self._timed(self.inner.score, state, pod, node))

    def normalize(self, state: Any, scores: Any) -> dict[str, int]:
        return dict(self._timed(self.inner.normalize, state, scores))


def decision_baseline(nodes: int, pods: int) -> tuple[float, float, dict[str, float]]:
    cache = SchedulerCache()
    for i in range(nodes):
        cache.set_node(node_status(make_node(i)))
    rng = random.Random(1)
    plain = default_profile()
    infos = [PodInfo.of(make_pod(i)) for i in range(pods)]
    start_index, t, cpu = 0, time.perf_counter(), time.process_time()
    for info in infos:
        snap = cache.snapshot()
        d = compute_decision(info, snap, plain, rng, start=start_index)
        start_index = (start_index + len(d.verdicts)) % nodes
        render_explanation(d, at=datetime.now(UTC))
        assert d.node is not None
        cache.assume(info.pod, d.node)
    rate = pods / (time.perf_counter() - t)
    cpu_rate = pods / max(1e-9, time.process_time() - cpu)
    # Time per plugin: a second, instrumented pass (the timers cost time themselves).
    acc: dict[str, float] = defaultdict(float)
    timed = Profile(tuple(_TimedFilter(f, acc) for f in plain.filters),
                    tuple(_TimedScore(s, acc) for s in plain.scorers))
    sample = infos[: min(200, len(infos))]
    for info in sample:
        compute_decision(info, cache.snapshot(), timed, rng)
    return rate, cpu_rate, {k: v * 1000 / len(sample) for k, v in acc.items()}


# --- end to end --------------------------------------------------------------------------------


async def end_to_end(nodes: int, pods: int, result: Result) -> None:
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-sched-") as tmp:
        async with EtcdCluster(Path(tmp) / "etcd", base_port=free_port_block()) as cluster:
            with master_process(cluster.endpoints, Path(tmp),
                                extra_args=("--disable-controllers", "--disable-scheduler")) as master:
                async with await Client.connect(master.grpc_target, wait_ready_s=30) as client:

                    async def add_node(i: int) -> None:
                        created = await client.create(make_node(i))
                        await client.update_status(node_status(created))

                    await concurrently(nodes, add_node)
                    result.creates_per_s = await concurrently(pods, lambda i: client.create(make_pod(i)))
                    scheduler = Scheduler(client, seed=1)
                    ready = asyncio.Event()
                    task = asyncio.create_task(scheduler.run(ready=ready))
                    try:
                        await asyncio.wait_for(ready.wait(), 120)
                        start, cpu, master_cpu = time.perf_counter(), cpu_s(), cpu_s(master.proc.pid)
                        deadline = start + max(120.0, pods / 5)
                        while scheduler.scheduled < pods:
                            if task.done():
                                task.result()
                                raise RuntimeError("scheduler stopped")
                            if time.perf_counter() > deadline:
                                raise RuntimeError(f"only {scheduler.scheduled}/{pods} bound in time")
                            await asyncio.sleep(0.02)
                        result.bound_per_s = pods / (time.perf_counter() - start)
                        result.bound_per_cpu_s = pods / max(1e-9, cpu_s() - cpu)
                        result.master_cpu_per_pod_ms = (cpu_s(master.proc.pid) - master_cpu) * 1000 / pods
                        result.master_rss_mib = rss_mib(master.proc.pid)
                        result.scheduler_rss_mib = rss_mib()
                    finally:
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)


async def run_size(nodes: int, pods: int) -> Result:
    result = Result(nodes, pods)
    t = time.perf_counter()
    print(f"{nodes} nodes / {pods} pods: end to end ...", file=sys.stderr, flush=True)
    await end_to_end(nodes, pods, result)
    print(f"{nodes} nodes / {pods} pods: decisions alone ...", file=sys.stderr, flush=True)
    result.decisions_per_s, result.decisions_per_cpu_s, result.plugin_ms = decision_baseline(nodes, pods)
    result.elapsed_s = time.perf_counter() - t
    return result


def render(results: Sequence[Result], *, load_before: float) -> str:
    out = [f"## Flotilla scheduler benchmark\n\n{os.cpu_count()} cores shared with other work (1-min load "
           f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after); 3-member etcd 3.4 on loopback, one "
           "master subprocess, the scheduler in the benchmark process; every node evaluated up to 100 "
           "nodes, Kubernetes' adaptive percentageOfNodesToScore above.\n",
           "Per CPU-second figures divide by the CPU time the scheduler's process used, so they say what "
           "one idle core would do; wall-clock figures depend on the load.\n",
           "| nodes | pods | bound/s end to end | target | bound per scheduler CPU-s | master CPU ms/pod | "
           "API creates/s (baseline) | decisions/s, no I/O (baseline) | decisions per CPU-s | master RSS "
           "| scheduler RSS |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        target = TARGETS.get(r.nodes)
        met = "" if target is None else (" (met)" if r.bound_per_s >= target else " (missed)")
        out.append(f"| {r.nodes:,} | {r.pods:,} | {r.bound_per_s:.0f} | {target or '—'}{met} | "
                   f"{r.bound_per_cpu_s:.0f} | {r.master_cpu_per_pod_ms:.1f} | "
                   f"{r.creates_per_s:.0f} | {r.decisions_per_s:.0f} | {r.decisions_per_cpu_s:.0f} | "
                   f"{r.master_rss_mib:.0f} MiB | {r.scheduler_rss_mib:.0f} MiB |")
    out.append("\n### Time per plugin (ms per pod, instrumented pass)\n")
    names = sorted({k for r in results for k in r.plugin_ms})
    out.append("| plugin | " + " | ".join(f"{r.nodes:,} nodes" for r in results) + " |")
    out.append("|---|" + "---|" * len(results))
    for name in names:
        out.append(f"| {name} | " + " | ".join(f"{r.plugin_ms.get(name, 0):.2f}" for r in results) + " |")
    return "\n".join(out) + "\n"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        n, _, p = part.partition("x")
        sizes.append((int(n), int(p)))
    return sizes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 nodes, 100 pods: a smoke test")
    p.add_argument("--sizes", default="100x1000,1000x2000,5000x2000",
                   help="NODESxPODS,... (default %(default)s)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = p.parse_args(argv)
    sizes = [(20, 100)] if args.quick else parse_sizes(args.sizes)
    load = os.getloadavg()[0]

    async def all_sizes() -> list[Result]:
        return [await run_size(n, pods) for n, pods in sizes]

    try:
        results = asyncio.run(all_sizes())
    except KeyboardInterrupt:
        sys.exit(130)
    print(render(results, load_before=load))
    if args.json is not None:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
