"""`flotctl lab`: the local lab on this machine (deploy/lab.py does the work).

`lab up --nodes N` starts the three-member etcd and the master, then N hosts
(network namespaces on a shared switch) each running a `flotilla-agent`
against the machine's dockerd; `--nodes 0` is the control plane alone.
`lab status` shows hosts, processes and health; `lab down` removes every
process, container, namespace, bridge, veth and rule the lab made and says
what it removed.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from deploy import lab

LAB_DIR = Path(os.environ.get("FLOTILLA_LAB_DIR", str(Path.home() / ".flotilla" / "lab")))
ETCD_BASE_PORT = 2379


def add_commands(sub: Any) -> None:
    p = sub.add_parser("lab", help="the local lab (etcd, master, hosts with agents on this machine)")
    lab_sub = p.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start etcd, the master and N hosts with agents")
    up.add_argument("--nodes", type=int, default=3, help="hosts with an agent (0: control plane only)")
    up.add_argument("--lab-id", default="flot",
                    help="prefix of every namespace and interface (<= 8 characters; unique per lab)")
    up.add_argument("--subnet", default="172.28.0.0/24", help="the hosts' network (a /24)")
    up.add_argument("--node-prefix", default="node", help="node names are <prefix>1..N")
    up.add_argument("--runtime", choices=("docker", "fake"), default="docker")
    up.add_argument("--rest-port", type=int, default=6443)
    up.add_argument("--grpc-port", type=int, default=6444)
    up.add_argument("--etcd-base-port", type=int, default=ETCD_BASE_PORT,
                    help="first etcd client port; members use base, base+10, base+20")
    up.add_argument("--proxy", choices=("auto", "on", "off"), default="auto",
                    help="a flotilla-proxy per host (auto: when the proxy is built)")
    up.add_argument("--ready-timeout-s", type=float, default=90.0)
    up.add_argument("--demo", default="", metavar="MANIFEST",
                    help="create the objects of this manifest once the hosts are Ready (make up: deploy/demo.yaml)")
    up.add_argument("--heartbeat-period-s", type=int, default=10, help="agents renew their lease this often")
    up.add_argument("--node-grace-s", type=int, default=20,
                    help="a host silent this long is Ready=Unknown and tainted unreachable")
    up.add_argument("--eviction-s", type=int, default=30,
                    help="pods leave an unreachable host after this many seconds (default tolerationSeconds)")
    up.set_defaults(fn=cmd_up)
    lab_sub.add_parser("down", help="remove everything the lab made").set_defaults(fn=cmd_down)
    lab_sub.add_parser("status", help="hosts, processes and health").set_defaults(fn=cmd_status)


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    cfg = lab.LabConfig(lab_dir=LAB_DIR, nodes=args.nodes, lab_id=args.lab_id, subnet=args.subnet,
                        node_prefix=args.node_prefix, rest_port=args.rest_port, grpc_port=args.grpc_port,
                        etcd_base_port=args.etcd_base_port, runtime=args.runtime,
                        ready_timeout_s=args.ready_timeout_s, proxy=args.proxy,
                        heartbeat_period_s=args.heartbeat_period_s, node_grace_period_s=args.node_grace_s,
                        default_toleration_seconds=args.eviction_s, demo=args.demo)
    return lab.up(cfg, _step)


def cmd_down(_: argparse.Namespace) -> int:
    return lab.down(LAB_DIR, _step)


def cmd_status(_: argparse.Namespace) -> int:
    return lab.status(LAB_DIR, _step)
