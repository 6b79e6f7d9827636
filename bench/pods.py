"""The pods benchmark: create -> Running, seen by a watch, on a real one-host lab.

Run `.venv/bin/python bench/pods.py [--pods 30] [--rate 1] [--quick] [--json PATH]`.
It brings up its own lab (`flotctl lab up --nodes 1`: etcd, the master, one agent
in a host namespace against the machine's dockerd; private dir, free ports,
unique ids), then measures:

0. one warm-up pod (the agent's stream and first sandbox), not counted;
1. paced: `--pods` pods pinned to the node by spec.nodeName, one every 1/`--rate`
   seconds; per pod, the time from the POST to the watch event that shows
   phase Running (p50, p99);
2. burst: the same number created at once;
3. beside each, the raw baseline in the same run: the same pause + app pair made
   with the Docker API directly (pause with network none, app joining it),
   paced and then all at once;
4. the agent's RSS with that many pods running.

It prints a markdown table and asserts nothing (timings are never pass/fail; the
machine is shared). It removes the lab, the pods and the baseline containers on
any exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import docker  # noqa: E402

from deploy.dockerd import ensure_dockerd  # noqa: E402
from deploy.etcd_cluster import free_port_block  # noqa: E402
from node_agent.runtime.docker import DockerRuntime  # noqa: E402
from node_agent.runtime.interface import PAUSE_IMAGE, TEST_IMAGE  # noqa: E402
from tests.integration.harness import free_port  # noqa: E402

NS = "bench"
BASELINE_LABEL = "flotilla.bench"


def percentile(samples: list[float], p: float) -> float:
    s = sorted(samples)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def pod_body(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [
                {"name": "app", "image": TEST_IMAGE, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]}}


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lab_id = "b" + uuid.uuid4().hex[:5]
        self.node = f"{self.lab_id}-n1"
        self.rest = free_port()
        self.env = dict(os.environ, FLOTILLA_LAB_DIR=str(tmp / "lab"), HOME=str(tmp))
        self.cmd = [sys.executable, "-m", "flotctl.main", "lab"]

    def up(self) -> None:
        subnet = f"172.31.{uuid.uuid4().int % 200 + 20}.0/24"
        res = subprocess.run(self.cmd + ["up", "--nodes", "1", "--lab-id", self.lab_id, "--subnet", subnet,
                                         "--node-prefix", f"{self.lab_id}-n", "--etcd-base-port",
                                         str(free_port_block()), "--rest-port", str(self.rest), "--grpc-port",
                                         str(free_port())], env=self.env, cwd=REPO, capture_output=True, text=True,
                             timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"lab up failed:\n{res.stdout}\n{res.stderr}")

    def down(self) -> None:
        subprocess.run(self.cmd + ["down"], env=self.env, cwd=REPO, capture_output=True, timeout=300)

    def agent_rss_mib(self) -> float:
        state = json.loads((self.tmp / "lab" / "state.json").read_text())
        pid = state["agents"][self.node]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest}"


async def watch_running(session: aiohttp.ClientSession, url: str, seen: dict[str, float],
                        started: threading.Event | asyncio.Event) -> None:
    params = {"watch": "true", "timeoutSeconds": "600"}
    async with session.get(f"{url}/api/v1/namespaces/{NS}/pods", params=params,
                           timeout=aiohttp.ClientTimeout(total=None)) as resp:
        started.set()
        async for line in resp.content:
            ev = json.loads(line)
            obj = ev.get("object", {})
            if obj.get("status", {}).get("phase") == "Running":
                seen.setdefault(obj["metadata"]["name"], time.monotonic())


async def flotilla_round(lab: Lab, session: aiohttp.ClientSession, *, prefix: str, count: int,
                         interval_s: float) -> list[float]:
    seen: dict[str, float] = {}
    posted: dict[str, float] = {}
    started = asyncio.Event()
    watcher = asyncio.create_task(watch_running(session, lab.url, seen, started))
    await asyncio.wait_for(started.wait(), 30)

    async def create(i: int) -> None:
        name = f"{prefix}-{i}"
        posted[name] = time.monotonic()
        async with session.post(f"{lab.url}/api/v1/namespaces/{NS}/pods", json=pod_body(name, lab.node)) as r:
            if r.status != 201:
                raise RuntimeError(f"create {name}: {r.status} {await r.text()}")

    try:
        if interval_s > 0:
            for i in range(count):
                await create(i)
                await asyncio.sleep(interval_s)
        else:
            await asyncio.gather(*(create(i) for i in range(count)))
        deadline = time.monotonic() + 120
        while len(seen) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        watcher.cancel()
    return [seen[n] - posted[n] for n in posted if n in seen]


async def delete_all(lab: Lab, session: aiohttp.ClientSession) -> None:
    async with session.delete(f"{lab.url}/api/v1/namespaces/{NS}/pods", params={"gracePeriodSeconds": "0"}):
        pass
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with session.get(f"{lab.url}/api/v1/namespaces/{NS}/pods") as r:
            if not (await r.json()).get("items"):
                return
        await asyncio.sleep(0.5)


def raw_pair(api: Any, tag: str) -> float:
    start = time.monotonic()
    sb = api.create_container(PAUSE_IMAGE, labels={BASELINE_LABEL: tag},
                              host_config=api.create_host_config(network_mode="none", ipc_mode="shareable"))
    api.start(sb["Id"])
    app = api.create_container(TEST_IMAGE, command=["sleep", "3600"], labels={BASELINE_LABEL: tag},
                               host_config=api.create_host_config(network_mode=f"container:{sb['Id']}",
                                                                  ipc_mode=f"container:{sb['Id']}"))
    api.start(app["Id"])
    return time.monotonic() - start


def raw_round(count: int, interval_s: float, tag: str) -> list[float]:
    api = docker.APIClient(version="auto", timeout=120)
    try:
        if interval_s > 0:
            out = []
            for _ in range(count):
                out.append(raw_pair(api, tag))
                time.sleep(max(0.0, interval_s - out[-1]))
            return out
        results: list[float] = []
        threads = [threading.Thread(target=lambda: results.append(raw_pair(docker.APIClient(version="auto"), tag)))
                   for _ in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results
    finally:
        ids = [c["Id"] for c in api.containers(all=True, filters={"label": f"{BASELINE_LABEL}={tag}"})]
        for cid in ids:
            api.remove_container(cid, force=True, v=True)
        api.close()


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    ensure_dockerd()
    rt = DockerRuntime()
    await rt.ensure_image(PAUSE_IMAGE)
    await rt.ensure_image(TEST_IMAGE)
    await rt.close()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flotilla-bench-pods-") as tmp:
        lab = Lab(Path(tmp))
        try:
            lab.up()
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{lab.url}/api/v1/namespaces", json={
                        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}):
                    pass
                # Warm-up: the agent's pod stream and the node's first sandbox, outside the figures.
                await flotilla_round(lab, session, prefix="warmup", count=1, interval_s=0)
                await delete_all(lab, session)
                paced = await flotilla_round(lab, session, prefix="paced", count=args.pods, interval_s=1 / args.rate)
                await delete_all(lab, session)
                burst = await flotilla_round(lab, session, prefix="burst", count=args.pods, interval_s=0)
                rss = lab.agent_rss_mib()
                await delete_all(lab, session)
            tag = uuid.uuid4().hex[:8]
            raw_paced = await asyncio.to_thread(raw_round, args.pods, 1 / args.rate, tag)
            raw_burst = await asyncio.to_thread(raw_round, args.pods, 0, tag)
        finally:
            lab.down()
    for name, got, raw in (("paced", paced, raw_paced), ("burst", burst, raw_burst)):
        results[name] = {"n": len(got), "p50_s": percentile(got, 50), "p99_s": percentile(got, 99),
                         "raw_p50_s": percentile(raw, 50), "raw_p99_s": percentile(raw, 99)}
    results["agent_rss_mib"] = rss
    return results


def render(r: dict[str, Any], args: argparse.Namespace) -> str:
    p, b = r["paced"], r["burst"]
    rows = [
        ("| figure | flotilla | raw docker (same pair) | ratio | target |"),
        ("|---|---|---|---|---|"),
        f"| {args.pods} pods at {args.rate:g}/s, create -> Running p50 | {ms(p['p50_s'])} | {ms(p['raw_p50_s'])} | "
        f"{p['p50_s'] / p['raw_p50_s']:.2f}x | <= 1.3x |",
        f"| {args.pods} pods at {args.rate:g}/s, p99 | {ms(p['p99_s'])} | {ms(p['raw_p99_s'])} | "
        f"{p['p99_s'] / p['raw_p99_s']:.2f}x | <= 1.5 s |",
        f"| burst of {args.pods}, p50 | {ms(b['p50_s'])} | {ms(b['raw_p50_s'])} | {b['p50_s'] / b['raw_p50_s']:.2f}x | |",
        f"| burst of {args.pods}, p99 | {ms(b['p99_s'])} | {ms(b['raw_p99_s'])} | {b['p99_s'] / b['raw_p99_s']:.2f}x | |",
        f"| agent RSS with {args.pods} pods | {r['agent_rss_mib']:.0f} MiB | | | <= 80 MB |",
    ]
    seen = f"(Running seen for {p['n']}/{args.pods} paced and {b['n']}/{args.pods} burst pods)"
    return "## Flotilla pods benchmark\n\n" + "\n".join(rows) + "\n\n" + seen + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--rate", type=float, default=1.0, help="pods per second in the paced round")
    ap.add_argument("--quick", action="store_true", help="5 pods at 5/s")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.pods, args.rate = 5, 5.0
    results = asyncio.run(main_async(args))
    print(render(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
