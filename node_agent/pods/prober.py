"""Running one probe (httpGet, tcpSocket, exec) and the per-container probe loop.

Owns: the I/O of probing: an HTTP GET to the pod IP (2xx/3xx = success), a TCP
connect, an exec in the container (exit 0 = success), each bounded by the
probe's timeout; and `probe_loop`, which waits initialDelaySeconds, probes every
periodSeconds and folds outcomes in with node_agent.pods.probes (pure), calling
back when the result flips. Must not: decide restarts (the pod plan does).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from master.client.clock import Clock
from node_agent.pods.probes import STARTUP, ProbeSpec, ProbeState, initial_probe_state, record_probe
from node_agent.runtime.interface import ContainerRuntime

log = logging.getLogger(__name__)


def resolve_port(value: Any, container: Any) -> int:
    """An IntOrString port: a number, or the name of one of the container's ports."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return int(value.number_value)
    if kind == "string_value":
        text = value.string_value
        if text.isdigit():
            return int(text)
        for p in container.ports:
            if p.name == text:
                return int(p.container_port)
        raise ValueError(f"no container port named {text!r}")
    raise ValueError("probe port is not set")


async def http_get(host: str, port: int, path: str, *, scheme: str, headers: list[tuple[str, str]],
                   timeout_s: float) -> tuple[bool, str]:
    ctx = None
    if scheme.upper() == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
            writer.write(f"GET {path or '/'} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\n"
                         f"Accept: */*\r\n{extra}\r\n".encode())
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    parts = line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"HTTP probe failed: malformed response {line[:40]!r}"
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def run_probe(probe: Any, *, timeout_s: float, runtime: ContainerRuntime, container_id: str,
                    container: Any, pod_ip: str) -> tuple[bool, str]:
    """One probe attempt: (success, message)."""
    try:
        if probe.exec.command:
            async with asyncio.timeout(timeout_s):
                stream = await runtime.exec(container_id, list(probe.exec.command), stdin=False, tty=False)
                try:
                    out = b"".join([chunk async for _, chunk in stream.output()])
                    code = await stream.wait()
                finally:
                    await stream.close()
            return code == 0, "" if code == 0 else out.decode(errors="replace")[-200:]
        if probe.HasField("http_get"):
            g = probe.http_get
            port = resolve_port(g.port, container)
            return await http_get(g.host or pod_ip, port, g.path, scheme=g.scheme or "HTTP",
                                  headers=[(h.name, h.value) for h in g.http_headers], timeout_s=timeout_s)
        if probe.HasField("tcp_socket"):
            port = resolve_port(probe.tcp_socket.port, container)
            async with asyncio.timeout(timeout_s):
                _, writer = await asyncio.open_connection(probe.tcp_socket.host or pod_ip, port)
                writer.close()
            return True, ""
        return True, ""
    except TimeoutError:
        return False, f"probe timed out after {timeout_s:g}s"
    except (OSError, ValueError) as exc:
        return False, str(exc)
    except Exception as exc:  # a runtime error (container gone) is a failed probe, not a crash
        return False, f"{type(exc).__name__}: {exc}"


async def run_handler(handler: Any, *, timeout_s: float, runtime: ContainerRuntime, container_id: str,
                      container: Any, pod_ip: str, clock: Clock) -> tuple[bool, str]:
    """A lifecycle handler (postStart / preStop): exec, httpGet, tcpSocket or sleep."""
    if handler.HasField("sleep"):
        await clock.sleep(min(float(handler.sleep.seconds), timeout_s))
        return True, ""
    return await run_probe(handler, timeout_s=timeout_s, runtime=runtime, container_id=container_id,
                           container=container, pod_ip=pod_ip)


async def probe_loop(spec: ProbeSpec, probe: Any, *, clock: Clock, runtime: ContainerRuntime, container_id: str,
                     container: Any, pod_ip: Callable[[], str], gate: Callable[[], bool],
                     on_change: Callable[[ProbeState], None], initial_delay_s: float) -> None:
    """Probe until cancelled; `gate()` False skips a round (liveness waits for startup)."""
    state = initial_probe_state(spec.kind)
    if spec.kind == STARTUP:
        state = ProbeState(result=False)
    await clock.sleep(initial_delay_s)
    while True:
        if gate():
            ok, message = await run_probe(probe, timeout_s=spec.timeout_s, runtime=runtime,
                                          container_id=container_id, container=container, pod_ip=pod_ip())
            new = record_probe(state, ok, spec, message=message)
            # A startup probe starts "not yet"; it has failed only at its threshold.
            gave_up = spec.kind == STARTUP and not new.result and new.failures == spec.failure_threshold
            if new.result != state.result or gave_up:
                log.info("%s probe of %s: %s %s", spec.kind, container_id[:12], "success" if new.result else
                         "failure", message)
                on_change(new)
            state = new
            if spec.kind == STARTUP and state.result:
                return  # started: liveness and readiness take over
        await clock.sleep(spec.period_s)
