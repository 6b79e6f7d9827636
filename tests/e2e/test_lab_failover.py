"""Issue 4's end-to-end bullet on the lab: real dockerd, real agents, the real
scheduler and controllers.

`flotctl lab up --nodes 3` with a short node-failure window (heartbeat 1 s,
grace 4 s, default tolerationSeconds 5); a 6-replica Deployment and its
NodePort Service applied with kubectl: the pods spread over the three hosts,
a pod fetches web.default.svc.cluster.local (cluster DNS, ClusterIP) and
host 2's namespace fetches host 1's NodePort; then one host's agent is SIGKILLed and
its link to the switch goes down. Its node goes Ready=Unknown and is tainted
unreachable, its pods are evicted after their tolerationSeconds, and the
ReplicaSet's replacements run on the other two hosts: six Running and Ready
pods, none on the dead host, within the configured window plus start-up time.

The lost host's pods stay Terminating (no agent is left to confirm them gone),
exactly as on Kubernetes; `flotctl lab down` removes their containers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from node_agent.runtime.interface import TEST_IMAGE
from tests.e2e.labkit import (
    Lab,
    api_json,
    docker_ready,
    fetch_from_host,
    leftovers,
    pod_ready,
    run_cmd,
    wait_for,
)

HEARTBEAT_S, GRACE_S, EVICTION_S = 1, 4, 5

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: http
        image: %s
        imagePullPolicy: Never
        command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/var/www"]
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
"""


def _serving(rest: int) -> list[dict[str, Any]]:
    pods = api_json(rest, "GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"]
    return [p for p in pods if pod_ready(p) and "deletionTimestamp" not in p["metadata"]]


def _fetch_service(kenv: dict[str, str], pod: dict[str, Any]) -> str:
    res = run_cmd(["kubectl", "exec", pod["metadata"]["name"], "--", "sh", "-c",
                   "timeout 5 busybox wget -qO- http://web.default.svc.cluster.local/"], kenv, timeout=60)
    return res.stdout if res.returncode == 0 else ""


def test_deployment_spreads_and_survives_a_lost_host(tmp_path: Path) -> None:
    api = docker_ready()
    lab = Lab(tmp_path, prefix="f", octet2=31)
    lab_id, lab_dir, kenv, rest, nodes = lab.lab_id, lab.lab_dir, lab.kenv, lab.rest, lab.nodes
    try:
        up = lab.up("--heartbeat-period-s", str(HEARTBEAT_S), "--node-grace-s", str(GRACE_S),
                    "--eviction-s", str(EVICTION_S))
        assert up.returncode == 0, up.stdout + up.stderr

        manifest = tmp_path / "web.yaml"
        manifest.write_text(DEPLOYMENT % TEST_IMAGE)
        applied = run_cmd(["kubectl", "apply", "-f", str(manifest)], kenv, timeout=60)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        waited = run_cmd(["kubectl", "wait", "--for=condition=Available", "deployment/web", "--timeout=120s"],
                         kenv, timeout=150)
        assert waited.returncode == 0, waited.stdout + waited.stderr
        serving = wait_for("six ready pods", lambda: (lambda s: s if len(s) == 6 else None)(_serving(rest)),
                           timeout_s=60)
        spread = Counter(p["spec"]["nodeName"] for p in serving)
        assert sorted(spread) == sorted(nodes), spread  # every host runs some
        assert max(spread.values()) - min(spread.values()) <= 1, spread  # and evenly
        # The whole path from a pod: cluster DNS (in every proxy), the ClusterIP
        # (iptables on the pod's host), an endpoint on any host.
        fetched = wait_for("a pod fetching web.default.svc.cluster.local", lambda: _fetch_service(kenv, serving[0]),
                           timeout_s=60)
        assert "flotilla test image" in fetched
        # The NodePort answers on host 1's address from host 2's namespace.
        node_port = api_json(rest, "GET", "/api/v1/namespaces/default/services/web")["spec"]["ports"][0]["nodePort"]
        host1 = [a["address"] for a in api_json(rest, "GET", f"/api/v1/nodes/{nodes[0]}")["status"]["addresses"]
                 if a["type"] == "InternalIP"][0]
        via_node_port = wait_for("the NodePort from another host", lambda: fetch_from_host(
            f"{lab_id}-{nodes[1]}", f"http://{host1}:{node_port}/"), timeout_s=30)
        assert "flotilla test image" in via_node_port

        # Lose host 3: its agent dies with SIGKILL and its link goes down.
        lost = nodes[2]
        state = json.loads((lab_dir / "state.json").read_text())
        os.kill(state["agents"][lost], signal.SIGKILL)
        subprocess.run(["nsenter", f"--net=/var/run/netns/{lab_id}-{lost}", "ip", "link", "set", "eth0", "down"],
                       check=True, timeout=30)
        lost_at = time.monotonic()

        def node_unknown() -> bool:
            node = api_json(rest, "GET", f"/api/v1/nodes/{lost}")
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
            return bool(ready and ready[0]["status"] == "Unknown"
                        and ("node.kubernetes.io/unreachable", "NoExecute") in taints)

        wait_for("the lost node to be Unknown and tainted", node_unknown, timeout_s=GRACE_S + 30)

        def moved() -> list[dict[str, Any]] | None:
            s = _serving(rest)
            return s if len(s) == 6 and all(p["spec"]["nodeName"] != lost for p in s) else None

        moved_pods = wait_for("six ready pods on the other hosts", moved, timeout_s=GRACE_S + EVICTION_S + 90)
        took_s = time.monotonic() - lost_at
        assert {p["spec"]["nodeName"] for p in moved_pods} <= set(nodes[:2])
        print(f"pods of the lost host ran elsewhere {took_s:.1f} s after it was lost "
              f"(grace {GRACE_S} s + tolerationSeconds {EVICTION_S} s)")
        rollout = run_cmd(["kubectl", "rollout", "status", "deployment/web", "--timeout=60s"], kenv, timeout=90)
        assert rollout.returncode == 0, rollout.stdout + rollout.stderr
    finally:
        down = lab.flotctl("lab", "down")
        left = leftovers(lab_id, lab_dir, nodes, api)
        api.close()
    assert down.returncode == 0, down.stdout + down.stderr
    assert left == [], left
