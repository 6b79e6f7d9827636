"""Several hosts on one machine: network namespaces on a shared switch (DESIGN 10).

Owns the lab's L2 topology and nothing above it:
* a switch namespace `<lab>-sw` holding the bridge `br0` (in a namespace of
  its own, not the root one: dockerd's FORWARD DROP and br_netfilter would
  drop bridged frames there — LAB-NOTES);
* one namespace per host (`<lab>-<host>`), its `eth0` a veth into the switch,
  an address on the lab subnet, lo up, ip_forward=1 (a new namespace does not
  inherit it reliably — LAB-NOTES), and a route for the service CIDR on eth0
  (ClusterIPs need a route before DNAT);
* a leg from the root namespace into the switch (`<lab-id>r`, the subnet's
  .254), so kubectl and flotctl in the machine's shell reach the master's
  address on the lab subnet.

`plan_lab_hosts` is pure (names and addresses); `create_lab_net` /
`destroy_lab_net` do the netlink work with pyroute2. Namespaces are made
with `ip netns add` (the bind mount under /var/run/netns is what nsenter
and `ip netns` users expect); pyroute2 sockets always pass flags=0 so a
typo never creates a namespace (LAB-NOTES).

Must not: start processes (deploy/lab.py does), touch pod networking
(node_agent/network does that inside each host).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

NETNS_DIR = Path("/var/run/netns")


@dataclass(frozen=True)
class LabHost:
    name: str  # the host's name (node name for agents, "master" for the control plane)
    netns: str  # namespace name under /var/run/netns
    address: str  # on the lab subnet
    switch_port: str  # the veth end in the switch namespace


@dataclass(frozen=True)
class LabNetPlan:
    lab_id: str
    subnet: str
    switch_netns: str
    root_leg: str
    root_address: str
    hosts: tuple[LabHost, ...]
    service_cidr: str = "10.96.0.0/12"

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)


def plan_lab_hosts(lab_id: str, host_names: list[str], *, subnet: str = "172.28.0.0/24") -> LabNetPlan:
    """Names and addresses: host i gets the subnet's .(10+i), the root leg .254.
    `lab_id` keeps a test lab apart from a developer's (<= 8 characters: it goes
    into interface names, limited to 15)."""
    if not lab_id or len(lab_id) > 8 or not lab_id.replace("-", "").isalnum():
        raise ValueError(f"lab id {lab_id!r}: 1-8 letters, digits or '-'")
    net = ipaddress.ip_network(subnet)
    if net.num_addresses < 256:
        raise ValueError(f"lab subnet {subnet}: use a /24 or larger")
    base = int(net.network_address)
    hosts = tuple(
        LabHost(name=h, netns=f"{lab_id}-{h}", address=str(ipaddress.ip_address(base + 10 + i)),
                switch_port=f"p{i}-{lab_id}"[:15])
        for i, h in enumerate(host_names)
    )
    return LabNetPlan(lab_id=lab_id, subnet=str(net), switch_netns=f"{lab_id}-sw", root_leg=f"{lab_id}r"[:15],
                      root_address=str(ipaddress.ip_address(base + 254)), hosts=hosts)


def _netns_add(name: str) -> None:
    if not (NETNS_DIR / name).exists():
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)


def _netns_del(name: str) -> bool:
    if not (NETNS_DIR / name).exists():
        return False
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    return True


def _sysctl_in(netns: str, key: str, value: str) -> None:
    subprocess.run(["nsenter", f"--net={NETNS_DIR / netns}", "sysctl", "-q", "-w", f"{key}={value}"],
                   check=True, capture_output=True)


def _up_lo(ipr: IPRoute) -> None:
    for idx in ipr.link_lookup(ifname="lo"):
        ipr.link("set", index=idx, state="up")


def create_lab_net(plan: LabNetPlan) -> None:
    """Build the switch, every host and the root leg (idempotent per piece)."""
    _netns_add(plan.switch_netns)
    with IPRoute(netns=plan.switch_netns, flags=0) as sw:
        if not sw.link_lookup(ifname="br0"):
            sw.link("add", ifname="br0", kind="bridge")
        br = sw.link_lookup(ifname="br0")[0]
        sw.link("set", index=br, state="up")
        _up_lo(sw)
    for host in plan.hosts:
        _create_host(plan, host)
    _create_root_leg(plan)


def _attach(plan: LabNetPlan, port: str) -> None:
    with IPRoute(netns=plan.switch_netns, flags=0) as sw:
        br = sw.link_lookup(ifname="br0")[0]
        idx = sw.link_lookup(ifname=port)[0]
        sw.link("set", index=idx, master=br, state="up")


def _create_host(plan: LabNetPlan, host: LabHost) -> None:
    _netns_add(host.netns)
    with IPRoute(netns=plan.switch_netns, flags=0) as sw:
        exists = bool(sw.link_lookup(ifname=host.switch_port))
        if not exists:
            fd = os.open(NETNS_DIR / host.netns, os.O_RDONLY)
            try:
                sw.link("add", ifname=host.switch_port, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
            finally:
                os.close(fd)
    _attach(plan, host.switch_port)
    with IPRoute(netns=host.netns, flags=0) as h:
        eth = h.link_lookup(ifname="eth0")[0]
        have = {a.get_attr("IFA_ADDRESS") for a in h.get_addr(index=eth, family=2)}
        if host.address not in have:
            h.addr("add", index=eth, address=host.address, prefixlen=plan.prefixlen)
        h.link("set", index=eth, state="up")
        _up_lo(h)
        # A host namespace has no default route, and a ClusterIP needs some route
        # before NAT can rewrite it (ENETUNREACH otherwise — LAB-NOTES).
        h.route("replace", dst=plan.service_cidr, oif=eth)
    _sysctl_in(host.netns, "net.ipv4.ip_forward", "1")


def _create_root_leg(plan: LabNetPlan) -> None:
    with IPRoute() as root:
        if not root.link_lookup(ifname=plan.root_leg):
            fd = os.open(NETNS_DIR / plan.switch_netns, os.O_RDONLY)
            try:
                root.link("add", ifname=plan.root_leg, kind="veth",
                          peer={"ifname": f"{plan.root_leg}s"[:15], "net_ns_fd": fd})
            finally:
                os.close(fd)
        idx = root.link_lookup(ifname=plan.root_leg)[0]
        have = {a.get_attr("IFA_ADDRESS") for a in root.get_addr(index=idx, family=2)}
        if plan.root_address not in have:
            root.addr("add", index=idx, address=plan.root_address, prefixlen=plan.prefixlen)
        root.link("set", index=idx, state="up")
    _attach(plan, f"{plan.root_leg}s"[:15])


def destroy_lab_net(plan: LabNetPlan) -> list[str]:
    """Remove every namespace and the root leg; returns what was removed."""
    removed: list[str] = []
    with IPRoute() as root:
        for idx in root.link_lookup(ifname=plan.root_leg):
            root.link("del", index=idx)
            removed.append(f"veth {plan.root_leg}")
    for host in plan.hosts:
        if _netns_del(host.netns):
            removed.append(f"netns {host.netns}")
    if _netns_del(plan.switch_netns):
        removed.append(f"netns {plan.switch_netns} (bridge br0)")
    return removed


def netns_exec(netns: str, *cmd: str) -> list[str]:
    """A command line run inside a host namespace. nsenter, not `ip netns exec`:
    the latter remounts /sys and hides cgroup v1 mounts (LAB-NOTES)."""
    return ["nsenter", f"--net={NETNS_DIR / netns}", *cmd]
