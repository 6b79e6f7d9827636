"""The cluster DNS server on loopback sockets: UDP and TCP answers, forwarding
to an upstream resolver, SERVFAIL when the upstream does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.message
import dns.rcode
import pytest_asyncio

from netproxy.dns import DnsServer
from netproxy.dnsrecords import Records, compute_records
from protos.core.v1 import core_pb2


def free_udp_tcp_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(port)


def cluster_records() -> Records:
    s = core_pb2.Service()
    s.metadata.name, s.metadata.namespace = "web", "default"
    s.spec.cluster_ip = "10.96.0.5"
    s.spec.ports.add(name="http", port=80, protocol="TCP")
    ext = core_pb2.Service()
    ext.metadata.name, ext.metadata.namespace = "www", "default"
    ext.spec.type, ext.spec.external_name = "ExternalName", "www.example.org"
    rec = compute_records(s, None)
    rec.merge(compute_records(ext, None))
    return rec


def upstream_records() -> Records:
    return Records(a={"www.example.org.": ["192.0.2.7"]})


@contextlib.asynccontextmanager
async def serving(server: DnsServer, port: int) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve("127.0.0.1", port, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest_asyncio.fixture
async def ports() -> AsyncIterator[tuple[int, int, int]]:
    up, main, dead = free_udp_tcp_port(), free_udp_tcp_port(), free_udp_tcp_port()
    upstream = DnsServer(upstream_records, domain="example.org", upstream="")
    cluster = DnsServer(cluster_records, upstream=f"127.0.0.1:{up}", upstream_timeout_s=1.0)
    lonely = DnsServer(cluster_records, upstream=f"127.0.0.1:{free_udp_tcp_port()}", upstream_timeout_s=0.3)
    async with serving(upstream, up), serving(cluster, main), serving(lonely, dead):
        yield up, main, dead


async def test_udp_tcp_forward_and_servfail(ports: tuple[int, int, int]) -> None:
    _, main, dead = ports
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    for query in (dns.asyncquery.udp, dns.asyncquery.tcp):
        r = await query(q, "127.0.0.1", port=main, timeout=5)
        assert [x.to_text() for x in r.answer[0]] == ["10.96.0.5"], query
    r = await dns.asyncquery.udp(dns.message.make_query("www.example.org", "A"), "127.0.0.1", port=main, timeout=5)
    assert [x.to_text() for x in r.answer[0]] == ["192.0.2.7"]
    r = await dns.asyncquery.udp(dns.message.make_query("www.example.org", "A"), "127.0.0.1", port=dead, timeout=5)
    assert r.rcode() == dns.rcode.SERVFAIL
    # an ExternalName Service: the CNAME, then its target's address from the upstream
    r = await dns.asyncquery.udp(dns.message.make_query("www.default.svc.cluster.local", "A"), "127.0.0.1",
                                 port=main, timeout=5)
    assert [(r.rdtype.name, [x.to_text() for x in r]) for r in r.answer] == [
        ("CNAME", ["www.example.org."]), ("A", ["192.0.2.7"])]


async def test_idle_tcp_client_is_disconnected() -> None:
    port = free_udp_tcp_port()
    server = DnsServer(cluster_records, upstream="", tcp_idle_s=0.3)
    async with serving(server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server, nothing sent
        finally:
            writer.close()
