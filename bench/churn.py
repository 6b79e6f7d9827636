"""The churn soak: rollouts and scaling on a real three-host lab, then what is left behind.

Run `.venv/bin/python bench/churn.py [--seconds 420]`.
It brings up its own lab (`flotctl lab up --nodes 3 --demo deploy/demo.yaml`:
etcd, the master, three agents and proxies in host namespaces against the
machine's dockerd; private dir, free ports, its own ids and subnet), then, until
`--seconds` have passed, repeats one round:

1. scale the demo Deployment to 2, 4 or 6 replicas and restart it (kubectl
   `scale` and `rollout restart`), then `kubectl rollout status`;
2. five requests to the web NodePort of host 1 from host 2's namespace.

Then it scales back to 3, waits `--settle` seconds for the pods to go and reports: rounds,
rollouts that did not finish, NodePort requests not answered, pods still
Terminating past their grace period, containers of the lab beside the pods'
(two per pod: pause and app), and the RSS of the master, the agents and the
proxies before and after. The baseline is the lab's own state before the first
round. It asserts nothing and removes the lab on any exit.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploy.lab import LabState  # noqa: E402
from node_agent.runtime.interface import LABEL_NODE  # noqa: E402
from tests.e2e.labkit import Lab  # noqa: E402

NODES = 3
SETTLE_S = 45.0  # time for the last pods to go (the demo's grace period is 5 s); --settle changes it
STUCK_AFTER_S = 30.0  # a pod deleted longer ago than its grace period plus this is stuck


class ChurnLab:
    """The bench's view of a private lab (tests/e2e/labkit.Lab: its own id, subnet and ports)."""

    def __init__(self, tmp: Path) -> None:
        self.lab = Lab(tmp, prefix="c", octet2=31, nodes_n=NODES)
        self.lab_dir = self.lab.lab_dir
        self.kubeconfig = tmp / "kubeconfig"

    def up(self) -> None:
        res = self.lab.up("--demo", str(REPO / "deploy/demo.yaml"))
        if res.returncode != 0:
            raise RuntimeError(f"lab up failed:\n{res.stdout}\n{res.stderr}")

    def down(self) -> None:
        self.lab.flotctl("lab", "down", timeout=300)

    def kubectl(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), *args], capture_output=True,
                              text=True, timeout=timeout)

    def state(self) -> LabState:
        return LabState.load(self.lab_dir)

    def rss_mib(self) -> dict[str, float]:
        s = self.state()
        pids = {"master": [s.master_pid], "agents": list(s.agents.values()), "proxies": list(s.proxies.values())}
        out = {}
        for role, group in pids.items():
            sizes = [_rss_mib(p) for p in group]
            out[role] = math.nan if any(math.isnan(x) for x in sizes) else max(sizes)  # NaN: one has died
        return out

    def nodeport_ok(self, port: int, tries: int = 5) -> int:
        hosts = self.state().plan().hosts
        target, source = hosts[0].address, hosts[1].netns
        ok = 0
        for _ in range(tries):
            res = subprocess.run(["ip", "netns", "exec", source, "curl", "-s", "-m", "2", "-o", "/dev/null",
                                  "-w", "%{http_code}", f"http://{target}:{port}/"],
                                 capture_output=True, text=True, timeout=10)
            ok += res.stdout.strip() == "200"
        return ok

    def pods(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-o", "json")
        return list(json.loads(out.stdout)["items"]) if out.returncode == 0 else []

    def containers(self) -> int:
        """Containers the lab's agents made (by their node label), exited ones too."""
        nodes = set(self.state().nodes)
        res = subprocess.run(["docker", "ps", "-a", "--filter", f"label={LABEL_NODE}", "--format",
                              f'{{{{.Label "{LABEL_NODE}"}}}}'], capture_output=True, text=True, timeout=30)
        return sum(1 for node in res.stdout.split() if node in nodes)


def _rss_mib(pid: int) -> float:
    """VmRSS in MiB; NaN for a process that is gone (the report says so rather than failing)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return float("nan")
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stuck_terminating(pods: list[dict[str, Any]], now: _dt.datetime) -> list[str]:
    """Pods whose deletion is older than their grace period plus STUCK_AFTER_S."""
    out = []
    for p in pods:
        meta = p["metadata"]
        stamp = meta.get("deletionTimestamp")
        if not stamp:
            continue
        since = _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if (now - since).total_seconds() > meta.get("deletionGracePeriodSeconds", 30) + STUCK_AFTER_S:
            out.append(meta["name"])
    return out


def soak(lab: ChurnLab, seconds: float, settle_s: float) -> dict[str, Any]:
    before = lab.rss_mib()
    svc = json.loads(lab.kubectl("get", "svc", "web", "-o", "json").stdout)
    port = int(svc["spec"]["ports"][0]["nodePort"])
    rounds = unfinished = unanswered = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rounds += 1
        lab.kubectl("scale", "deploy/web", f"--replicas={rounds % 3 * 2 + 2}")
        lab.kubectl("rollout", "restart", "deploy/web")
        if lab.kubectl("rollout", "status", "deploy/web", "--timeout=120s").returncode != 0:
            unfinished += 1
        unanswered += 5 - lab.nodeport_ok(port)
    lab.kubectl("scale", "deploy/web", "--replicas=3")
    lab.kubectl("rollout", "status", "deploy/web", "--timeout=120s")
    time.sleep(settle_s)
    pods = lab.pods()
    state = lab.state()
    return {"seconds": seconds, "rounds": rounds, "unfinished_rollouts": unfinished, "unanswered": unanswered,
            "requests": rounds * 5, "pods": len(pods), "containers": lab.containers(),
            "stuck_terminating": stuck_terminating(pods, _dt.datetime.now(_dt.UTC)),
            "rss_before": before, "rss_after": lab.rss_mib(),
            # what the lab was, so that a test can check nothing of it is left
            "lab": {"id": lab.lab.lab_id, "dir": str(lab.lab_dir), "subnet": state.subnet, "nodes": state.nodes}}


def render(r: dict[str, Any]) -> str:
    b, a = r["rss_before"], r["rss_after"]
    rows = [
        ("rounds (scale + rollout restart + 5 NodePort requests)", f"{r['rounds']} in {r['seconds']:.0f} s", ""),
        ("rollouts that did not finish in 120 s", str(r["unfinished_rollouts"]), "0"),
        ("NodePort requests not answered", f"{r['unanswered']} of {r['requests']}", "0"),
        ("pods Terminating past their grace period", str(len(r["stuck_terminating"])), "0"),
        ("pods / their containers at the end", f"{r['pods']} / {r['containers']}", "3 / 6"),
        *((f"{role} RSS, MiB (largest)", "a process died" if math.isnan(a[role]) else f"{a[role]:.0f}",
           f"{b[role]:.0f} before") for role in a),
    ]
    out = ["## Flotilla churn soak", "", f"{os.cpu_count()} cores; a three-host lab with the demo app.", "",
           "| figure | after | baseline |", "|---|---|---|"]
    out += [f"| {f} | {v} | {base} |" for f, v, base in rows]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=420.0, help="how long the rounds go on")
    p.add_argument("--settle", type=float, default=SETTLE_S, help="seconds to let the last pods go before counting")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="flotilla-churn-") as tmp:
        lab = ChurnLab(Path(tmp))
        try:
            lab.up()
            result = soak(lab, args.seconds, args.settle)
        finally:
            lab.down()
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
