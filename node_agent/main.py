"""`flotilla-agent`: the node agent. Not built yet: it arrives with the
node-agent issue (registration over gRPC, pods in Docker, pod network)."""

import sys


def main() -> None:
    print("flotilla-agent: the node agent is not built yet (see the node-agent issue)", file=sys.stderr)
    sys.exit(2)
