"""`python -m master.scheduler --master HOST:GRPCPORT`: the scheduler on its own.

Connects to a master's gRPC face and runs `Scheduler` until interrupted,
while it holds the Lease kube-system/flotilla-scheduler (as kube-scheduler
holds kube-system/kube-scheduler): several standalone schedulers against
one cluster elect one, and a standby takes over when the leader dies. Run
the masters with --disable-scheduler then; a scheduler inside
flotilla-master runs behind the master's own lease instead.
`--no-leader-elect` runs it at once, alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from master.client.client import Client
from master.leaderelection import LeaderElectionConfig, LeaderElector, default_identity
from master.logs import setup_logging
from master.process import forever, until_signalled
from master.scheduler.scheduler import Scheduler

LEASE_NAME = "flotilla-scheduler"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m master.scheduler", description="Flotilla's scheduler")
    p.add_argument("--master", required=True, help="the master's gRPC address, HOST:PORT")
    p.add_argument("--seed", type=int, default=None, help="seed for the tie-break (reproducible runs)")
    p.add_argument("--leader-elect", default=True, action=argparse.BooleanOptionalAction,
                   help=f"schedule only while holding the Lease kube-system/{LEASE_NAME} (default on)")
    p.add_argument("--leader-elect-identity", default="", help="this scheduler's holder identity")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument("--log-level", default="info")
    return p


async def amain(args: argparse.Namespace) -> None:
    async with await Client.connect(args.master) as client:

        async def schedule() -> None:
            await forever("scheduler", Scheduler(client, seed=args.seed).run())

        if not args.leader_elect:
            await schedule()
            return
        config = LeaderElectionConfig(
            identity=args.leader_elect_identity or default_identity(),
            name=LEASE_NAME,
            lease_duration_s=args.leader_elect_lease_duration,
            renew_deadline_s=args.leader_elect_renew_deadline,
            retry_period_s=args.leader_elect_retry_period,
        )
        await LeaderElector(client, config).run(schedule)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (0 < args.leader_elect_retry_period < args.leader_elect_renew_deadline < args.leader_elect_lease_duration):
        parser.error("--leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration "
                     "is required")
    setup_logging(level=args.log_level, fmt=args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(until_signalled(amain(args)))  # SIGTERM too: the lease is released on the way out


if __name__ == "__main__":
    main()
