"""A tiny multi-host network for the services e2e tests (no node agent, no Docker).

`ServiceNet` builds, with `ip`:
* a switch namespace holding bridge `sw0`;
* host namespaces h1..hN, each with `eth0` on the switch (192.168.77.N/24),
  ip_forward on, a pod bridge `cbr0` (10.244.N.1/24), host-gw routes to the
  other hosts' /24s and a route covering the service CIDR;
* pods: namespaces with a veth on their host's `cbr0` (hairpin on), an IP from
  the host's /24, a default route, a busybox httpd answering its own name on
  :8080 (and optionally a UDP server doing the same), and an optional
  /etc/netns/<pod>/resolv.conf (ip netns exec mounts it).

Everything carries a random suffix; `close()` kills what it started by PID,
deletes every namespace and /etc/netns entry, even after a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    data, addr = s.recvfrom(512)
    s.sendto(sys.argv[3].encode(), addr)
"""

UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[3])))  # a fixed source port: one conntrack entry across runs
s.settimeout(1.0)
s.sendto(b"?", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recvfrom(512)[0].decode())
except OSError as exc:
    print("error", exc)
"""

CLIENT = r"""
import json, sys, time, urllib.request
url, n, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
counts, errors, worst = {}, [], 0.0
for _ in range(n):
    t0 = time.monotonic()
    try:
        body = urllib.request.urlopen(url, timeout=timeout).read().decode().strip()
        counts[body] = counts.get(body, 0) + 1
    except Exception as exc:
        errors.append(repr(exc))
    worst = max(worst, time.monotonic() - t0)
print(json.dumps({"counts": counts, "errors": errors[:5], "n_errors": len(errors), "worst_s": worst}))
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.returncode} {proc.stderr.strip()}")
    return proc


@dataclass
class Pod:
    name: str
    ns: str
    host: int
    ip: str


@dataclass
class ServiceNet:
    hosts: int = 3
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pods: dict[str, Pod] = field(default_factory=dict)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flt-svcnet-")))
    _pod_seq: dict[int, int] = field(default_factory=dict)

    def host_ns(self, n: int) -> str:
        return f"flt-h{n}-{self.tag}"

    @staticmethod
    def host_ip(n: int) -> str:
        return f"192.168.77.{n}"

    def _netns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.ns_exec(name, "ip", "link", "set", "lo", "up")
        return name

    def ns_exec(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *args, check=check)

    def build(self) -> None:
        sw = self._netns(f"flt-sw-{self.tag}")
        self.ns_exec(sw, "ip", "link", "add", "sw0", "type", "bridge")
        self.ns_exec(sw, "ip", "link", "set", "sw0", "up")
        for n in range(1, self.hosts + 1):
            h = self._netns(self.host_ns(n))
            sh("ip", "link", "add", f"fh{n}{self.tag}", "netns", h, "type", "veth", "peer", "name", f"fs{n}{self.tag}",
               "netns", sw)
            self.ns_exec(sw, "ip", "link", "set", f"fs{n}{self.tag}", "master", "sw0", "up")
            self.ns_exec(h, "ip", "link", "set", f"fh{n}{self.tag}", "name", "eth0")
            self.ns_exec(h, "ip", "addr", "add", f"{self.host_ip(n)}/24", "dev", "eth0")
            self.ns_exec(h, "ip", "link", "set", "eth0", "up")
            self.ns_exec(h, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self.ns_exec(h, "ip", "link", "add", "cbr0", "type", "bridge")
            self.ns_exec(h, "ip", "addr", "add", f"10.244.{n}.1/24", "dev", "cbr0")
            self.ns_exec(h, "ip", "link", "set", "cbr0", "up")
            self.ns_exec(h, "ip", "route", "add", "10.96.0.0/12", "dev", "eth0")
            for m in range(1, self.hosts + 1):
                if m != n:
                    self.ns_exec(h, "ip", "route", "add", f"10.244.{m}.0/24", "via", self.host_ip(m))

    def add_pod(self, name: str, host: int, *, resolv_conf: str = "", udp_port: int = 0) -> Pod:
        seq = self._pod_seq.get(host, 1) + 1
        self._pod_seq[host] = seq
        ip = f"10.244.{host}.{seq}"
        ns = self._netns(f"flt-p-{name}-{self.tag}")
        h = self.host_ns(host)
        hv, pv = f"v{host}{seq}{self.tag}", f"p{host}{seq}{self.tag}"
        sh("ip", "link", "add", hv, "netns", h, "type", "veth", "peer", "name", pv, "netns", ns)
        self.ns_exec(h, "ip", "link", "set", hv, "master", "cbr0", "up")
        self.ns_exec(h, "ip", "link", "set", hv, "type", "bridge_slave", "hairpin", "on")
        self.ns_exec(ns, "ip", "link", "set", pv, "name", "eth0")
        self.ns_exec(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        self.ns_exec(ns, "ip", "link", "set", "eth0", "up")
        self.ns_exec(ns, "ip", "route", "add", "default", "via", f"10.244.{host}.1")
        www = self.tmp / name
        www.mkdir()
        (www / "index.html").write_text(name + "\n")
        self.spawn(ns, "busybox", "httpd", "-f", "-p", f"{ip}:8080", "-h", str(www))
        if udp_port:
            server = self.tmp / "udp_server.py"
            server.write_text(UDP_SERVER)
            self.spawn(ns, sys.executable, str(server), ip, str(udp_port), name)
        if resolv_conf:
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(resolv_conf)
        pod = Pod(name, ns, host, ip)
        self.pods[name] = pod
        return pod

    def spawn(self, ns: str, *args: str, log: Path | None = None, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=out, stderr=out,
                                env=env or dict(os.environ))
        self.procs.append(proc)
        return proc

    def fetch(self, ns: str, url: str, n: int, *, timeout_s: float = 2.0) -> dict[str, object]:
        script = self.tmp / "client.py"
        script.write_text(CLIENT)
        out = self.ns_exec(ns, sys.executable, str(script), url, str(n), str(timeout_s)).stdout
        result: dict[str, object] = json.loads(out)
        return result

    def udp_ask(self, ns: str, ip: str, port: int, *, src_port: int) -> str:
        script = self.tmp / "udp_client.py"
        script.write_text(UDP_CLIENT)
        return self.ns_exec(ns, sys.executable, str(script), ip, str(port), str(src_port)).stdout.strip()

    def iptables_save(self, host: int) -> str:
        return self.ns_exec(self.host_ns(host), "iptables-legacy-save").stdout

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
