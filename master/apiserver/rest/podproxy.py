"""pods/NAME/log and pods/NAME/exec: the apiserver's proxy to the node agent.

Owns: finding the agent of a pod's node (the Node's InternalIP and
status.daemonEndpoints.kubeletEndpoint.Port, default 10250), checking the
container name the way Kubernetes does, and relaying: logs as chunked
text/plain (`kubectl logs -f` reads it line by line), exec as a WebSocket
relay of the v5/v4.channel.k8s.io frames in both directions (the agent does
the framing; this side only copies messages and closes when the agent does).
Must not: read Docker or the agent's internals; it speaks only the agent's
HTTP API (node_agent.server). Errors before the upgrade are Status bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from master.apiserver import errors
from master.apiserver.registry import Registry, resource_info
from master.apiserver.rest.paths import Route

log = logging.getLogger(__name__)
PODS = resource_info("", "pods")
NODES = resource_info("", "nodes")
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
DEFAULT_AGENT_PORT = 10250
LOG_PARAMS = ("follow", "tailLines", "previous", "timestamps", "sinceSeconds", "sinceTime", "limitBytes")


def pick_container(pod: Any, requested: str) -> str:
    names = [c.name for c in pod.spec.containers]
    every = names + [c.name for c in pod.spec.init_containers]
    name = pod.metadata.name
    if not requested:
        if len(names) == 1:
            return names[0]
        raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                                f"[{' '.join(names)}]")
    if requested not in every:
        raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
    return requested


def agent_address(node: Any) -> tuple[str, int]:
    addr = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
    if not addr:
        addr = next((a.address for a in node.status.addresses if a.type in ("ExternalIP", "Hostname")), "")
    if not addr:
        raise errors.ServiceUnavailable(f"node {node.metadata.name} has no InternalIP address to reach its agent")
    port = node.status.daemon_endpoints.kubelet_endpoint.port or DEFAULT_AGENT_PORT
    return addr, int(port)


async def _target(registry: Registry, route: Route, request: web.Request) -> tuple[str, str, Any]:
    if route.info.resource != "pods":
        raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
    pod = (await registry.get(PODS, route.namespace, route.name)).msg
    container = pick_container(pod, request.query.get("container", ""))
    if not pod.spec.node_name:
        raise errors.BadRequest(f"pod {pod.metadata.name} does not have a host assigned")
    node = (await registry.get(NODES, "", pod.spec.node_name)).msg
    host, port = agent_address(node)
    base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    return base, container, pod


async def _relay_error(resp: aiohttp.ClientResponse) -> web.Response:
    body = await resp.read()
    ctype = resp.headers.get("Content-Type", "application/json")
    return web.Response(status=resp.status, body=body, headers={"Content-Type": ctype})


async def serve_log(request: web.Request, route: Route, registry: Registry) -> web.StreamResponse:
    base, container, pod = await _target(registry, route, request)
    params = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
    url = f"{base}/containerLogs/{pod.metadata.namespace}/{pod.metadata.name}/{container}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, params=params) as upstream:
            if upstream.status != 200:
                return await _relay_error(upstream)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The agent went away mid-stream (e.g. restarted during `logs -f`): the
                # status line is sent already, so end the body; no Status can follow.
                log.info("log stream of pod %s/%s ended: %s", pod.metadata.namespace, pod.metadata.name, exc)
            await resp.write_eof()
            return resp
    except aiohttp.ClientConnectionError as exc:
        raise errors.ServiceUnavailable(f"the agent of node {pod.spec.node_name} at {base} cannot be reached: "
                                        f"{exc}") from exc


async def serve_exec(request: web.Request, route: Route, registry: Registry) -> web.StreamResponse:
    base, container, pod = await _target(registry, route, request)
    params = [(k, v) for k, v in request.query.items() if k in ("command", "stdin", "stdout", "stderr", "tty")]
    url = f"{base}/exec/{pod.metadata.namespace}/{pod.metadata.name}/{container}"
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
    try:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # kubectl falls back to SPDY when the WebSocket handshake is refused: tell
            # it the agent's reason (container waiting, ...) when there is one.
            raise errors.BadRequest(await _agent_refusal(session, url, params) or
                                    "exec needs a WebSocket upgrade offering v5.channel.k8s.io or "
                                    "v4.channel.k8s.io (SPDY is not supported)")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        protocols = [p for p in offered if p in PROTOCOLS] or list(PROTOCOLS)
        try:
            upstream = await session.ws_connect(url, params=params, protocols=protocols, autoclose=False,
                                                max_msg_size=0, heartbeat=None)
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (400, 404):
                message = await _agent_refusal(session, url, params) or exc.message or "exec refused by the agent"
                raise errors.APIError(message, code=exc.status,
                                      reason="BadRequest" if exc.status == 400 else "NotFound") from exc
            raise errors.ServiceUnavailable(f"the agent refused exec: {exc.status} {exc.message}") from exc
        except aiohttp.ClientConnectionError as exc:
            raise errors.ServiceUnavailable(f"the agent of node {pod.spec.node_name} at {base} cannot be reached: "
                                            f"{exc}") from exc
        ws = web.WebSocketResponse(protocols=(upstream.protocol or protocols[0],), autoclose=False, max_msg_size=0)
        await ws.prepare(request)
        await _relay(ws, upstream)
        return ws
    finally:
        await session.close()


async def _agent_refusal(session: aiohttp.ClientSession, url: str, params: list[tuple[str, str]]) -> str:
    """Why the agent refused an exec: the WebSocket handshake error hides its Status
    body, so ask again without upgrading (the agent checks the pod and container
    before the upgrade) and take the message. "" when there is none to take."""
    try:
        async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if 400 <= resp.status < 500:
                body = await resp.json(content_type=None)
                message = body.get("message", "") if isinstance(body, dict) else ""
                return "" if "WebSocket upgrade" in message else str(message)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        pass
    return ""


async def _relay(client: web.WebSocketResponse, agent: aiohttp.ClientWebSocketResponse) -> None:
    async def client_to_agent() -> None:
        async for msg in client:
            if msg.type == WSMsgType.BINARY:
                await agent.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await agent.send_str(msg.data)
            else:
                break
        # The client finished sending; the agent still owes output and a status.

    upward = asyncio.create_task(client_to_agent())
    try:
        async for msg in agent:
            if msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)
            else:
                break
    finally:
        upward.cancel()
        with contextlib.suppress(BaseException):
            await upward
        with contextlib.suppress(Exception):
            await agent.close()
        with contextlib.suppress(Exception):
            await client.close()
