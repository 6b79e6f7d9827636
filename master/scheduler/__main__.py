"""`python -m master.scheduler --master HOST:GRPCPORT`: the scheduler on its own.

Connects to a master's gRPC face and runs `Scheduler` until interrupted;
the same component flotilla-master runs in-process behind leader election.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from master.client.client import Client
from master.logs import setup_logging
from master.scheduler.scheduler import Scheduler


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m master.scheduler", description="Flotilla's scheduler")
    p.add_argument("--master", required=True, help="the master's gRPC address, HOST:PORT")
    p.add_argument("--seed", type=int, default=None, help="seed for the tie-break (reproducible runs)")
    p.add_argument("--log-format", choices=("json", "text"), default="json")
    p.add_argument("--log-level", default="info")
    return p


async def amain(args: argparse.Namespace) -> None:
    async with await Client.connect(args.master) as client:
        await Scheduler(client, seed=args.seed).run()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(level=args.log_level, fmt=args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(amain(args))


if __name__ == "__main__":
    main()
