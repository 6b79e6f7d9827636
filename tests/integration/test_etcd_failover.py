"""Kill the etcd leader while 5 clients run 500 creates: writes resume within
5 s, and every create that was answered 201 is readable afterwards.

Five client tasks each create 100 ConfigMaps over REST against an in-process
master. After about 100 successful creates the etcd leader is SIGKILLed.
A client retries a create that got a 5xx or lost its connection, with the
same name and body; a 409 AlreadyExists on such a retry counts as success
only if the stored object is ours (its nonce matches): the first attempt
landed and only the answer was lost. The longest gap between two successful
writes (any client) is the outage as clients see it; it is printed and must
stay under 5 s. The killed member is restarted in a finally block and the
cluster waited on, so later tests get a healthy three-member cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.integration.harness import in_process_master

CM = "/api/v1/namespaces/default/configmaps"
CLIENTS = 5
PER_CLIENT = 100
KILL_AFTER = 100
MAX_GAP_S = 5.0
RETRY_PAUSE_S = 0.05
GIVE_UP_S = 60.0  # a create still failing after this is a failure, not a retry


@dataclass
class Run:
    successes: list[float] = field(default_factory=list)  # monotonic times of successful creates
    created: dict[str, str] = field(default_factory=dict)  # name -> nonce, for every 201 or "ours" 409
    retried: int = 0
    answers_during_outage: dict[str, int] = field(default_factory=dict)
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    def success(self, name: str, nonce: str) -> None:
        self.created[name] = nonce
        self.successes.append(time.monotonic())
        if len(self.successes) >= KILL_AFTER:
            self.enough.set()

    def longest_gap_s(self) -> float:
        times = sorted(self.successes)
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


async def try_create(s: aiohttp.ClientSession, body: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    try:
        async with s.post(CM, json=body) as r:
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return None, {"error": repr(exc)}


async def is_ours(s: aiohttp.ClientSession, name: str, nonce: str) -> bool:
    async with s.get(f"{CM}/{name}") as r:
        return r.status == 200 and (await r.json())["data"]["nonce"] == nonce


async def create_until_done(s: aiohttp.ClientSession, run: Run, name: str) -> None:
    nonce = uuid.uuid4().hex
    body = {"metadata": {"name": name, "labels": {"test": "failover"}}, "data": {"nonce": nonce}}
    deadline = time.monotonic() + GIVE_UP_S
    first = True
    while True:
        code, answer = await try_create(s, body)
        if code == 201:
            run.success(name, nonce)
            return
        if code == 409 and answer.get("reason") == "AlreadyExists" and not first:
            assert await is_ours(s, name, nonce), f"{name}: AlreadyExists on retry, but the stored object is not ours"
            run.success(name, nonce)
            return
        assert code is None or code >= 500, f"{name}: unexpected answer {code}: {answer}"
        key = str(code) if code else "connection error"
        run.answers_during_outage[key] = run.answers_during_outage.get(key, 0) + 1
        assert time.monotonic() < deadline, f"{name}: still failing after {GIVE_UP_S}s: {code} {answer}"
        first = False
        run.retried += 1
        await asyncio.sleep(RETRY_PAUSE_S)


async def client(s: aiohttp.ClientSession, run: Run, index: int) -> None:
    for i in range(PER_CLIENT):
        await create_until_done(s, run, f"fo-{index}-{i}")


async def test_writes_resume_after_the_etcd_leader_dies(etcd_cluster: Any) -> None:
    run = Run()
    killed: int | None = None
    try:
        async with in_process_master(etcd_cluster.endpoints) as m, aiohttp.ClientSession(
            base_url=m.url, timeout=aiohttp.ClientTimeout(total=15)
        ) as s:
            clients = [asyncio.create_task(client(s, run, i)) for i in range(CLIENTS)]
            await run.enough.wait()
            killed = await etcd_cluster.leader_index()
            etcd_cluster.kill_member(killed)
            killed_at = time.monotonic()
            await asyncio.gather(*clients)

            gap = run.longest_gap_s()
            after_kill = min((t for t in run.successes if t > killed_at), default=float("inf")) - killed_at
            print(f"\netcd leader (member {killed}) killed after {KILL_AFTER} creates: longest gap between "
                  f"successful writes {gap:.2f}s; first success {after_kill:.2f}s after the kill; "
                  f"{run.retried} retries; failed answers seen: {run.answers_during_outage}")
            assert gap < MAX_GAP_S, f"writes stalled for {gap:.2f}s"
            assert len(run.created) == CLIENTS * PER_CLIENT

            for name, nonce in run.created.items():
                async with s.get(f"{CM}/{name}") as r:
                    assert r.status == 200, f"{name} was answered 201 but reads {r.status}"
                    assert (await r.json())["data"]["nonce"] == nonce
            async with s.get(f"{CM}?labelSelector=test%3Dfailover") as r:
                listed = (await r.json())["items"]
            assert sorted(o["metadata"]["name"] for o in listed) == sorted(run.created)
    finally:
        if killed is not None:
            await etcd_cluster.restart_member(killed)
            await etcd_cluster.wait_healthy()
