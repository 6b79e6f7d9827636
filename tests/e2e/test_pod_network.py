"""The pod network alone (no agent, no Docker): three host namespaces on a
switch, a BridgeNetwork per host, "sandboxes" that are bare network namespaces
(one named, one held by a process and addressed as /proc/<pid>/ns/net, the
form the Docker runtime hands over), and host-gw routes from the route plan.

Checks: every pod gets an address from its host's /24, reaches pods on the
other hosts and is reached from every host namespace; hairpin is on; setup is
idempotent (same address, traffic intact); teardown frees the address and the
veth; routes follow Nodes leaving. Everything is removed even on failure.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.labnet import NETNS_DIR, LabNetPlan, create_lab_net, destroy_lab_net, plan_lab_hosts
from node_agent.network.bridge import BridgeConfig, BridgeNetwork, host_veth_name
from node_agent.network.errors import NetworkError


def _ping(netns: str, ip: str) -> bool:
    res = subprocess.run(["nsenter", f"--net={NETNS_DIR / netns}", "busybox", "ping", "-c", "1", "-W", "3", ip],
                         capture_output=True, timeout=20)
    return res.returncode == 0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabNetPlan]:
    lab_id = "t" + uuid.uuid4().hex[:6]
    plan = plan_lab_hosts(lab_id, ["n1", "n2", "n3"], subnet=f"172.29.{uuid.uuid4().int % 200 + 20}.0/24")
    sandboxes: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        create_lab_net(plan)
        yield plan
    finally:
        for p in procs:
            p.kill()
        for name in sandboxes:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        destroy_lab_net(plan)
        for ns in list(NETNS_DIR.iterdir()):
            if ns.name.startswith(lab_id):
                subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


async def test_pods_reach_each_other_across_hosts(lab: LabNetPlan, tmp_path: Path) -> None:
    nets: dict[str, BridgeNetwork] = {}
    sandboxes: list[str] = []
    holder: subprocess.Popen[bytes] | None = None
    try:
        for i, host in enumerate(lab.hosts):
            cfg = BridgeConfig(pod_cidr=f"10.244.{i + 1}.0/24", state_dir=tmp_path / host.name,
                               host_netns=host.netns)
            nets[host.name] = BridgeNetwork(cfg)
            await nets[host.name].ensure()
        routes = {f"10.244.{i + 1}.0/24": h.address for i, h in enumerate(lab.hosts)}
        for net in nets.values():
            await net.sync_routes(routes)

        pods: dict[str, tuple[str, str]] = {}  # uid -> (host, ip)
        for i, host in enumerate(lab.hosts):
            sb = f"{lab.lab_id}-sb{i}"
            subprocess.run(["ip", "netns", "add", sb], check=True)
            sandboxes.append(sb)
            uid = str(uuid.uuid4())
            ip = await nets[host.name].setup_pod(pod_uid=uid, namespace="default", name=f"p{i}",
                                                 netns_path=str(NETNS_DIR / sb))
            assert ip.startswith(f"10.244.{i + 1}.") and not ip.endswith(".1")
            pods[uid] = (sb, ip)
        # The host's own namespace is never plumbed as if it were a sandbox.
        with pytest.raises(NetworkError, match="host's own"):
            await nets["n1"].setup_pod(pod_uid="x", namespace="default", name="bad",
                                       netns_path=str(NETNS_DIR / lab.hosts[0].netns))
        assert nets["n1"].pod_ip("x") is None
        # A sandbox held by a process, addressed the way the runtime hands it over.
        holder = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        proc_path = f"/proc/{holder.pid}/ns/net"
        for _ in range(200):  # until unshare has switched namespaces
            try:
                if os.readlink(proc_path) != os.readlink("/proc/self/ns/net"):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("unshare --net did not enter a new namespace")
        uid_proc = str(uuid.uuid4())
        ip_proc = await nets["n2"].setup_pod(pod_uid=uid_proc, namespace="default", name="held", netns_path=proc_path)
        assert ip_proc.startswith("10.244.2.")

        for sb, _ in pods.values():
            for _, ip in pods.values():
                assert _ping(sb, ip), f"{sb} cannot reach {ip}"
            assert _ping(sb, ip_proc)
        for host in lab.hosts:
            for _, ip in pods.values():
                assert _ping(host.netns, ip), f"host {host.name} cannot reach {ip}"

        # Leaving the cluster CIDR (to the root namespace's leg, which has no route
        # back to pods) works only through the masquerade rule.
        rules = subprocess.run(["nsenter", f"--net={NETNS_DIR / lab.hosts[0].netns}", "iptables-legacy", "-t", "nat",
                                "-S"], capture_output=True, text=True).stdout
        assert "-A POSTROUTING" in rules and "-s 10.244.1.0/24 ! -d 10.244.0.0/16" in rules and "MASQUERADE" in rules
        for sb, _ in pods.values():
            assert _ping(sb, lab.root_address), f"{sb} cannot leave the cluster CIDR"

        # Hairpin on the pod's bridge port.
        out = subprocess.run(["nsenter", f"--net={NETNS_DIR / lab.hosts[0].netns}", "bridge", "-d", "link"],
                             capture_output=True, text=True).stdout
        first_uid = next(iter(pods))
        line = out[out.index(host_veth_name(first_uid)):]
        assert "hairpin on" in line.split("\n", 2)[1]

        # Idempotent: the same address again, and traffic still flows.
        sb0, ip0 = pods[first_uid]

        def veth_index() -> str:
            out = subprocess.run(["nsenter", f"--net={NETNS_DIR / lab.hosts[0].netns}", "ip", "-o", "link", "show",
                                  host_veth_name(first_uid)], capture_output=True, text=True).stdout
            return out.split(":", 1)[0]

        before = veth_index()
        again = await nets["n1"].setup_pod(pod_uid=first_uid, namespace="default", name="p0",
                                           netns_path=str(NETNS_DIR / sb0))
        assert again == ip0 and _ping(lab.hosts[1].netns, ip0)
        assert before and veth_index() == before  # left alone, not re-plumbed

        # Teardown frees the address and the veth; teardown twice is fine.
        await nets["n1"].teardown_pod(pod_uid=first_uid)
        await nets["n1"].teardown_pod(pod_uid=first_uid)
        assert nets["n1"].pod_ip(first_uid) is None
        assert not _ping(lab.hosts[1].netns, ip0)

        # A node leaving takes its route away.
        plan = await nets["n1"].sync_routes({k: v for k, v in routes.items() if k != "10.244.3.0/24"})
        assert plan.delete == ["10.244.3.0/24"]
        _, ip3 = list(pods.values())[2]
        assert not _ping(lab.hosts[0].netns, ip3)
        assert _ping(lab.hosts[1].netns, ip3)  # the others still route to it

        # At start, addresses of pods without a sandbox are released; others are kept.
        n3_uid = list(pods)[2]
        assert await nets["n3"].release_unclaimed(set()) == [n3_uid]
        assert nets["n3"].pod_ip(n3_uid) is None
        assert await nets["n2"].release_unclaimed(set(pods) | {uid_proc}) == []
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for net in nets.values():
            await net.remove()
        for sb in sandboxes:
            subprocess.run(["ip", "netns", "del", sb], capture_output=True)
