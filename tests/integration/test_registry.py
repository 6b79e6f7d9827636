"""Registry semantics over REST on the real etcd cluster.

What the registry owns, checked the way a client sees it: consistent LISTs
and paging, graceful deletion of pods, namespace deletion, dry runs,
no-op updates, metadata.generation, the status subresource, and
pods/binding. Expected answers are Kubernetes'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from master.client import Client
from master.controllers.manager import ControllerManager
from tests.integration.harness import InProcessMaster, in_process_master

NS = "/api/v1/namespaces/default"
CM = f"{NS}/configmaps"
PODS = f"{NS}/pods"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
MERGE = "application/merge-patch+json"
WAIT_S = 30.0  # a guard against hangs, not a measured timing

Api = tuple[InProcessMaster, aiohttp.ClientSession]


@pytest_asyncio.fixture
async def api(etcd_cluster: Any) -> AsyncIterator[Api]:
    async with in_process_master(etcd_cluster.endpoints) as m, aiohttp.ClientSession(
        base_url=m.url, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        yield m, session


async def call(s: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               *, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body)
    async with s.request(method, path, data=data, headers={"Content-Type": content_type}) as r:
        return r.status, await r.json()


async def ok(s: aiohttp.ClientSession, method: str, path: str, body: Any = None,
             *, content_type: str = "application/json", want: int = 200) -> dict[str, Any]:
    code, answer = await call(s, method, path, body, content_type=content_type)
    assert code == want, f"{method} {path}: {code} {answer}"
    return answer


@contextlib.asynccontextmanager
async def namespace_controller(m: InProcessMaster) -> AsyncIterator[None]:
    """The namespace controller empties and finalizes deleted namespaces
    (the apiserver only marks them Terminating)."""
    client = await Client.connect(m.grpc_target, wait_ready_s=10)
    manager = ControllerManager(client, enabled=["namespace"],
                                options={"namespace": {"deletion_delay_s": 0.2, "recheck_s": 0.2}})
    task = asyncio.create_task(manager.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


def pod(name: str, *, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox:stable"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def deployment(name: str, *, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "app", "image": "busybox:stable"}]}}}}


def rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def eventually_gone(s: aiohttp.ClientSession, path: str) -> None:
    async def poll() -> None:
        while (await call(s, "GET", path))[0] != 404:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT_S)


# --- LIST -------------------------------------------------------------------------------


async def test_list_right_after_a_create_contains_the_object(api: Api) -> None:
    _, s = api
    for i in range(50):
        created = await ok(s, "POST", CM, {"metadata": {"name": f"c-{i}", "labels": {"t": "consistent"}}}, want=201)
        listed = await ok(s, "GET", f"{CM}?labelSelector=t%3Dconsistent&resourceVersion=")
        assert f"c-{i}" in {o["metadata"]["name"] for o in listed["items"]}, i
        assert int(listed["metadata"]["resourceVersion"]) >= rv(created)


async def test_limit_and_continue_page_through_everything_once(api: Api) -> None:
    _, s = api
    names = [f"p-{i:02d}" for i in range(23)]
    for name in names:
        await ok(s, "POST", CM, {"metadata": {"name": name, "labels": {"t": "paged"}}}, want=201)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        query = "labelSelector=t%3Dpaged&limit=5" + (f"&continue={token}" if token else "")
        page = await ok(s, "GET", f"{CM}?{query}")
        pages += 1
        items = [o["metadata"]["name"] for o in page["items"]]
        assert 0 < len(items) <= 5
        seen += items
        token = page["metadata"].get("continue", "")
        if not token:
            assert "remainingItemCount" not in page["metadata"]
            break
        assert page["metadata"]["remainingItemCount"] == len(names) - len(seen)
        assert pages < 10, "paging does not end"
    assert seen == names  # every object once, in key order
    assert pages == 5


# --- deletion ------------------------------------------------------------------------------


async def test_a_pod_on_a_node_is_deleted_gracefully(api: Api) -> None:
    _, s = api
    await ok(s, "POST", PODS, pod("on-node", node="node-a"), want=201)
    answer = await ok(s, "DELETE", f"{PODS}/on-node")
    assert answer["kind"] == "Pod" and answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 30
    still = await ok(s, "GET", f"{PODS}/on-node")
    assert still["metadata"]["deletionTimestamp"] == answer["metadata"]["deletionTimestamp"]
    # The agent confirms with grace 0 once the containers are gone: then it goes.
    await ok(s, "DELETE", f"{PODS}/on-node?gracePeriodSeconds=0")
    assert (await call(s, "GET", f"{PODS}/on-node"))[0] == 404


async def test_a_pod_without_a_node_goes_at_once(api: Api) -> None:
    _, s = api
    await ok(s, "POST", PODS, pod("unscheduled"), want=201)
    await ok(s, "DELETE", f"{PODS}/unscheduled")
    assert (await call(s, "GET", f"{PODS}/unscheduled"))[0] == 404


async def test_grace_period_zero_removes_a_pod_on_a_node_at_once(api: Api) -> None:
    _, s = api
    await ok(s, "POST", PODS, pod("forced", node="node-a"), want=201)
    await ok(s, "DELETE", f"{PODS}/forced", {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    assert (await call(s, "GET", f"{PODS}/forced"))[0] == 404


async def test_namespace_deletion_terminates_then_removes_it_and_its_contents(api: Api) -> None:
    m, s = api
    await ok(s, "POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}}, want=201)
    await ok(s, "POST", "/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "cm"}}, want=201)
    await ok(s, "POST", "/api/v1/namespaces/doomed/pods", pod("p", node="node-a"), want=201)
    answer = await ok(s, "DELETE", "/api/v1/namespaces/doomed")
    assert answer["kind"] == "Namespace" and answer["status"]["phase"] == "Terminating"
    assert answer["metadata"]["deletionTimestamp"]
    async with namespace_controller(m):
        await eventually_gone(s, "/api/v1/namespaces/doomed")
    for path in ("/api/v1/namespaces/doomed/configmaps", "/api/v1/namespaces/doomed/pods"):
        assert (await ok(s, "GET", path))["items"] == []


async def test_creating_in_a_terminating_namespace_is_forbidden(api: Api) -> None:
    m, s = api
    await ok(s, "POST", "/api/v1/namespaces", {"metadata": {"name": "closing", "finalizers": ["example.com/hold"]}},
             want=201)
    await ok(s, "DELETE", "/api/v1/namespaces/closing")
    code, status = await call(s, "POST", "/api/v1/namespaces/closing/configmaps", {"metadata": {"name": "late"}})
    assert (code, status["reason"]) == (403, "Forbidden"), status
    assert status["message"] == "unable to create new content in namespace closing because it is being terminated"
    # Release the metadata finalizer so the namespace can go.
    await ok(s, "PATCH", "/api/v1/namespaces/closing", {"metadata": {"finalizers": None}}, content_type=MERGE)
    async with namespace_controller(m):
        await eventually_gone(s, "/api/v1/namespaces/closing")


# --- dry runs and no-op writes -----------------------------------------------------------


async def test_dry_run_writes_nothing(api: Api) -> None:
    m, s = api
    existing = await ok(s, "POST", CM, {"metadata": {"name": "kept"}, "data": {"a": "1"}}, want=201)
    revision = await m.store.current_revision()

    created = await ok(s, "POST", f"{CM}?dryRun=All", {"metadata": {"name": "phantom"}, "data": {"a": "1"}}, want=201)
    assert created["metadata"]["name"] == "phantom"
    updated = await ok(s, "PUT", f"{CM}/kept?dryRun=All", {"metadata": {"name": "kept"}, "data": {"a": "2"}})
    assert updated["data"] == {"a": "2"}
    patched = await ok(s, "PATCH", f"{CM}/kept?dryRun=All", {"data": {"b": "3"}}, content_type=MERGE)
    assert patched["data"] == {"a": "1", "b": "3"}
    await ok(s, "DELETE", f"{CM}/kept?dryRun=All")
    await ok(s, "DELETE", f"{NS}/pods?dryRun=All")  # deletecollection

    assert (await call(s, "GET", f"{CM}/phantom"))[0] == 404
    stored = await ok(s, "GET", f"{CM}/kept")
    assert stored["data"] == {"a": "1"} and rv(stored) == rv(existing)
    assert await m.store.current_revision() == revision, "a dry run wrote to etcd"


async def test_put_without_changes_keeps_the_resource_version(api: Api) -> None:
    m, s = api
    created = await ok(s, "POST", DEPLOY, deployment("same"), want=201)
    revision = await m.store.current_revision()
    again = await ok(s, "PUT", f"{DEPLOY}/same", created)
    assert rv(again) == rv(created)
    assert again["metadata"]["generation"] == created["metadata"]["generation"]
    assert await m.store.current_revision() == revision


# --- generation and the status subresource -------------------------------------------------


async def test_generation_follows_spec_changes_only(api: Api) -> None:
    _, s = api
    d = await ok(s, "POST", DEPLOY, deployment("gen"), want=201)
    assert d["metadata"]["generation"] == 1
    d = await ok(s, "PATCH", f"{DEPLOY}/gen", {"metadata": {"labels": {"x": "y"}}}, content_type=MERGE)
    assert d["metadata"]["generation"] == 1, "a metadata change bumped generation"
    d = await ok(s, "PATCH", f"{DEPLOY}/gen", {"spec": {"replicas": 3}}, content_type=MERGE)
    assert d["metadata"]["generation"] == 2
    d["status"] = {"replicas": 3, "observedGeneration": 2}
    d = await ok(s, "PUT", f"{DEPLOY}/gen/status", d)
    assert d["metadata"]["generation"] == 2, "a status change bumped generation"
    d = await ok(s, "PATCH", f"{DEPLOY}/gen", {"spec": {"template": {"metadata": {"labels": {"gen": "v2"}}}}},
                 content_type=MERGE)
    assert d["metadata"]["generation"] == 3


async def test_status_subresource_and_main_resource_each_write_only_their_part(api: Api) -> None:
    _, s = api
    d = await ok(s, "POST", DEPLOY, deployment("split", replicas=1), want=201)
    d["spec"]["replicas"] = 7
    d["status"] = {"replicas": 5}
    after_status = await ok(s, "PUT", f"{DEPLOY}/split/status", d)
    assert after_status["spec"]["replicas"] == 1, "a /status write changed spec"
    assert after_status["status"]["replicas"] == 5

    after_status["spec"]["replicas"] = 2
    after_status["status"] = {"replicas": 9}
    after_main = await ok(s, "PUT", f"{DEPLOY}/split", after_status)
    assert after_main["spec"]["replicas"] == 2
    assert after_main["status"]["replicas"] == 5, "a main-resource write changed status"

    patched = await ok(s, "PATCH", f"{DEPLOY}/split", {"status": {"replicas": 11}}, content_type=MERGE)
    assert patched["status"]["replicas"] == 5
    patched = await ok(s, "PATCH", f"{DEPLOY}/split/status", {"spec": {"replicas": 4}, "status": {"replicas": 6}},
                       content_type=MERGE)
    assert (patched["spec"]["replicas"], patched["status"]["replicas"]) == (2, 6)


async def test_status_subresource_of_a_pod_ignores_spec(api: Api) -> None:
    _, s = api
    p = await ok(s, "POST", PODS, pod("st"), want=201)
    p["spec"]["nodeName"] = "sneaky"
    p["status"] = {"phase": "Running"}
    after = await ok(s, "PUT", f"{PODS}/st/status", p)
    assert after["status"]["phase"] == "Running"
    assert not after["spec"].get("nodeName")


# --- binding ----------------------------------------------------------------------------------


async def test_binding_sets_the_node_once(api: Api) -> None:
    _, s = api
    await ok(s, "POST", PODS, pod("b"), want=201)
    target = {"apiVersion": "v1", "kind": "Node", "name": "node-a"}
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": target}
    answer = await ok(s, "POST", f"{PODS}/b/binding", binding, want=201)
    assert answer["kind"] == "Status" and answer["status"] == "Success"
    bound = await ok(s, "GET", f"{PODS}/b")
    assert bound["spec"]["nodeName"] == "node-a"
    scheduled = [c for c in bound["status"].get("conditions", []) if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]

    target["name"] = "node-b"
    code, status = await call(s, "POST", f"{PODS}/b/binding", binding)
    assert (code, status["reason"]) == (409, "Conflict"), status
    assert (await ok(s, "GET", f"{PODS}/b"))["spec"]["nodeName"] == "node-a"
