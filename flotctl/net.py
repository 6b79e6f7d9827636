"""`flotctl net explain SRC_POD IP:PORT`: the path a connection takes through the
service rules on SRC_POD's node.

Reads the pod, Services, Endpoints and Nodes over the REST API, turns them into
the proxy's ServicePorts (netproxy.model) and walks the rules with
netproxy.explain: what is printed is rendered from the same state every
flotilla-proxy renders its rules from, not read back from the host's
iptables-save (that needs a shell on the host).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format

from netproxy.explain import Packet, explain_path
from netproxy.model import ServicePort, compute_service_ports
from netproxy.render import ProxyOptions
from protos.core.v1 import core_pb2


def _parse(doc: dict[str, Any], cls: type[Any]) -> Any:
    return json_format.ParseDict(doc, cls(), ignore_unknown_fields=True)


def cmd_explain(args: argparse.Namespace, get: Callable[[str], Any]) -> int:
    dst, _, port_text = args.destination.rpartition(":")
    if not dst or not port_text.isdigit():
        print("flotctl net explain: the destination is IP:PORT", file=sys.stderr)
        return 2
    try:
        pod = _parse(get(f"/api/v1/namespaces/{args.namespace}/pods/{args.pod}"), core_pb2.Pod)
        services = get("/api/v1/services")["items"]
        endpoints = {f"{e['metadata']['namespace']}/{e['metadata']['name']}": e
                     for e in get("/api/v1/endpoints")["items"]}
        nodes = get("/api/v1/nodes")["items"]
    except urllib.error.HTTPError as exc:
        print(f"flotctl net explain: {exc.code} {exc.reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"flotctl net explain: the API server is unreachable ({getattr(exc, 'reason', exc)})", file=sys.stderr)
        return 1
    if not pod.status.pod_ip:
        print(f"flotctl net explain: pod {args.pod} has no IP yet", file=sys.stderr)
        return 1
    ports: list[ServicePort] = []
    for doc in services:
        svc = _parse(doc, core_pb2.Service)
        ep_doc = endpoints.get(f"{svc.metadata.namespace}/{svc.metadata.name}")
        ports += compute_service_ports(svc, _parse(ep_doc, core_pb2.Endpoints) if ep_doc else None)
    addrs = {n["metadata"]["name"]: [a["address"] for a in n.get("status", {}).get("addresses", [])] for n in nodes}
    own = addrs.get(pod.spec.node_name, [""])
    spec: dict[str, Any] = next((n.get("spec", {}) for n in nodes if n["metadata"]["name"] == pod.spec.node_name), {})
    node_cidr = spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), "")  # as the proxy reads it
    options = ProxyOptions(cluster_cidr=args.cluster_cidr, node_cidr=node_cidr, dns_vip=args.cluster_dns,
                           dns_target=f"{own[0]}:53" if own and own[0] else "the node's DNS")
    pkt = Packet(pod.status.pod_ip, pod.spec.node_name, dst, int(port_text), args.protocol.upper())
    for line in explain_path(pkt, ports, node_addresses=addrs, options=options):
        print(line)
    return 0


def add_commands(sub: Any, get_factory: Callable[[argparse.Namespace], Callable[[str], Any]]) -> None:
    net = sub.add_parser("net", help="service networking")
    net_sub = net.add_subparsers(dest="net_command", required=True)
    ex = net_sub.add_parser("explain", help="the path a connection from a pod takes through the service rules")
    ex.add_argument("pod", help="the source pod")
    ex.add_argument("destination", help="IP:PORT (a cluster IP, or a node address and nodePort)")
    ex.add_argument("-n", "--namespace", default="default")
    ex.add_argument("--protocol", default="TCP", choices=("TCP", "UDP", "tcp", "udp"))
    ex.add_argument("--cluster-cidr", default="10.244.0.0/16")
    ex.add_argument("--cluster-dns", default="10.96.0.10")
    ex.set_defaults(fn=lambda a: cmd_explain(a, get_factory(a)))
