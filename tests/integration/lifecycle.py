"""Shared pieces for the lifecycle controller tests: an in-process master with
chosen controllers running against it, kubectl bound to it, and a poller.

`controlled_master(endpoints, controllers=[...], options={...})` yields a
`Controlled` (the master, a Client, the ControllerManager) and tears all of
it down, even when the test fails. `controllers_in_thread(target, [...])`
runs controllers against any master (e.g. a `master_process`) from a
synchronous test, on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import tempfile
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from master.client import Client
from master.controllers.manager import ControllerManager
from master.kubeconfig import write_kubeconfig
from tests.integration.harness import InProcessMaster, in_process_master, running

T = TypeVar("T")
DISPATCHER = Path("/usr/bin/kubectl")


@dataclass
class Controlled:
    master: InProcessMaster
    client: Client
    manager: ControllerManager
    workdir: Path

    def kubectl_binary(self) -> str:
        with urllib.request.urlopen(self.master.url + "/version", timeout=5) as resp:
            minor = json.load(resp)["minor"].rstrip("+")
        candidate = DISPATCHER.resolve().parent / f"kubectl.1.{minor}"
        return str(candidate) if candidate.exists() else str(DISPATCHER)

    async def kubectl(self, *args: str, stdin: str | None = None,
                      timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        kubeconfig = self.workdir / "kubeconfig"
        if not kubeconfig.exists():
            write_kubeconfig(kubeconfig, self.master.url)
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(self.workdir))

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run([self.kubectl_binary(), *args], input=stdin, capture_output=True,
                                  text=True, env=env, timeout=timeout_s, check=False)

        # Blocking calls run in a thread so that the in-process master keeps serving.
        return await asyncio.to_thread(run)


@contextlib.asynccontextmanager
async def controlled_master(
    endpoints: list[str], *, controllers: list[str], options: dict[str, dict[str, Any]] | None = None,
    default_toleration_seconds: int | None = 300,
) -> AsyncIterator[Controlled]:
    async with in_process_master(endpoints) as m:
        m.registry.default_toleration_seconds = default_toleration_seconds
        client = await Client.connect(m.grpc_target, wait_ready_s=10)
        manager = ControllerManager(client, enabled=controllers, options=options or {},
                                    resync_period_s=0)
        try:
            async with running(lambda ready: manager.run(ready=ready), what="controllers"):
                with tempfile.TemporaryDirectory(prefix="flotilla-lifecycle-") as tmp:
                    yield Controlled(m, client, manager, Path(tmp))
        finally:
            await client.close()


@contextlib.contextmanager
def controllers_in_thread(grpc_target: str, controllers: list[str], *,
                          options: dict[str, dict[str, Any]] | None = None,
                          timeout_s: float = 30) -> Iterator[None]:
    """Run `controllers` against the master at `grpc_target` until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        async with await Client.connect(grpc_target, wait_ready_s=10) as client:
            manager = ControllerManager(client, enabled=controllers, options=options or {},
                                        resync_period_s=0)
            started = asyncio.Event()
            task = asyncio.create_task(manager.run(ready=started))
            await started.wait()
            ready.set()
            await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="controllers", daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout_s) or failed:
            raise RuntimeError(f"controllers did not start: {failed}")
        yield
    finally:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()

        loop.call_soon_threadsafe(cancel_all)
        thread.join(timeout_s)
        loop.close()
