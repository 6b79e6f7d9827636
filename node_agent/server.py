"""The agent's HTTP faces: read-only (10255: /healthz, /spec, /pods) and the
authenticated one (10250: container logs and exec), both aiohttp.

Owns: kubelet-shaped paths and answers: `GET /containerLogs/{ns}/{pod}/{container}`
(follow, tailLines, previous, timestamps, sinceSeconds, limitBytes; chunked
text/plain) and `GET /exec/{ns}/{pod}/{container}?command=...` upgraded to a
WebSocket speaking v5.channel.k8s.io or v4.channel.k8s.io (first byte of each
binary message = channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize;
v5's 255 closes a channel), ending with a Status on channel 3 and a close frame.
Errors before an upgrade are Kubernetes Status bodies.
Must not: decide anything about pods (PodManager) or know Docker (the runtime does).
Authentication on 10250 is still to come (DESIGN "Still to come": TLS, node identities).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from node_agent.pods.actions import instances_by_name
from node_agent.pods.manager import PodManager
from node_agent.runtime import errors
from node_agent.runtime.interface import LABEL_NODE, LABEL_POD_UID, ContainerRuntime, ContainerState
from protos import codec

log = logging.getLogger(__name__)
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status_body(code, reason, message), status=code)


def runtime_error_response(exc: errors.RuntimeError_) -> web.Response:
    """Docker could not answer (or the container went away meanwhile): a Status, not a bare 500."""
    if isinstance(exc, errors.NotFound):
        return status_response(404, "NotFound", str(exc))
    return status_response(500, "InternalError", f"container runtime: {exc}")


def go_bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "t", "true", "y", "yes")


def machine_info() -> dict[str, Any]:
    mem = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError:
            return ""
    return {"num_cores": os.cpu_count() or 1, "memory_capacity": mem, "machine_id": read("/etc/machine-id"),
            "boot_id": read("/proc/sys/kernel/random/boot_id"), "kernel_version": os.uname().release}


class AgentServer:
    def __init__(self, manager: PodManager, runtime: ContainerRuntime, *, host: str = "0.0.0.0",
                 port: int = 10250, read_only_port: int = 10255) -> None:
        self.manager = manager
        self.runtime = runtime
        self.host = host
        self.port = port
        self.read_only_port = read_only_port
        self.bound: dict[str, int] = {}

    # ----------------------------------------------------------------- lifecycle
    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        runners = []
        try:
            for name, app, port in (("read_only", self.read_only_app(), self.read_only_port),
                                    ("main", self.main_app(), self.port)):
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                runners.append(runner)
                site = web.TCPSite(runner, self.host, port)
                await site.start()
                server = site._server
                sockets = getattr(server, "sockets", None) or []
                self.bound[name] = sockets[0].getsockname()[1] if sockets else port
            if ready is not None:
                ready.set()
            await asyncio.Event().wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    def read_only_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/spec", self.spec)
        app.router.add_get("/spec/", self.spec)
        app.router.add_get("/pods", self.pods)
        app.router.add_get("/pods/", self.pods)
        return app

    def main_app(self) -> web.Application:
        app = self.read_only_app()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self.exec)
        return app

    # --------------------------------------------------------------- read-only
    async def healthz(self, _: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def spec(self, _: web.Request) -> web.StreamResponse:
        return web.json_response(machine_info())

    async def pods(self, _: web.Request) -> web.StreamResponse:
        items = []
        for p in self.manager.pods():
            d = codec.to_dict(p)
            d.setdefault("apiVersion", "v1")
            d.setdefault("kind", "Pod")
            items.append(d)
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    # ----------------------------------------------------------------- helpers
    async def _container_id(self, namespace: str, pod_name: str, container: str, *, previous: bool) -> str:
        worker = self.manager.worker(namespace, pod_name)
        if worker is None:
            raise LookupError(404, "NotFound", f'pods "{pod_name}" not found')
        names = [c.name for c in list(worker.pod.spec.containers) + list(worker.pod.spec.init_containers)]
        if container not in names:
            raise LookupError(400, "BadRequest", f"container {container} is not valid for pod {pod_name}")
        found = await self.runtime.list_containers({LABEL_POD_UID: worker.uid, LABEL_NODE: self.manager.node_name})
        items = instances_by_name(tuple(found)).get(container, [])
        index = 1 if previous else 0
        if len(items) <= index:
            if previous:
                raise LookupError(400, "BadRequest",
                                  f'previous terminated container "{container}" in pod "{pod_name}" not found')
            reason = "ContainerCreating"
            if worker.status is not None:
                for cs in list(worker.status.container_statuses) + list(worker.status.init_container_statuses):
                    if cs.name == container and cs.state.waiting.reason:
                        reason = cs.state.waiting.reason
            raise LookupError(400, "BadRequest",
                              f'container "{container}" in pod "{pod_name}" is waiting to start: {reason}')
        return items[index].id

    # -------------------------------------------------------------------- logs
    async def logs(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            tail = int(q["tailLines"]) if q.get("tailLines") else None
            since_s = int(q["sinceSeconds"]) if q.get("sinceSeconds") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        except ValueError:
            return status_response(400, "BadRequest", "tailLines, sinceSeconds and limitBytes must be integers")
        try:
            cid = await self._container_id(ns, pod, container, previous=go_bool(q.get("previous")))
        except LookupError as exc:
            code, reason, message = exc.args
            return status_response(code, reason, message)
        except errors.RuntimeError_ as exc:
            return runtime_error_response(exc)
        since = datetime.now(UTC) - timedelta(seconds=since_s) if since_s else None
        follow = go_bool(q.get("follow"))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        stream = self.runtime.container_logs(cid, follow=follow, tail_lines=tail, since=since,
                                             timestamps=go_bool(q.get("timestamps")))
        try:
            async for chunk in stream:
                if limit is not None:
                    chunk = chunk[: max(0, limit - sent)]
                sent += len(chunk)
                await resp.write(chunk)
                if limit is not None and sent >= limit:
                    break
        except (ConnectionResetError, errors.RuntimeError_) as exc:
            log.info("logs of %s/%s/%s ended: %s", ns, pod, container, exc)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    # -------------------------------------------------------------------- exec
    async def exec(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        command = q.getall("command", [])
        if not command:
            return status_response(400, "BadRequest", "you must specify at least 1 command")
        # The pod and container first, the upgrade last: the apiserver's proxy asks
        # again without upgrading to learn why a handshake was refused.
        try:
            cid = await self._container_id(ns, pod, container, previous=False)
            st = await self.runtime.container_status(cid)
        except LookupError as exc:
            code, reason, message = exc.args
            return status_response(code, reason, message)
        except errors.RuntimeError_ as exc:
            return runtime_error_response(exc)
        if st.state != ContainerState.RUNNING:
            return status_response(400, "BadRequest", f"container {container} is not running")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return status_response(400, "BadRequest",
                                   "exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)")
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoclose=False, max_msg_size=0)
        await ws.prepare(request)
        stdin, tty = go_bool(q.get("stdin")), go_bool(q.get("tty"))
        await serve_exec(ws, self.runtime, cid, command, stdin=stdin, tty=tty)
        return ws


async def serve_exec(ws: web.WebSocketResponse, runtime: ContainerRuntime, cid: str, command: list[str], *,
                     stdin: bool, tty: bool) -> None:
    """Run one exec session over an accepted channel WebSocket, then close it."""
    try:
        stream = await runtime.exec(cid, command, stdin=stdin, tty=tty)
    except errors.RuntimeError_ as exc:
        await _finish(ws, {"metadata": {}, "status": "Failure", "message": str(exc), "reason": "InternalError"})
        return

    async def pump_in() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and msg.data:
                data: bytes = msg.data
                ch = data[0]
                if ch == STDIN and len(data) > 1:
                    await stream.write_stdin(data[1:])
                elif ch == CLOSE and data[1:2] == bytes([STDIN]):
                    await stream.close_stdin()
                elif ch == RESIZE:
                    with contextlib.suppress(ValueError, KeyError, errors.RuntimeError_):
                        size = json.loads(data[1:])
                        await stream.resize(width=int(size["Width"]), height=int(size["Height"]))
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        with contextlib.suppress(Exception):
            await stream.close_stdin()

    reader = asyncio.create_task(pump_in())
    try:
        async for ch, data in stream.output():
            if ws.closed:
                break
            await ws.send_bytes(bytes([ch]) + data)
        code = await stream.wait()
    except (ConnectionResetError, errors.RuntimeError_) as exc:
        log.info("exec in %s ended: %s", cid[:12], exc)
        code = -1
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
        await stream.close()
    if code == 0:
        body: dict[str, Any] = {"metadata": {}, "status": "Success"}
    else:
        body = {"metadata": {}, "status": "Failure",
                "message": f"command terminated with non-zero exit code: error executing command {command}, "
                           f"exit code {code}",
                "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
    await _finish(ws, body)


async def _finish(ws: web.WebSocketResponse, body: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        if not ws.closed:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(body).encode())
            await ws.close()


async def serve(*, manager: PodManager, runtime: ContainerRuntime, node_name: str = "", host: str = "0.0.0.0",
                read_only_port: int = 10255, port: int = 10250, ready: asyncio.Event | None = None) -> None:
    """Run both agent HTTP servers until cancelled (what node_agent.main composes)."""
    del node_name  # the manager knows its node; kept for the caller's signature
    await AgentServer(manager, runtime, host=host, port=port, read_only_port=read_only_port).run(ready=ready)
