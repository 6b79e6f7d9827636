"""flotilla-proxy started before its Node exists (as `flotctl lab up` does:
agents and proxies start together): it becomes ready on the services rules
alone, and its cluster DNS starts -- with the DNS DNAT rule -- as soon as the
Node shows an InternalIP.

A real master on the real etcd; the proxy's iptables is the fake (the real
one is the e2e tests'), its DNS listens on a random loopback address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from typing import Any

import dns.asyncquery
import dns.message
import pytest

from master.client import Client
from netproxy import proxy
from netproxy.fake import FakeIptables
from protos.core.v1 import core_pb2
from tests.integration.harness import in_process_master

WAIT_S = 30.0


async def _until(what: str, check: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_dns_starts_when_the_node_registers_after_the_proxy(etcd_cluster: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # the backend check reads the root namespace's iptables: not this test's business
    monkeypatch.setattr(proxy, "check_backend", lambda *_a, **_k: None)
    ip = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    node_name = f"late-{uuid.uuid4().hex[:6]}"
    ipt = FakeIptables()
    async with in_process_master(etcd_cluster.endpoints) as m, await Client.connect(m.grpc_target) as c:
        svc = core_pb2.Service()
        svc.metadata.name, svc.metadata.namespace = "web", "default"
        svc.spec.ports.add(name="http", port=80)
        svc = await c.create(svc)
        config = proxy.ProxyConfig(master=m.grpc_target, node_name=node_name, healthz_bind="127.0.0.1:0",
                                   cluster_dns="10.96.0.10", dns_upstream="")
        ready = asyncio.Event()
        task = asyncio.create_task(proxy.run(config, ready=ready, iptables=ipt))
        try:
            await asyncio.wait_for(ready.wait(), WAIT_S)  # no Node yet: ready without DNS
            assert "cluster DNS" not in ipt.save("nat")

            node = core_pb2.Node()
            node.metadata.name = node_name
            node = await c.create(node)
            node.status.addresses.add(type="InternalIP", address=ip)
            await c.update_status(node)

            await _until("the DNS DNAT rule", lambda: f"--to-destination {ip}:53" in ipt.save("nat"))
            query = dns.message.make_query("web.default.svc.cluster.local", "A")
            answer = None
            for _ in range(100):  # the server binds right after the Node is seen
                with contextlib.suppress(TimeoutError, OSError):
                    answer = await dns.asyncquery.udp(query, ip, port=53, timeout=1)
                    break
                await asyncio.sleep(0.1)
            assert answer is not None and answer.answer[0][0].to_text() == svc.spec.cluster_ip, answer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

