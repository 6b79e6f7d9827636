"""Watch streams over HTTP (KUBECTL.md §1.6).

One JSON document per event followed by a newline, in a chunked 200
response: `{"type":"ADDED","object":{...}}`. Table watches (kubectl get -w)
send a one-row Table as the object. The object bytes come from the shared
StoredObject, encoded once however many clients watch it.

The stream ends when timeoutSeconds pass, when the client goes away (the
handler is cancelled), or when the cache closes the watcher (too slow, or a
re-list); the client then resumes from the last resourceVersion it saw.

Events are written by the watch cache's flush through a sink, one HTTP
chunk per batch straight to the socket, so the handler task sleeps through
the stream and wakes only to apply backpressure (the client stopped
reading), to send a bookmark, or at the end.
A start version that is too old is answered in-stream with an ERROR event
carrying a 410 Status, as the Go apiserver does.
"""

from __future__ import annotations

import asyncio
import json
import random

from aiohttp import web

from master.apiserver import errors, tables
from master.apiserver.objects import StoredObject
from master.apiserver.registry import Registry, parse_resource_version
from master.apiserver.rest import query as q
from master.apiserver.rest import responses as out
from master.apiserver.rest.handlers import make_filter
from master.apiserver.rest.paths import Route
from master.apiserver.watchfanout import BOOKMARK_EVERY_S

# Without timeoutSeconds the Go apiserver picks 30-60 minutes at random.
DEFAULT_TIMEOUT_RANGE_S = (1800, 3600)
# Past this many bytes waiting in the socket's buffer, flushed events stay
# in the watcher's bounded queue instead (a slow client cannot grow memory).
SINK_HIGH_WATER = 256 * 1024
BACKPRESSURE_POLL_S = 0.02
CHUNK_MEMO_MAX = 1 << 20  # a larger batch (a replay) is framed per watcher, never kept


async def serve_watch(request: web.Request, route: Route, registry: Registry) -> web.StreamResponse:
    info = route.info
    query = request.query
    flt = make_filter(info, route.namespace, query)
    if route.name:
        # GET .../pods/NAME?watch=true: the legacy single-object watch.
        flt = type(flt)(namespace=route.namespace, name=route.name, labels=flt.labels, fields=flt.fields)
    rv_text = query.get("resourceVersion", "")
    if rv_text:
        parse_resource_version(rv_text)
    timeout = q.go_int(query, "timeoutSeconds")
    if timeout is None or timeout == 0:
        timeout = random.randint(*DEFAULT_TIMEOUT_RANGE_S)
    bookmarks = q.go_bool(query, "allowWatchBookmarks")
    as_table = out.wants_table(request.headers.get("Accept", ""))
    include = out.include_object(query) if as_table else "Metadata"

    resp = web.StreamResponse(status=200)
    resp.content_type = "application/json"
    if as_table:
        resp.headers["Content-Type"] = out.TABLE_CT
    resp.enable_chunked_encoding()

    try:
        watcher = registry.watch(info, flt, resource_version=rv_text)
    except errors.APIError as exc:
        if exc.code != 410:
            raise
        await resp.prepare(request)
        await resp.write(_line("ERROR", json.dumps(exc.to_status(), separators=(",", ":")).encode()))
        await resp.write_eof()
        return resp

    def encode(type_: str, obj: StoredObject) -> bytes:
        if not as_table:
            return obj.watch_line(type_)
        table = tables.one_row_table(info.resource, info.group, obj.as_dict(), resource_version=str(obj.rv),
                                     include_object=include, now=registry.now())
        return _line(type_, json.dumps(table, separators=(",", ":")).encode())

    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_rv = 0
    transport = request.transport

    def sink(lines: bytes, rv: int) -> bool:
        """Writes a flushed batch straight to the socket as one HTTP chunk.

        Refuses (the handler below then writes with backpressure) when the
        client is not keeping up or the connection is going away.
        """
        nonlocal last_rv
        if transport is None or transport.is_closing() or transport.get_write_buffer_size() > SINK_HIGH_WATER:
            return False
        transport.write(_chunk(lines))
        last_rv = rv
        return True

    try:
        if not as_table:  # a Table row is made per watcher: those take the path below
            watcher.attach_sink(sink)
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            # Wakes only when the sink refused a batch (or there is none),
            # the watcher closed, or a bookmark is due: not once per event.
            try:
                queued = await asyncio.wait_for(watcher.wait(), min(left, BOOKMARK_EVERY_S))
            except TimeoutError:
                if transport is None or transport.is_closing():
                    break
                if bookmarks and loop.time() < deadline:
                    rv = max(last_rv, registry.caches[info].rv)
                    await resp.write(_line("BOOKMARK", _bookmark(info.api_version, info.kind, rv)))
                continue
            if not queued:
                break
            # The client is behind: let its socket drain (events meanwhile
            # wait in the bounded queue), then write everything queued in
            # one chunk. Every write takes the whole queue, so the sink and
            # this path never reorder events.
            while (transport is not None and not transport.is_closing()
                   and transport.get_write_buffer_size() > SINK_HIGH_WATER and loop.time() < deadline):
                await asyncio.sleep(BACKPRESSURE_POLL_S)
            batch = watcher.drain()
            if not batch:
                continue
            chunk = b"".join([encode(t, o) for t, o in batch])
            last_rv = batch[-1][1].rv
            await resp.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        watcher.stop()
        raise
    finally:
        watcher.stop()
    try:
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp


_last_chunk: tuple[bytes, bytes] = (b"", b"")


def _chunk(lines: bytes) -> bytes:
    """One HTTP/1.1 chunk. Watchers of one group get the same `lines` object
    per flush, so the framed copy is made once per flush, not per watcher."""
    global _last_chunk
    if _last_chunk[0] is lines:
        return _last_chunk[1]
    framed = b"%x\r\n%b\r\n" % (len(lines), lines)
    _last_chunk = (lines, framed) if len(lines) <= CHUNK_MEMO_MAX else (b"", b"")
    return framed


def _line(type_: str, obj_json: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + obj_json + b"}\n"


def _bookmark(api_version: str, kind: str, rv: int) -> bytes:
    return json.dumps(
        {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(rv)}},
        separators=(",", ":"),
    ).encode()
