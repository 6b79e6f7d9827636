"""A local etcd cluster on loopback: start, stop, kill and restart its members.

Owns the etcd processes it spawns (Debian's /usr/bin/etcd 3.4) and nothing
else: it never touches a process it did not start (the CLI's `stop` checks
that each recorded PID is still an etcd serving this data directory before
signalling it). Tests use `EtcdCluster` directly (`async with EtcdCluster(dir,
base_port=free_port_block()) as c:`); `make up` and `flotctl` use the CLI:

    python -m deploy.etcd_cluster start  --data-dir DIR [--base-port N]
    python -m deploy.etcd_cluster status --data-dir DIR
    python -m deploy.etcd_cluster stop   --data-dir DIR

Port scheme: member i listens for clients on base_port + 10*i and for peers
on base_port + 10*i + 1 (2379/2380, 2389/2390, 2399/2400 by default).
Layout of the data directory: member-i/ (etcd's data), member-i.log (its
stderr, appended across restarts), and for the CLI `pids` (one PID per line,
member order) and `cluster.json` (ports, so `status`/`stop` need no flags).

Health is asked over etcd's JSON gateway on the client port (POST
/v3/maintenance/status and /v3/kv/range), so this module needs no gRPC.
It does not know about Flotilla's keys; the storage adapter is master/storage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

ETCD_BIN = Path("/usr/bin/etcd")
PORT_STRIDE = 10
DEFAULT_BASE_PORT = 2379
_POLL_S = 0.05


class EtcdClusterError(RuntimeError):
    """The cluster did not start, or a member died while we waited for it."""


@dataclass(frozen=True, slots=True)
class Member:
    index: int
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


def member_ports(base_port: int, index: int) -> tuple[int, int]:
    """(client port, peer port) of member `index`."""
    client = base_port + PORT_STRIDE * index
    return client, client + 1


def free_port_block(*, members: int = 3, low: int = 20000, high: int = 32000) -> int:
    """A base port in [low, high) whose every member port binds on 127.0.0.1 now.

    Random so that concurrent test runs rarely race for the same block; the
    ports are only checked, not held, so a caller should start soon after.
    The default range stays below Linux's ephemeral ports (32768+), which any
    outgoing connection could take in the meantime, and away from 2379.
    """
    span = PORT_STRIDE * members
    for _ in range(500):
        base = random.randrange(low, high - span)
        ports = [p for i in range(members) for p in member_ports(base, i)]
        if all(_port_is_free(p) for p in ports):
            return base
    raise EtcdClusterError(f"no free block of {members} etcd port pairs in [{low}, {high})")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EtcdCluster:
    """A `members`-strong etcd cluster on loopback, its data under `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        base_port: int = DEFAULT_BASE_PORT,
        members: int = 3,
        heartbeat_ms: int = 25,
        election_ms: int = 250,
        etcd_bin: Path = ETCD_BIN,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.base_port = base_port
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.etcd_bin = etcd_bin
        self.members = [self._member(i) for i in range(members)]
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * members

    def _member(self, i: int) -> Member:
        client, peer = member_ports(self.base_port, i)
        return Member(
            index=i,
            name=f"member-{i}",
            client_port=client,
            peer_port=peer,
            data_dir=self.data_dir / f"member-{i}",
            log_path=self.data_dir / f"member-{i}.log",
        )

    # --- what callers read -------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Every member's client address, "127.0.0.1:PORT", in member order."""
        return [m.endpoint for m in self.members]

    @property
    def pids(self) -> list[int | None]:
        """PID of each member's process while it runs, None when stopped/killed."""
        return [p.pid if p is not None and p.poll() is None else None for p in self._procs]

    def member_command(self, i: int) -> list[str]:
        m = self.members[i]
        initial = ",".join(f"{o.name}={o.peer_url}" for o in self.members)
        return [
            str(self.etcd_bin),
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.client_url}",
            f"--advertise-client-urls={m.client_url}",
            f"--listen-peer-urls={m.peer_url}",
            f"--initial-advertise-peer-urls={m.peer_url}",
            f"--initial-cluster={initial}",
            # Ignored by etcd once member-i/ holds a WAL: a restart rejoins.
            "--initial-cluster-state=new",
            f"--initial-cluster-token=flotilla-{self.base_port}",
            f"--heartbeat-interval={self.heartbeat_ms}",
            f"--election-timeout={self.election_ms}",
            # Room for any object the apiserver admits (3 MiB bodies).
            "--max-request-bytes=4194304",
            "--logger=zap",
            "--log-outputs=stderr",
        ]

    # --- lifecycle -----------------------------------------------------------

    async def start(self, *, timeout_s: float = 20) -> None:
        """Spawn every member and return once the cluster serves linearizable reads."""
        if not self.etcd_bin.exists():
            raise EtcdClusterError(f"{self.etcd_bin} is missing (Debian package etcd-server)")
        if any(pid is not None for pid in self.pids):
            raise EtcdClusterError("cluster already started; use restart_member() or stop()")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(len(self.members)):
                self._spawn(i)
            await self.wait_healthy(timeout_s=timeout_s)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, *, timeout_s: float = 10) -> None:
        """SIGTERM the followers, then the leader; SIGKILL what outlives timeout_s.

        Every member is reaped before this returns. The order matters: a
        leader told to stop first hands leadership to a follower, and if that
        follower is exiting too the leader waits ~5 s for a transfer that
        never completes.
        """
        procs = {p.pid: p for p in self._procs if p is not None and p.poll() is None}
        by_index = {i: p.pid for i, p in enumerate(self._procs) if p is not None and p.pid in procs}
        leader = await self._leader_once() if procs else None
        await terminate_members(
            by_index,
            leader=leader,
            alive=lambda pid: procs[pid].poll() is None,
            timeout_s=timeout_s,
        )
        self._procs = [None] * len(self.members)

    def kill_member(self, i: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` to member i (no wait: the caller decides what to wait for)."""
        p = self._procs[i]
        if p is None or p.poll() is not None:
            raise EtcdClusterError(f"member {i} is not running")
        p.send_signal(sig)

    async def restart_member(self, i: int, *, timeout_s: float = 20) -> None:
        """(Re)start member i on its data (SIGKILLing it first if it still runs)
        and wait until it serves linearizable reads through a leader."""
        p = self._procs[i]
        if p is not None and p.poll() is None:
            p.kill()
            await _wait_until(lambda: p.poll() is not None, timeout_s)
        self._spawn(i)
        await _wait_until_async(lambda: self._member_ready(i), timeout_s, what=f"member {i}")

    def _spawn(self, i: int) -> None:
        m = self.members[i]
        # etcd reads ETCD_* variables as flags and refuses duplicates: start clean.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with m.log_path.open("ab") as log:
            self._procs[i] = subprocess.Popen(
                self.member_command(i),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                # Own session: a Ctrl-C on the caller's terminal does not reach
                # the members, and the CLI can leave them running after it exits.
                start_new_session=True,
            )

    # --- health --------------------------------------------------------------

    async def wait_healthy(self, *, timeout_s: float = 20) -> None:
        """Wait until every running member agrees on a leader and serves a read.

        A linearizable read proves what a test write would (the leader has
        committed in its term and has a quorum) without bumping the revision
        that tests reason about.
        """
        running = [i for i, pid in enumerate(self.pids) if pid is not None]

        async def ready() -> bool:
            self._raise_if_exited(running)
            statuses = [await self.member_status(i) for i in running]
            leaders = {s["leader"] for s in statuses if s is not None}
            if None in statuses or len(leaders) != 1 or "0" in leaders:
                return False
            return all([await self._linearizable_read(i) for i in running])

        await _wait_until_async(ready, timeout_s, what="etcd cluster")

    async def _member_ready(self, i: int) -> bool:
        self._raise_if_exited([i])
        status = await self.member_status(i)
        if status is None or status.get("leader", "0") == "0":
            return False
        return await self._linearizable_read(i)

    def _raise_if_exited(self, indexes: list[int]) -> None:
        for i in indexes:
            p = self._procs[i]
            if p is None or p.poll() is not None:
                tail = _tail(self.members[i].log_path)
                raise EtcdClusterError(f"etcd member {i} exited; log tail:\n{tail}")

    async def member_status(self, i: int) -> dict[str, Any] | None:
        """Member i's /v3/maintenance/status as JSON, None when it does not answer."""
        return await _post_json(self.members[i].client_url + "/v3/maintenance/status", {})

    async def _linearizable_read(self, i: int) -> bool:
        key = base64.b64encode(b"health").decode()
        body = await _post_json(self.members[i].client_url + "/v3/kv/range", {"key": key})
        return body is not None and "header" in body

    async def leader_index(self, *, timeout_s: float = 10) -> int:
        """Index of the member that currently leads (waits for an election)."""
        result: list[int] = []

        async def found() -> bool:
            leader = await self._leader_once()
            if leader is not None:
                result.append(leader)
            return leader is not None

        await _wait_until_async(found, timeout_s, what="etcd leader")
        return result[0]

    async def _leader_once(self) -> int | None:
        by_id: dict[str, int] = {}
        leader = None
        for i, pid in enumerate(self.pids):
            status = await self.member_status(i) if pid is not None else None
            if status is not None:
                by_id[status["header"]["member_id"]] = i
                leader = status.get("leader", leader)
        return by_id.get(leader) if leader is not None else None

    async def __aenter__(self) -> EtcdCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


