"""`flotilla-proxy`: the service proxy. Not built yet: it arrives with the
services issue (iptables rules for ClusterIPs and NodePorts)."""

import sys


def main() -> None:
    print("flotilla-proxy: the service proxy is not built yet (see the services issue)", file=sys.stderr)
    sys.exit(2)
