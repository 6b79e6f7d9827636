"""The cluster DNS server: one inside every flotilla-proxy, on that host.

Why there: every host already runs a proxy that watches Services and
Endpoints, so DNS costs no extra process or watch, answers from the same
state the rules are rendered from, and a pod's query never leaves its host
(the proxy DNATs 10.96.0.10:53 to this server, like NodeLocal DNSCache). It
listens on UDP and TCP at `bind` (the node's address, port 53 by default).

Answers come from dnsrecords.py (A, SRV, headless and StatefulSet pod names,
PTR for cluster IPs and headless endpoints, ExternalName as a CNAME followed
by its target's records, NXDOMAIN inside the cluster domain; over UDP an
answer too large for the client is sent truncated, TC set); other names are
forwarded to the host's
resolver (the first nameserver of /etc/resolv.conf that is not ourselves, or
`upstream` as "ip" or "ip:port"),
and answered SERVFAIL at once when there is none or it does not answer
within `upstream_timeout_s`. Wire format by dnspython.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from netproxy.dnsrecords import DEFAULT_DOMAIN, Records, lookup

log = logging.getLogger("flotilla.proxy.dns")
TTL = 5
MAX_CNAME_CHAIN = 8  # ExternalNames followed inside the cluster before giving up


def host_upstream(resolv_conf: Path = Path("/etc/resolv.conf"), *, exclude: tuple[str, ...] = ()) -> str:
    try:
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver" and parts[1] not in exclude:
                return parts[1]
    except OSError:
        pass
    return ""


class DnsServer:
    def __init__(self, records: Callable[[], Records], *, domain: str = DEFAULT_DOMAIN,
                 upstream: str = "", upstream_timeout_s: float = 2.0, tcp_idle_s: float = 10.0) -> None:
        self.records = records
        self.tcp_idle_s = tcp_idle_s  # a TCP client silent this long is disconnected
        self.domain = domain
        self.upstream = upstream
        self.upstream_timeout_s = upstream_timeout_s
        self.queries = 0

    async def answer(self, wire: bytes, *, udp: bool = False) -> bytes | None:
        """The response to one query; over UDP an answer larger than the client
        takes (512 bytes, or its EDNS payload size) is truncated (TC set, no
        records), so the client asks again over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many kinds for malformed packets
            return None
        self.queries += 1
        if not query.question:
            return _error(query, dns.rcode.FORMERR)
        q = query.question[0]
        qtype = dns.rdatatype.to_text(q.rdtype)
        result = lookup(self.records(), q.name.to_text(), qtype, domain=self.domain)
        if result[0] == "forward":
            return await self._forward(query, wire)
        resp = dns.message.make_response(query)
        resp.flags |= dns.flags.AA
        if result[0] == "nxdomain":
            resp.set_rcode(dns.rcode.NXDOMAIN)
            return resp.to_wire()
        if result[0] == "ptr":
            resp.answer.append(dns.rrset.from_text_list(q.name, TTL, "IN", "PTR", result[1]))
            return self._fit(query, resp, udp=udp)
        if result[0] == "cname":
            resp.answer.append(dns.rrset.from_text_list(q.name, TTL, "IN", "CNAME", [result[1]]))
            if qtype != "CNAME":
                rrsets, rcode = await self._chase(result[1], q.rdtype)
                resp.answer.extend(rrsets)
                resp.set_rcode(rcode)
            return self._fit(query, resp, udp=udp)
        _, ips, srvs = result
        if ips:
            resp.answer.append(dns.rrset.from_text_list(q.name, TTL, "IN", "A", ips))
        if srvs:
            resp.answer.append(dns.rrset.from_text_list(
                q.name, TTL, "IN", "SRV", [f"{s.priority} {s.weight} {s.port} {s.target}" for s in srvs]))
            for s in srvs:
                addrs = self.records().a.get(s.target, [])
                if addrs:
                    resp.additional.append(dns.rrset.from_text_list(s.target, TTL, "IN", "A", addrs))
        return self._fit(query, resp, udp=udp)

    async def _chase(self, target: str, rdtype: dns.rdatatype.RdataType) -> tuple[list[dns.rrset.RRset], dns.rcode.Rcode]:
        """The records after an ExternalName's CNAME, as a recursive server gives
        them (a pod's stub resolver does not follow it), and the rcode for the end
        of the chain: ours for cluster names (an ExternalName may point at
        another), the upstream's for any other; NXDOMAIN when the last name does
        not exist, SERVFAIL when the upstream is missing or fails."""
        out: list[dns.rrset.RRset] = []
        qtype = dns.rdatatype.to_text(rdtype)
        for _ in range(MAX_CNAME_CHAIN):
            result = lookup(self.records(), target, qtype, domain=self.domain)
            if result[0] == "cname":
                out.append(dns.rrset.from_text_list(target, TTL, "IN", "CNAME", [result[1]]))
                target = result[1]
                continue
            if result[0] == "answer":
                if result[1]:
                    out.append(dns.rrset.from_text_list(target, TTL, "IN", "A", result[1]))
                return out, dns.rcode.NOERROR
            if result[0] == "nxdomain":
                return out, dns.rcode.NXDOMAIN
            if result[0] != "forward":
                return out, dns.rcode.NOERROR
            if not self.upstream:  # as for any outside name: a failure the client may retry
                return out, dns.rcode.SERVFAIL
            ask = dns.message.make_query(target, rdtype)
            try:
                reply = dns.message.from_wire(await self._forward(ask, ask.to_wire()))
            except Exception:  # a garbled upstream answer is no answer
                return out, dns.rcode.SERVFAIL
            if reply.id != ask.id or reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return out, dns.rcode.SERVFAIL  # the upstream failed or timed out (our SERVFAIL)
            return out + list(reply.answer), reply.rcode()
        return out, dns.rcode.SERVFAIL  # a loop of ExternalNames

    def _fit(self, query: dns.message.Message, resp: dns.message.Message, *, udp: bool) -> bytes:
        if not udp:
            return resp.to_wire()
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return resp.to_wire(max_size=limit)
        except dns.exception.TooBig:
            short = dns.message.make_response(query)
            short.flags |= dns.flags.AA | dns.flags.TC
            return short.to_wire()

    async def _forward(self, query: dns.message.Message, wire: bytes) -> bytes:
        if not self.upstream:
            return _error(query, dns.rcode.SERVFAIL)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()

        class _Once(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not fut.done():
                    fut.set_result(data)

        host, _, port = self.upstream.rpartition(":") if self.upstream.count(":") == 1 else ("", "", "")
        target = (host, int(port)) if host else (self.upstream, 53)
        try:
            transport, _ = await loop.create_datagram_endpoint(_Once, remote_addr=target)
        except OSError:
            return _error(query, dns.rcode.SERVFAIL)
        try:
            transport.sendto(wire)
            return await asyncio.wait_for(fut, self.upstream_timeout_s)
        except (TimeoutError, OSError):
            return _error(query, dns.rcode.SERVFAIL)
        finally:
            transport.close()

    async def serve(self, host: str, port: int, *, ready: asyncio.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        server = self

        class _Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                async def reply() -> None:
                    out = await server.answer(data, udp=True)
                    if out is not None:
                        self.transport.sendto(out, addr)  # type: ignore[attr-defined]

                task = loop.create_task(reply())
                server._tasks.add(task)
                task.add_done_callback(server._tasks.discard)

        self._tasks: set[asyncio.Task[None]] = set()
        udp, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(host, port))
        tcp = await asyncio.start_server(self._tcp, host, port)
        log.info("cluster DNS listening", extra={"address": f"{host}:{port}", "upstream": self.upstream})
        if ready is not None:
            ready.set()
        try:
            await asyncio.Future()
        finally:
            udp.close()
            tcp.close()

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_s)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), self.tcp_idle_s)
                out = await self.answer(data)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    return resp.to_wire()
