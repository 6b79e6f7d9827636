"""Exec sessions over Docker's hijacked HTTP connection, in asyncio.

Owns: `POST /exec/{id}/start` with `Upgrade: tcp` on the daemon's unix socket,
then the raw stream: Docker's stdcopy framing (8-byte header: stream, 0, 0, 0,
big-endian length) unless tty, stdin writes and half-close. The docker SDK's
own exec socket is blocking and hides buffered bytes, so this speaks the
protocol directly. Used by DockerRuntime.exec; errors are runtime errors.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from node_agent.runtime import errors


async def start_exec(runtime: Any, exec_id: str, *, tty: bool) -> DockerExec:
    """Start a created exec and return its stream (runtime: a DockerRuntime)."""
    reader, writer = await asyncio.open_unix_connection(runtime.socket_path)
    body = json.dumps({"Detach": False, "Tty": tty}).encode()
    writer.write(
        f"POST /exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
        f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not (head.startswith(b"HTTP/1.1 101") or head.startswith(b"HTTP/1.1 200")):
        writer.close()
        first = head.split(b"\r\n", 1)[0].decode(errors="replace")
        raise errors.ContainerConfigError(f"exec start: {first}")
    return DockerExec(runtime, exec_id, reader, writer, tty=tty)


class DockerExec:
    """One exec session over Docker's hijacked connection (stdcopy framing unless tty)."""

    def __init__(self, runtime: Any, exec_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tty: bool) -> None:
        self._rt = runtime
        self.exec_id = exec_id
        self._reader = reader
        self._writer = writer
        self._tty = tty

    async def write_stdin(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close_stdin(self) -> None:
        if self._writer.can_write_eof():
            self._writer.write_eof()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        if self._tty:
            while chunk := await self._reader.read(65536):
                yield 1, chunk
            return
        while True:
            try:
                header = await self._reader.readexactly(8)
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                data = await self._reader.readexactly(size) if size else b""
            except asyncio.IncompleteReadError:
                return  # the daemon closed the connection (mid-frame too): the session is over
            yield (2 if stream == 2 else 1), data

    async def resize(self, *, width: int, height: int) -> None:
        await self._rt.exec_resize(self.exec_id, width=width, height=height)

    async def wait(self) -> int:
        for _ in range(100):
            code = await self._rt.exec_exit_code(self.exec_id)
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        return -1

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
