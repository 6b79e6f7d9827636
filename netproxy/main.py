"""`flotilla-proxy`: the service proxy of one host (see proxy.py), or `--cleanup`.

`--cleanup` removes every Flotilla jump, chain and rule from this host's
iptables (the chosen backend) and prints what it removed; it needs no master.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import socket
import sys

from master.process import until_signalled
from netproxy.errors import BackendConflict, ProxyError
from netproxy.iptables import Iptables, LegacyIptables, flotilla_chains
from netproxy.proxy import ProxyConfig, run
from netproxy.render import render_cleanup


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="flotilla-proxy", description=__doc__.splitlines()[0])
    p.add_argument("--master", default=os.environ.get("FLOTILLA_MASTER", "127.0.0.1:6444"),
                   help="the master's gRPC address (default %(default)s)")
    p.add_argument("--hostname-override", default=socket.gethostname(), help="this host's node name")
    p.add_argument("--healthz-bind-address", default="0.0.0.0:10256", help="/healthz and /metrics")
    p.add_argument("--iptables-backend", choices=("legacy", "nft"), default="legacy",
                   help="legacy (default, chosen for speed: see LAB-NOTES) or nft; never both on one host")
    p.add_argument("--min-sync-period", type=float, default=0.1, help="seconds between syncs at least")
    p.add_argument("--sync-period", type=float, default=300.0, help="seconds between full resyncs")
    p.add_argument("--cluster-cidr", default="", help="pod CIDR; cluster IP traffic from outside it is masqueraded")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="the Service CIDR: must be the apiserver's flag of that name (default %(default)s); "
                        "with --cluster-cidr, connections to it from outside the cluster CIDR are masqueraded")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--cluster-dns", default="", help="the DNS service VIP (10.96.0.10); '' = no DNS")
    p.add_argument("--dns-bind-address", default="", help="ip:port this host's DNS server listens on (default: the Node's InternalIP:53)")
    p.add_argument("--dns-upstream", default="auto", help="resolver for other names (auto: /etc/resolv.conf; '' none)")
    p.add_argument("--cleanup", action="store_true", help="remove every Flotilla chain and rule, then exit")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    for flag, value in (("--cluster-cidr", args.cluster_cidr), ("--service-cluster-ip-range",
                                                                 args.service_cluster_ip_range)):
        if value:
            try:
                ipaddress.IPv4Network(value, strict=False)
            except ValueError:
                p.error(f"{flag} {value!r} is not an IPv4 CIDR (like 10.96.0.0/12)")
    return args


def cleanup(ipt: Iptables) -> list[str]:
    """Remove the jumps, then flush and delete every Flotilla chain; returns what went."""
    removed = [f"jump {j}" for j in ipt.remove_jumps()]
    chains = flotilla_chains(ipt.save())
    if chains:
        ipt.restore(render_cleanup(chains.get("nat", set()), chains.get("filter", set())))
        for table in sorted(chains):
            removed += [f"chain {table}/{c}" for c in sorted(chains[table])]
    return removed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from master.logs import setup_logging  # the shared JSON log format

    setup_logging(level=args.log_level, fmt="json")
    if args.cleanup:
        try:
            removed = cleanup(LegacyIptables(backend=args.iptables_backend))
        except ProxyError as exc:
            print(f"flotilla-proxy --cleanup: {exc}", file=sys.stderr)
            sys.exit(1)
        for line in removed:
            print(f"removed {line}")
        print(f"flotilla-proxy --cleanup: removed {len(removed)} item(s) from iptables-{args.iptables_backend}")
        return
    config = ProxyConfig(
        master=args.master, node_name=args.hostname_override, healthz_bind=args.healthz_bind_address,
        backend=args.iptables_backend, min_sync_interval_s=args.min_sync_period, full_resync_s=args.sync_period,
        cluster_cidr=args.cluster_cidr, service_cidr=args.service_cluster_ip_range,
        cluster_domain=args.cluster_domain, cluster_dns=args.cluster_dns,
        dns_bind=args.dns_bind_address, dns_upstream=args.dns_upstream,
    )

    try:
        asyncio.run(until_signalled(run(config, ready=asyncio.Event()), stopping=""))
    except* BackendConflict as group:
        print(f"flotilla-proxy: {group.exceptions[0]}", file=sys.stderr)
        sys.exit(3)
    except* Exception as group:
        for err in group.exceptions:
            print(f"flotilla-proxy failed: {err!r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