# --- small helpers -------------------------------------------------------------


async def _post_json(url: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    timeout = aiohttp.ClientTimeout(total=1.0)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, json=payload) as resp:
                if resp.status != 200:
                    return None
                body: dict[str, Any] = await resp.json(content_type=None)
                return body
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def terminate_members(
    pids: dict[int, int],
    *,
    leader: int | None,
    alive: Callable[[int], bool],
    timeout_s: float,
) -> list[int]:
    """Stop member processes ({index: pid}): followers, then the leader.

    SIGTERM each group and wait for it; SIGKILL whatever is alive once
    timeout_s has passed. Returns the PIDs still alive at the end (none,
    unless the kernel refuses to kill them).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    followers = [pid for i, pid in pids.items() if i != leader]
    groups = [followers, [pids[leader]] if leader in pids else []]
    for group in groups:
        for pid in group:
            _signal(pid, signal.SIGTERM)
        await _wait_until(_all_gone(group, alive), deadline - loop.time())
    left = [pid for pid in pids.values() if alive(pid)]
    for pid in left:
        _signal(pid, signal.SIGKILL)
    await _wait_until(_all_gone(left, alive), timeout_s)
    return [pid for pid in left if alive(pid)]


def _all_gone(group: list[int], alive: Callable[[int], bool]) -> Callable[[], bool]:
    return lambda: not any(alive(pid) for pid in group)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


async def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def _wait_until_async(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float, *, what: str
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() >= deadline:
            raise EtcdClusterError(f"{what} not ready after {timeout_s} s")
        await asyncio.sleep(_POLL_S)


def _tail(path: Path, *, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the CLI: daemonized members whose PIDs live in DIR/pids -------------------


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "pids"


def _config_file(data_dir: Path) -> Path:
    return data_dir / "cluster.json"


def _read_pids(data_dir: Path) -> list[int]:
    try:
        text = _pid_file(data_dir).read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split() if line.strip()]


def _is_our_etcd(pid: int, data_dir: Path) -> bool:
    """True when pid is alive, not a zombie, and an etcd serving data_dir.

    Guards `stop` against a PID that the kernel has since given to another
    process.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    wanted = f"--data-dir={data_dir.resolve()}/member-".encode()
    return state != "Z" and any(arg.startswith(wanted) for arg in cmdline)


