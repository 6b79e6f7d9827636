"""Optimistic concurrency over REST on the real etcd cluster (DESIGN 2).

Concurrent writers must see exactly Kubernetes' answers: of two PUTs that
carry the same resourceVersion one wins (200) and one gets 409 Conflict; of
several creates of one name one wins (201) and the rest get 409
AlreadyExists; PATCHes without a resourceVersion are retried by the server
(GuaranteedUpdate) so every one of them lands; generateName gives every
create its own name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from tests.integration.harness import InProcessMaster, in_process_master

CM = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest_asyncio.fixture
async def api(etcd_cluster: Any) -> AsyncIterator[tuple[InProcessMaster, aiohttp.ClientSession]]:
    async with in_process_master(etcd_cluster.endpoints) as m, aiohttp.ClientSession(
        base_url=m.url, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        yield m, session


async def call(s: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body)
    async with s.request(method, path, data=data, headers=headers or {"Content-Type": "application/json"}) as r:
        return r.status, await r.json()


def brief(answers: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """The unexpected answers, short: code, reason, message."""
    return [f"{c} {o.get('reason')}: {o.get('message')}" for c, o in answers if o.get("kind") == "Status"]


async def test_two_puts_with_the_same_resource_version_one_wins(api: Any) -> None:
    _, s = api
    code, obj = await call(s, "POST", CM, {"metadata": {"name": "race"}, "data": {"v": "0"}})
    assert code == 201, obj
    for round_ in range(20):
        code, current = await call(s, "GET", f"{CM}/race")
        assert code == 200
        rv = current["metadata"]["resourceVersion"]
        bodies = [{"metadata": {"name": "race", "resourceVersion": rv}, "data": {"v": f"{round_}-{who}"}}
                  for who in ("a", "b")]
        answers = await asyncio.gather(*(call(s, "PUT", f"{CM}/race", b) for b in bodies))
        codes = sorted(c for c, _ in answers)
        assert codes == [200, 409], brief(answers)
        (_, won), = [(c, o) for c, o in answers if c == 200]
        (_, lost), = [(c, o) for c, o in answers if c == 409]
        assert lost["kind"] == "Status" and lost["reason"] == "Conflict" and lost["code"] == 409
        code, final = await call(s, "GET", f"{CM}/race")
        assert final["data"] == won["data"]
        assert final["metadata"]["resourceVersion"] == won["metadata"]["resourceVersion"] != rv


async def test_concurrent_creates_of_one_name_one_wins(api: Any) -> None:
    _, s = api
    for round_ in range(5):
        name = f"same-{round_}"
        bodies = [{"metadata": {"name": name}, "data": {"writer": str(i)}} for i in range(8)]
        answers = await asyncio.gather(*(call(s, "POST", CM, b) for b in bodies))
        codes = sorted(c for c, _ in answers)
        assert codes == [201] + [409] * 7, brief(answers)
        assert all(o["reason"] == "AlreadyExists" for c, o in answers if c == 409), answers
        (winner,) = [o for c, o in answers if c == 201]
        code, stored = await call(s, "GET", f"{CM}/{name}")
        assert code == 200 and stored["data"] == winner["data"]
        assert stored["metadata"]["uid"] == winner["metadata"]["uid"]


async def test_concurrent_patches_without_resource_version_all_land(api: Any) -> None:
    _, s = api
    code, _ = await call(s, "POST", CM, {"metadata": {"name": "patched"}})
    assert code == 201
    writers = 30
    patches = [{"metadata": {"labels": {f"writer-{i}": "yes"}}} for i in range(writers)]
    answers = await asyncio.gather(*(call(s, "PATCH", f"{CM}/patched", p, headers=MERGE) for p in patches))
    assert [c for c, _ in answers] == [200] * writers, brief(answers)
    code, final = await call(s, "GET", f"{CM}/patched")
    assert final["metadata"]["labels"] == {f"writer-{i}": "yes" for i in range(writers)}


async def test_generate_name_gives_fifty_distinct_names(api: Any) -> None:
    _, s = api
    body = {"metadata": {"generateName": "gen-", "labels": {"made-by": "generate-name"}}}
    answers = await asyncio.gather(*(call(s, "POST", CM, body) for _ in range(50)))
    assert [c for c, _ in answers] == [201] * 50, brief(answers)
    names = {o["metadata"]["name"] for _, o in answers}
    assert len(names) == 50
    assert all(n.startswith("gen-") and len(n) > len("gen-") for n in names)
    code, listed = await call(s, "GET", f"{CM}?labelSelector=made-by%3Dgenerate-name")
    assert code == 200 and {o["metadata"]["name"] for o in listed["items"]} == names
