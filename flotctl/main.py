"""`flotctl`: Flotilla's own command line, for what kubectl cannot do.

    flotctl version                 client and server versions
    flotctl config [view|path]      the kubeconfig flotctl and kubectl use
    flotctl etcd status             every etcd member: leader, revision, size, health
    flotctl lab up|down|status      the local lab (etcd + master on this machine)
    flotctl net explain POD IP:PORT the path a connection from POD takes through the service rules
    flotctl explain pod/NAME [-n NS] the scheduler's decision for a pod, node by node

It talks to the master's REST API (the kubeconfig's server) and to etcd's
JSON gateway; it never imports the master's internals.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from flotctl import explain, lab, net

VERSION = "0.1.0"
DEFAULT_KUBECONFIG = Path.home() / ".flotilla" / "kubeconfig"
DEFAULT_ETCD = "127.0.0.1:2379,127.0.0.1:2389,127.0.0.1:2399"


def kubeconfig_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if env:
        return Path(env)
    return DEFAULT_KUBECONFIG


def server_url(path: Path) -> str:
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"flotctl: no kubeconfig at {path}: start a master (`make up`) or pass --kubeconfig") from None
    current = doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts", []) if c["name"] == current), None)
    cluster_name = ctx["cluster"] if ctx else doc["clusters"][0]["name"]
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == cluster_name)
    return str(cluster["server"]).rstrip("/")


def http_json(url: str, *, method: str = "GET", body: dict[str, Any] | None = None, timeout_s: float = 5) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read() or b"null")


def cmd_version(args: argparse.Namespace) -> int:
    print(f"Client Version: flotctl {VERSION}")
    try:
        info = http_json(server_url(kubeconfig_path(args.kubeconfig)) + "/version")
    except (urllib.error.URLError, OSError) as exc:
        print(f"Server Version: unreachable ({exc})")
        return 1
    print(f"Server Version: {info.get('gitVersion')} (Kubernetes API {info.get('major')}.{info.get('minor')})")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    path = kubeconfig_path(args.kubeconfig)
    if args.action == "path":
        print(path)
        return 0
    if not path.exists():
        print(f"flotctl: no kubeconfig at {path}", file=sys.stderr)
        return 1
    print(path.read_text(), end="")
    return 0


def cmd_etcd_status(args: argparse.Namespace) -> int:
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    rows = []
    healthy = 0
    for ep in endpoints:
        try:
            st = http_json(f"http://{ep}/v3/maintenance/status", method="POST", body={}, timeout_s=2)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            rows.append((ep, "-", "-", "-", "-", f"unreachable: {getattr(exc, 'reason', exc)}"))
            continue
        healthy += 1
        header = st.get("header", {})
        role = "leader" if st.get("leader") == header.get("member_id") else "follower"
        rows.append((ep, st.get("version", "?"), role, header.get("revision", "?"),
                     _size(int(st.get("dbSize", 0))), "healthy"))
    widths = [max(len(str(r[i])) for r in rows + [_HEAD]) for i in range(len(_HEAD))]
    for r in [_HEAD] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    quorum = len(endpoints) // 2 + 1
    print(f"\n{healthy}/{len(endpoints)} members healthy; quorum {'held' if healthy >= quorum else 'LOST'} (needs {quorum})")
    return 0 if healthy >= quorum else 1


_HEAD = ("ENDPOINT", "VERSION", "ROLE", "REVISION", "DB SIZE", "HEALTH")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flotctl", description="Flotilla's command line")
    p.add_argument("--kubeconfig", help=f"kubeconfig to use (default $KUBECONFIG or {DEFAULT_KUBECONFIG})")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="client and server versions").set_defaults(fn=cmd_version)
    cfg = sub.add_parser("config", help="show the kubeconfig")
    cfg.add_argument("action", nargs="?", choices=("view", "path"), default="view")
    cfg.set_defaults(fn=cmd_config)
    etcd = sub.add_parser("etcd", help="the etcd cluster")
    etcd_sub = etcd.add_subparsers(dest="etcd_command", required=True)
    st = etcd_sub.add_parser("status", help="status of every member")
    st.add_argument("--etcd-endpoints", default=os.environ.get("FLOTILLA_ETCD", DEFAULT_ETCD))
    st.set_defaults(fn=cmd_etcd_status)
    lab.add_commands(sub)
    explain.add_commands(sub)
    net.add_commands(sub, lambda a: lambda path: http_json(server_url(kubeconfig_path(a.kubeconfig)) + path))
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(args.fn(args))


if __name__ == "__main__":
    main()
