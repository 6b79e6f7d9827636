"""The agent's HTTP face answers a Status when Docker fails under a logs or exec
request (not aiohttp's bare 500), so the apiserver's proxy relays something
kubectl can print."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from node_agent.runtime import errors
from node_agent.runtime.fake import FakeRuntime
from node_agent.server import AgentServer
from tests.unit.pod_fixtures import make_pod


class BrokenRuntime(FakeRuntime):
    async def list_containers(self, labels: Mapping[str, str] | None = None) -> Any:
        raise errors.RuntimeUnavailable("list containers: Cannot connect to the Docker daemon")


class OneWorker:
    node_name = "node-1"

    def __init__(self) -> None:
        pod = make_pod("web", containers=[{"name": "app", "image": "flotilla/busybox:test"}])
        self.w = SimpleNamespace(pod=pod, uid=pod.metadata.uid, status=None)

    def worker(self, namespace: str, name: str) -> Any:
        return self.w if (namespace, name) == ("default", "web") else None

    def pods(self) -> list[Any]:
        return []


async def test_runtime_failure_is_a_status() -> None:
    server = AgentServer(OneWorker(), BrokenRuntime())  # type: ignore[arg-type]
    async with TestClient(TestServer(server.main_app())) as http:
        r = await http.get("/containerLogs/default/web/app")
        body = await r.json()
        assert r.status == 500 and body["kind"] == "Status" and body["reason"] == "InternalError"
        assert "Cannot connect to the Docker daemon" in body["message"]
        r = await http.get("/exec/default/web/app?command=ls", headers={"Upgrade": "websocket"})
        assert r.status == 500 and (await r.json())["reason"] == "InternalError"
        r = await http.get("/containerLogs/default/nosuch/app")
        assert r.status == 404 and (await r.json())["reason"] == "NotFound"