def _load_cluster(data_dir: Path) -> EtcdCluster:
    config = json.loads(_config_file(data_dir).read_text())
    return EtcdCluster(data_dir, base_port=config["base_port"], members=config["members"])


async def _cli_start(data_dir: Path, *, base_port: int, members: int) -> int:
    data_dir = data_dir.resolve()
    if any(_is_our_etcd(pid, data_dir) for pid in _read_pids(data_dir)):
        print(f"etcd already running from {data_dir} (use `status` or `stop`)")
        return 0
    cluster = EtcdCluster(data_dir, base_port=base_port, members=members)
    try:
        await cluster.start()
    except EtcdClusterError as exc:
        print(f"etcd did not start: {exc}", file=sys.stderr)
        return 1
    pids = [pid for pid in cluster.pids if pid is not None]
    _pid_file(data_dir).write_text("".join(f"{pid}\n" for pid in pids))
    config = {"base_port": base_port, "members": members, "endpoints": cluster.endpoints}
    _config_file(data_dir).write_text(json.dumps(config, indent=2) + "\n")
    print(f"etcd up: endpoints {','.join(cluster.endpoints)} pids {' '.join(map(str, pids))}")
    return 0


async def _cli_stop(data_dir: Path, *, timeout_s: float = 10) -> int:
    data_dir = data_dir.resolve()
    recorded = _read_pids(data_dir)
    ours = {i: pid for i, pid in enumerate(recorded) if _is_our_etcd(pid, data_dir)}
    leader = None
    if ours and _config_file(data_dir).exists():
        cluster = _load_cluster(data_dir)
        statuses = [await cluster.member_status(i) for i in ours]
        ids = {s["header"]["member_id"]: i for i, s in zip(ours, statuses, strict=True) if s}
        leader = next((ids.get(s["leader"]) for s in statuses if s), None)
    left = await terminate_members(
        ours, leader=leader, alive=lambda pid: _is_our_etcd(pid, data_dir), timeout_s=timeout_s
    )
    _pid_file(data_dir).unlink(missing_ok=True)
    print(
        f"etcd stopped: {len(ours) - len(left)} member(s) ended"
        + (f", still alive: {left}" if left else "")
    )
    return 1 if left else 0


async def _cli_status(data_dir: Path) -> int:
    data_dir = data_dir.resolve()
    if not _config_file(data_dir).exists():
        print(f"no cluster recorded in {data_dir}")
        return 1
    cluster = _load_cluster(data_dir)
    pids = _read_pids(data_dir) + [0] * len(cluster.members)
    healthy = True
    for m, pid in zip(cluster.members, pids, strict=False):
        alive = pid != 0 and _is_our_etcd(pid, data_dir)
        status = await cluster.member_status(m.index) if alive else None
        role = (
            "-"
            if status is None
            else ("leader" if status["leader"] == status["header"]["member_id"] else "follower")
        )
        healthy = healthy and status is not None
        print(f"{m.name} {m.endpoint} pid={pid or '-'} {'running' if alive else 'stopped'} {role}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.etcd_cluster")
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    parser.add_argument("--members", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "start":
        return asyncio.run(
            _cli_start(args.data_dir, base_port=args.base_port, members=args.members)
        )
    if args.command == "stop":
        return asyncio.run(_cli_stop(args.data_dir))
    return asyncio.run(_cli_status(args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
