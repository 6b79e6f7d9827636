"""Service clusterIP and nodePort allocation over REST on the real etcd cluster.

200 NodePort services created at once get 200 distinct ports and IPs; a
small configured range runs out with a clear 422; explicit values are
honoured when free and refused (Kubernetes' messages) when taken or out of
range; values are kept on update, released on delete and on NodePort ->
ClusterIP; headless services get no address; the kubernetes Service exists
when the master advertises an address.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from master.apiserver.server import APIServerConfig
from tests.integration.harness import in_process_master

SVC = "/api/v1/namespaces/default/services"
Session = aiohttp.ClientSession


@pytest_asyncio.fixture
async def small(etcd_cluster: Any) -> AsyncIterator[Session]:
    cfg = APIServerConfig("127.0.0.1", 0, 0, service_cidr="10.100.0.0/28",
                          node_port_range="30000-30004", advertise_ip="127.0.0.1")
    async with in_process_master(etcd_cluster.endpoints, config=cfg) as m, aiohttp.ClientSession(
        base_url=m.url, timeout=aiohttp.ClientTimeout(total=120)
    ) as s:
        yield s


@pytest_asyncio.fixture
async def big(etcd_cluster: Any) -> AsyncIterator[Session]:
    async with in_process_master(etcd_cluster.endpoints) as m, aiohttp.ClientSession(
        base_url=m.url, timeout=aiohttp.ClientTimeout(total=120)
    ) as s:
        yield s


def service(name: str, *, type_: str = "ClusterIP", node_port: int = 0, cluster_ip: str = "") -> dict[str, Any]:
    port: dict[str, Any] = {"port": 80, "targetPort": 8080}
    if node_port:
        port["nodePort"] = node_port
    spec: dict[str, Any] = {"type": type_, "selector": {"app": name}, "ports": [port]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def call(s: Session, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body)
    async with s.request(method, path, data=data, headers={"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


async def create(s: Session, body: dict[str, Any]) -> dict[str, Any]:
    code, out = await call(s, "POST", SVC, body)
    assert code == 201, out
    return out


async def test_200_concurrent_node_port_services_get_distinct_values(big: Session) -> None:
    t0 = time.monotonic()
    outs = await asyncio.gather(*(create(big, service(f"np-{i}", type_="NodePort")) for i in range(200)))
    elapsed = time.monotonic() - t0
    ports = [o["spec"]["ports"][0]["nodePort"] for o in outs]
    ips = [o["spec"]["clusterIP"] for o in outs]
    assert len(set(ports)) == 200 and all(30000 <= p <= 32767 for p in ports)
    assert len(set(ips)) == 200 and all(ip.startswith("10.") for ip in ips)
    print(f"200 concurrent NodePort creates: {elapsed:.2f}s")


async def test_small_range_exhausts_with_422_and_delete_releases(small: Session) -> None:
    names = [f"p{i}" for i in range(5)]
    outs = [await create(small, service(n, type_="NodePort")) for n in names]
    assert sorted(o["spec"]["ports"][0]["nodePort"] for o in outs) == [30000, 30001, 30002, 30003, 30004]
    code, out = await call(small, "POST", SVC, service("p5", type_="NodePort"))
    assert code == 422 and out["reason"] == "Invalid", out
    assert "range is full" in out["message"] and out["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    code, _ = await call(small, "DELETE", f"{SVC}/p2")
    assert code == 200
    again = await create(small, service("p5", type_="NodePort"))
    assert again["spec"]["ports"][0]["nodePort"] == outs[2]["spec"]["ports"][0]["nodePort"]


async def test_explicit_values(small: Session) -> None:
    a = await create(small, service("a", type_="NodePort", node_port=30003, cluster_ip="10.100.0.5"))
    assert a["spec"]["clusterIP"] == "10.100.0.5" and a["spec"]["clusterIPs"] == ["10.100.0.5"]
    code, out = await call(small, "POST", SVC, service("b", cluster_ip="10.100.0.5"))
    assert code == 422 and "spec.clusterIPs: Invalid value: \"10.100.0.5\": provided IP is already allocated" in out["message"]
    code, out = await call(small, "POST", SVC, service("b", type_="NodePort", node_port=30003))
    assert code == 422 and "spec.ports[0].nodePort: Invalid value: 30003: provided port is already allocated" in out["message"]
    code, out = await call(small, "POST", SVC, service("b", type_="NodePort", node_port=30080))
    assert code == 422 and "provided port is not in the valid range. The range of valid ports is 30000-30004" in out["message"]
    code, out = await call(small, "POST", SVC, service("b", cluster_ip="10.96.0.7"))
    assert code == 422 and "provided IP is not in the valid range" in out["message"]
    # a refused create reserved nothing: "b" gets the port and IP once "a" is gone
    await call(small, "DELETE", f"{SVC}/a")
    b = await create(small, service("b", type_="NodePort", node_port=30003, cluster_ip="10.100.0.5"))
    assert b["spec"]["ports"][0]["nodePort"] == 30003


async def test_update_keeps_values_and_type_change_releases_port(small: Session) -> None:
    a = await create(small, service("a", type_="NodePort", node_port=30001))
    ip = a["spec"]["clusterIP"]
    # a PUT without clusterIP / nodePort keeps them
    code, out = await call(small, "PUT", f"{SVC}/a", service("a", type_="NodePort"))
    assert code == 200 and out["spec"]["clusterIP"] == ip and out["spec"]["ports"][0]["nodePort"] == 30001, out
    other = "10.100.0.9" if ip != "10.100.0.9" else "10.100.0.8"
    code, out = await call(small, "PUT", f"{SVC}/a", service("a", type_="NodePort", cluster_ip=other))
    assert code == 422 and "may not change once set" in out["message"]
    # NodePort -> ClusterIP frees 30001
    code, out = await call(small, "PUT", f"{SVC}/a", service("a"))
    assert code == 200 and "nodePort" not in out["spec"]["ports"][0], out
    b = await create(small, service("b", type_="NodePort", node_port=30001))
    assert b["spec"]["ports"][0]["nodePort"] == 30001
    # ClusterIP -> NodePort allocates one again
    code, out = await call(small, "PUT", f"{SVC}/a", service("a", type_="LoadBalancer"))
    assert code == 200 and 30000 <= out["spec"]["ports"][0]["nodePort"] <= 30004, out


async def test_headless_and_the_kubernetes_service(small: Session) -> None:
    h = await create(small, service("h", cluster_ip="None"))
    assert h["spec"]["clusterIP"] == "None"
    k = await wait_get(small, f"{SVC}/kubernetes")
    assert k["spec"]["clusterIP"] == "10.100.0.1" and k["spec"]["ports"][0]["port"] == 443
    ep = await wait_get(small, "/api/v1/namespaces/default/endpoints/kubernetes")
    assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}], ep
    dns = await wait_get(small, "/api/v1/namespaces/kube-system/services/kube-dns")
    assert dns["spec"]["clusterIP"] == "10.100.0.10", dns


async def wait_get(s: Session, path: str) -> dict[str, Any]:
    """The apiserver writes these right after it is ready, a moment later."""
    for _ in range(300):
        code, out = await call(s, "GET", path)
        if code == 200:
            return out
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path}: {code} {out}")


async def test_concurrent_creates_of_one_explicit_value_admit_exactly_one(big: Session) -> None:
    async def attempt(i: int) -> int:
        code, _ = await call(big, "POST", SVC, service(f"same-{i}", type_="NodePort", node_port=31999,
                                                        cluster_ip="10.96.200.200"))
        return code

    codes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert sorted(codes) == [201] + [422] * 19, codes
