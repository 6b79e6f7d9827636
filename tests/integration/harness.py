"""Running a real master for integration tests.

Two shapes:
* `master_process(...)`: `flotilla-master` as a subprocess on free ports,
  against the session's etcd cluster under a key prefix of its own, with a
  kubeconfig; for tests that drive it with kubectl or the Python client.
* `InProcessMaster`: the apiserver component inside the test's event loop,
  over a PrefixedStore on the same etcd; for tests that need to reach into
  the registry or run thousands of requests quickly.

Both clean up: the subprocess is terminated (then killed) and its keys are
left under a unique prefix nobody else reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from master.apiserver.server import APIServer, APIServerConfig
from master.storage.etcd import EtcdStore
from master.storage.prefixed import PrefixedStore

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MasterProcess:
    proc: subprocess.Popen[bytes]
    rest_port: int
    grpc_port: int
    kubeconfig: Path
    log_path: Path
    prefix: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def env(self) -> dict[str, str]:
        """Environment for kubectl: this kubeconfig and a private discovery cache."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HOME"] = str(self.kubeconfig.parent)
        return env


@contextlib.contextmanager
def master_process(endpoints: list[str], tmp: Path, *, timeout_s: float = 30, prefix: str = "",
                   extra_args: tuple[str, ...] = (), name: str = "master") -> Iterator[MasterProcess]:
    """`prefix` shares one cluster between several masters; `name` keeps their files apart."""
    rest, grpc_port = free_port(), free_port()
    prefix = prefix or f"/test-{uuid.uuid4().hex[:12]}"
    kubeconfig = tmp / ("kubeconfig" if name == "master" else f"{name}.kubeconfig")
    log_path = tmp / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "master.main", "--etcd-endpoints", ",".join(endpoints),
         "--etcd-prefix", prefix, "--bind-address", "127.0.0.1",
         "--rest-port", str(rest), "--grpc-port", str(grpc_port), "--kubeconfig-out", str(kubeconfig),
         *extra_args],
        # its own session: a Ctrl-C on the test or benchmark reaches only this
        # process, whose cleanup below stops the master (SIGTERM, then SIGKILL)
        stdout=log, stderr=log, cwd=REPO, start_new_session=True,
    )
    m = MasterProcess(proc, rest, grpc_port, kubeconfig, log_path, prefix)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"master exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(m.url + "/readyz", timeout=1) as resp:
                    if resp.status == 200 and kubeconfig.exists():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"master not ready after {timeout_s}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield m
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@dataclass
class InProcessMaster:
    server: APIServer
    store: PrefixedStore

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def registry(self):  # noqa: ANN201 - test convenience
        return self.server.registry


T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, timeout_s: float = 30,
                     what: str = "condition") -> T:
    """Poll `check` until it returns something truthy (its value) or time runs out."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = await check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s}s (last: {last!r})")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, object]], *, what: str, timeout_s: float = 30,
    quiet_exit: bool = False,
) -> AsyncIterator[None]:
    """Run `run(ready)` as a task for the body; fail if it dies or is not ready in time.

    On exit the task is cancelled and awaited; `quiet_exit` also swallows an
    error it raises then (for harness pieces whose teardown races the master's).
    """
    ready = asyncio.Event()
    task = asyncio.create_task(run(ready))
    waiter = asyncio.create_task(ready.wait())
    try:
        done, _ = await asyncio.wait([task, waiter], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        if not ready.is_set():
            raise RuntimeError(f"{what} did not become ready")
        yield
    finally:
        waiter.cancel()
        task.cancel()
        suppressed: tuple[type[BaseException], ...] = (
            (asyncio.CancelledError, Exception) if quiet_exit else (asyncio.CancelledError,))
        with contextlib.suppress(*suppressed):
            await task


@contextlib.asynccontextmanager
async def in_process_master(
    endpoints: list[str], *, config: APIServerConfig | None = None
) -> AsyncIterator[InProcessMaster]:
    etcd = await EtcdStore.open(endpoints)
    store = PrefixedStore(etcd, f"/test-{uuid.uuid4().hex[:12]}")
    server = APIServer(config or APIServerConfig("127.0.0.1", 0, 0), store)
    try:
        async with running(lambda ready: server.run(ready=ready), what="in-process master"):
            yield InProcessMaster(server, store)
    finally:
        await etcd.close()
