"""The floor under any Python apiserver's write path: a relay that does nothing else.

bench/api.py starts it as a subprocess beside the master, with the same
stack the master's write path stands on (Python, grpc.aio for the face,
aetcd's stubs on a round-robin channel for etcd). Each unary call
`/flotilla.bench.Relay/Put` carries the bytes of a stored pod; the relay
sends them to etcd as one Put under a key of its own and answers an empty
message. No decoding, admission, watch or metrics: whatever an apiserver
adds costs more than this, so the relay's Puts/s, beside raw Puts/s in the
same run, bounds what the master's creates/s can reach on this machine.

    python bench/relay.py --etcd TARGET --key-prefix /bench-raw/relay

prints the port it listens on (127.0.0.1, chosen by the kernel) on its
first line once it serves, and runs until SIGTERM or, when its standard
input is a pipe, until that closes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import stat
import sys

import grpc
from aetcd import rpc

METHOD = "/flotilla.bench.Relay/Put"


async def serve(target: str, key_prefix: str) -> None:
    channel = grpc.aio.insecure_channel(target, options=[("grpc.lb_policy_name", "round_robin")])
    kv = rpc.KVStub(channel)
    numbers = itertools.count()

    async def put(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        key = f"{key_prefix}/{next(numbers)}".encode()
        await kv.Put(rpc.PutRequest(key=key, value=request))
        return b""

    service, method = METHOD.strip("/").split("/")
    handler = grpc.method_handlers_generic_handler(service, {method: grpc.unary_unary_rpc_method_handler(put)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # When standard input is the parent's pipe, its end (the bench died, even
    # by SIGKILL) stops the relay too, so no relay outlives its bench.
    orphaned: asyncio.Future[bytes] = loop.create_future()
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        orphaned = asyncio.ensure_future(stdin.read())
        orphaned.add_done_callback(lambda _: stop.set())
    print(port, flush=True)
    try:
        await stop.wait()
    finally:
        orphaned.cancel()
        await server.stop(grace=None)
        await channel.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--etcd", required=True, metavar="TARGET", help="gRPC target listing every etcd member")
    p.add_argument("--key-prefix", required=True, help="where the Puts go (outside the master's prefix)")
    args = p.parse_args(argv)
    asyncio.run(serve(args.etcd, args.key_prefix))


if __name__ == "__main__":
    main()
