"""The real pod network: a Linux bridge per node, a veth per pod, host-gw routes.

Owns (DESIGN 8, LAB-NOTES "Pods"):
* the node's bridge (`flot0` by default) with the gateway address (.1 of the
  node's /24), ip_forward=1 and br_netfilter's bridge-nf-call-iptables=1 in
  the host namespace, and the masquerade rule (masquerade.py);
* per pod: an address from HostLocalIPAM, a veth whose peer is created
  directly in the sandbox's network namespace as eth0 (never moved there
  afterwards, so no window where it sits in the host namespace under a
  colliding name), the pod address on it, lo up, a default route via .1, and
  hairpin mode on the pod's bridge port (a pod reaching itself through a
  Service needs it);
* routes to every other node's /24 via that node's InternalIP (routes.py
  plans them; `sync_routes` applies them), tagged with ROUTE_PROTO so only
  ours are ever removed.

Implements node_agent.network.interface.PodNetwork (written by the pods
side): `setup_pod` / `teardown_pod` are idempotent, `pod_ip` is a cheap
lookup. pyroute2 is synchronous here and runs in a thread, one operation at
a time (a lock), because each namespaced socket forks a helper and its calls
must not interleave.

pyroute2 pitfalls (LAB-NOTES): `IPRoute(netns=...)` creates a namespace on a
typo unless flags=0 and forks a helper per socket — we never use it (see
`_open_iproute`: setns in the worker thread, no fork, and a missing path is
an error); unknown keyword arguments are silently ignored, so hairpin is
`brport('set', mode=1)`.

Must not: create or delete network namespaces (the runtime owns sandboxes,
the lab owns host namespaces), talk to the apiserver (main.py feeds Nodes).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import ipaddress
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError as _PyNetlinkError

from node_agent.network import masquerade as masq
from node_agent.network.errors import NetlinkError, NetworkError
from node_agent.network.ipam import HostLocalIPAM, gateway_ip
from node_agent.network.routes import ROUTE_PROTO, RoutePlan, plan_routes

log = logging.getLogger(__name__)
POD_IFNAME = "eth0"


@dataclass
class BridgeConfig:
    pod_cidr: str  # this node's /24, assigned by the master at registration
    state_dir: Path
    cluster_cidr: str = "10.244.0.0/16"
    bridge_name: str = "flot0"
    mtu: int = 1500
    masquerade: bool = True
    masquerade_chain: str = masq.DEFAULT_CHAIN
    iptables: str = "iptables-legacy"
    # The host namespace, by name under /var/run/netns; None = the agent's own
    # namespace (the normal case: the agent runs inside its host). Tests use it
    # to drive several hosts from one process.
    host_netns: str | None = None


def host_veth_name(pod_uid: str) -> str:
    """Stable, at most 15 characters (IFNAMSIZ - 1), unique per pod uid."""
    return "vf" + hashlib.sha1(pod_uid.encode()).hexdigest()[:11]


class BridgeNetwork:
    """PodNetwork on a Linux bridge. Call `ensure()` once before pods arrive."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        net = ipaddress.ip_network(config.pod_cidr)
        self._prefixlen = net.prefixlen
        self._gateway = gateway_ip(config.pod_cidr)
        self.ipam = HostLocalIPAM(config.state_dir, config.pod_cidr)
        self._lock = asyncio.Lock()

    # ---- the PodNetwork protocol -------------------------------------------------

    async def setup_pod(self, *, pod_uid: str, namespace: str, name: str, netns_path: str) -> str:
        async with self._lock:
            return await asyncio.to_thread(self._setup_pod, pod_uid, netns_path, f"{namespace}/{name}")

    async def teardown_pod(self, *, pod_uid: str) -> None:
        async with self._lock:
            await asyncio.to_thread(self._teardown_pod, pod_uid)

    def pod_ip(self, pod_uid: str) -> str | None:
        return self.ipam.get(pod_uid)

    # ---- node level ---------------------------------------------------------------

    async def ensure(self) -> None:
        """Bridge with the gateway address, sysctls, masquerade (idempotent)."""
        async with self._lock:
            await asyncio.to_thread(self._ensure)

    async def sync_routes(self, desired: Mapping[str, str]) -> RoutePlan:
        """Make our routes equal `desired` (pod CIDR -> node address); returns what changed."""
        async with self._lock:
            return await asyncio.to_thread(self._sync_routes, dict(desired))

    async def release_unclaimed(self, keep_uids: set[str]) -> list[str]:
        """At agent start, before any pod is set up: free the addresses (and veths)
        of pods that have no sandbox any more (removed while the agent was down),
        so a lost teardown never leaks an address. Returns the uids released."""
        async with self._lock:
            gone = [uid for uid in self.ipam.allocations() if uid not in keep_uids]
            for uid in gone:
                await asyncio.to_thread(self._teardown_pod, uid)
            return gone

    async def remove(self) -> None:
        """Delete the bridge, our routes and the masquerade rule (uninstall / tests).
        Pod veths go with their sandboxes' namespaces."""
        async with self._lock:
            await asyncio.to_thread(self._remove)

    # ---- synchronous parts (run in a thread) ----------------------------------------

    @contextmanager
    def _host(self) -> Iterator[IPRoute]:
        ns = self.config.host_netns
        with _open_iproute(f"/var/run/netns/{ns}" if ns else None) as ipr:
            yield ipr

    def _prefix(self) -> list[str]:
        ns = self.config.host_netns
        return ["nsenter", f"--net=/var/run/netns/{ns}"] if ns else []

    def _ensure(self) -> None:
        cfg = self.config
        with self._host() as ipr, _netlink(f"set up bridge {cfg.bridge_name}"):
            found = ipr.link_lookup(ifname=cfg.bridge_name)
            if not found:
                try:
                    ipr.link("add", ifname=cfg.bridge_name, kind="bridge", mtu=cfg.mtu)
                except _PyNetlinkError as exc:
                    if exc.code != errno.EEXIST:
                        raise
                found = ipr.link_lookup(ifname=cfg.bridge_name)
            idx = found[0]
            have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
            if (self._gateway, self._prefixlen) not in have:
                # A bridge left from another CIDR (the node was re-created) loses its old address.
                for addr, plen in have:
                    ipr.addr("del", index=idx, address=addr, prefixlen=plen)
                ipr.addr("add", index=idx, address=self._gateway, prefixlen=self._prefixlen)
            ipr.link("set", index=idx, state="up")
        self._sysctl("net/ipv4/ip_forward", "1")
        if Path("/proc/sys/net/bridge").exists():
            self._sysctl("net/bridge/bridge-nf-call-iptables", "1")
        else:
            log.warning("br_netfilter is not loaded: Service hairpin traffic will not be NATed")
        if cfg.masquerade:
            masq.apply_masquerade(pod_cidr=str(ipaddress.ip_network(cfg.pod_cidr)),
                                        cluster_cidr=cfg.cluster_cidr, chain=cfg.masquerade_chain,
                                        iptables=cfg.iptables, prefix=self._prefix())

    def _sysctl(self, key: str, value: str) -> None:
        if not self.config.host_netns:
            Path("/proc/sys", key).write_text(value + "\n")
            return
        # /proc/sys/net shows the namespace of whoever opens it: write from inside.
        res = subprocess.run([*self._prefix(), "sysctl", "-q", "-w", f"{key.replace('/', '.')}={value}"],
                             capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise NetworkError(f"sysctl {key}={value}: {res.stderr.strip()}")

    def _setup_pod(self, pod_uid: str, netns_path: str, who: str) -> str:
        if not os.path.exists(netns_path):
            raise NetworkError(f"pod {who}: sandbox network namespace {netns_path} does not exist")
        host_ns = f"/var/run/netns/{self.config.host_netns}" if self.config.host_netns else "/proc/self/ns/net"
        if _ns_id(netns_path) == _ns_id(host_ns):
            # A sandbox that has not (yet) got a namespace of its own: plumbing it
            # would put eth0 and a default route into the host itself.
            raise NetworkError(f"pod {who}: {netns_path} is the host's own network namespace, not a sandbox's")
        ip = self.ipam.allocate(pod_uid)
        veth = host_veth_name(pod_uid)
        cfg = self.config
        with self._host() as ipr, _netlink(f"pod {who}: plumb {veth}"):
            bridge = ipr.link_lookup(ifname=cfg.bridge_name)
            if not bridge:
                raise NetworkError(f"bridge {cfg.bridge_name} is missing: ensure() was not run")
            if self._already_plumbed(ipr, veth, bridge[0], netns_path, ip):
                return ip
            for idx in ipr.link_lookup(ifname=veth):
                ipr.link("del", index=idx)
            with _sandbox(netns_path) as sb:
                for idx in sb.link_lookup(ifname=POD_IFNAME):
                    sb.link("del", index=idx)
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                ipr.link("add", ifname=veth, kind="veth", mtu=cfg.mtu,
                         peer={"ifname": POD_IFNAME, "net_ns_fd": fd, "mtu": cfg.mtu})
            finally:
                os.close(fd)
            idx = ipr.link_lookup(ifname=veth)[0]
            ipr.link("set", index=idx, master=bridge[0], state="up")
            ipr.brport("set", index=idx, mode=1)  # hairpin
        with _sandbox(netns_path) as sb, _netlink(f"pod {who}: configure {POD_IFNAME}"):
            eth = sb.link_lookup(ifname=POD_IFNAME)[0]
            sb.addr("add", index=eth, address=ip, prefixlen=self._prefixlen)
            sb.link("set", index=eth, state="up")
            for lo in sb.link_lookup(ifname="lo"):
                sb.link("set", index=lo, state="up")
            sb.route("replace", dst="0.0.0.0/0", gateway=self._gateway)
        log.info("pod network up", extra={"pod": who, "ip": ip, "veth": veth})
        return ip

    def _already_plumbed(self, ipr: IPRoute, veth: str, bridge: int, netns_path: str, ip: str) -> bool:
        """True when the veth exists on our bridge and the sandbox's eth0 carries the address
        (an agent restart re-running setup for a running pod must not cut its traffic)."""
        links = ipr.get_links(*ipr.link_lookup(ifname=veth)) if ipr.link_lookup(ifname=veth) else []
        if not links or links[0].get_attr("IFLA_MASTER") != bridge:
            return False
        with _sandbox(netns_path) as sb:
            eth = sb.link_lookup(ifname=POD_IFNAME)
            if not eth:
                return False
            addrs = {a.get_attr("IFA_ADDRESS") for a in sb.get_addr(index=eth[0], family=2)}
            if ip not in addrs:
                return False
            # The two ends must be one pair: eth0's peer is our host veth.
            peer = sb.get_links(eth[0])[0].get_attr("IFLA_LINK")
            return bool(peer == links[0]["index"])

    def _teardown_pod(self, pod_uid: str) -> None:
        veth = host_veth_name(pod_uid)
        with self._host() as ipr, _netlink(f"remove {veth}"):
            for idx in ipr.link_lookup(ifname=veth):
                try:
                    ipr.link("del", index=idx)  # takes the pod end with it
                except _PyNetlinkError as exc:
                    if exc.code != errno.ENODEV:
                        raise
        released = self.ipam.release(pod_uid)
        if released:
            log.info("pod network down", extra={"pod_uid": pod_uid, "ip": released})

    def _current_routes(self, ipr: IPRoute) -> dict[str, str]:
        current: dict[str, str] = {}
        for r in ipr.get_routes(family=2, table=254):
            if r["proto"] != ROUTE_PROTO:
                continue
            dst = r.get_attr("RTA_DST")
            gw = r.get_attr("RTA_GATEWAY")
            if dst and gw:
                current[f"{dst}/{r['dst_len']}"] = gw
        return current

    def _sync_routes(self, desired: dict[str, str]) -> RoutePlan:
        own = ipaddress.ip_network(self.config.pod_cidr)
        desired = {c: g for c, g in desired.items() if ipaddress.ip_network(c) != own}
        with self._host() as ipr, _netlink("sync routes"):
            plan = plan_routes(desired, self._current_routes(ipr))
            for cidr in plan.delete:
                try:
                    ipr.route("del", dst=cidr, proto=ROUTE_PROTO)
                except _PyNetlinkError as exc:
                    if exc.code != errno.ESRCH:
                        raise
            for cidr, gw in plan.add.items():
                ipr.route("replace", dst=cidr, gateway=gw, proto=ROUTE_PROTO)
        if not plan.empty:
            log.info("pod routes", extra={"add": plan.add, "delete": plan.delete})
        return plan

    def _remove(self) -> None:
        self._sync_routes({})
        with self._host() as ipr, _netlink(f"remove bridge {self.config.bridge_name}"):
            for idx in ipr.link_lookup(ifname=self.config.bridge_name):
                ipr.link("del", index=idx)
        if self.config.masquerade:
            masq.remove_masquerade(chain=self.config.masquerade_chain, iptables=self.config.iptables,
                                         prefix=self._prefix())


def _ns_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetlinkError(f"setns {what}: {os.strerror(err)}")


@contextmanager
def _open_iproute(netns_path: str | None) -> Iterator[IPRoute]:
    """A netlink socket in `netns_path` (None: the agent's own namespace).

    Why not `IPRoute(netns=...)`: pyroute2 forks a helper process for it, and
    a fork of the agent copies its asyncio signal wakeup fd and gRPC threads —
    a signal the helper gets lands in the agent's loop as the agent's own
    SIGTERM. Instead this thread enters the namespace (setns is per thread),
    opens the socket there (a socket keeps the namespace it was made in) and
    comes straight back; nothing forks."""
    if netns_path is None:
        with _netlink("open netlink"):
            ipr = IPRoute()
    else:
        with _netlink(f"open {netns_path}"):
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                target = os.open(netns_path, os.O_RDONLY)
                try:
                    _setns(target, f"into {netns_path}")
                    try:
                        ipr = IPRoute()
                    finally:
                        # Back home before anything else runs on this pool thread.
                        _setns(own, "back to the agent's namespace")
                finally:
                    os.close(target)
            finally:
                os.close(own)
    try:
        yield ipr
    finally:
        ipr.close()


def _sandbox(netns_path: str) -> Any:
    return _open_iproute(netns_path)


@contextmanager
def _netlink(what: str) -> Iterator[None]:
    """Translate pyroute2's errors once, here (STYLE "Errors")."""
    try:
        yield
    except _PyNetlinkError as exc:
        raise NetlinkError(f"{what}: {exc}") from exc
    except OSError as exc:
        raise NetlinkError(f"{what}: {exc}") from exc

