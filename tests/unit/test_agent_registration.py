"""The agent's registration pieces against fakes: the register request, the
pod stream into a sink (initial list, SYNCED, changes, resume, 410 relist),
heartbeat re-registration, refusals, flag parsing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from master.client.errors import APIError
from node_agent.main import parse_args, parse_taints
from node_agent.registration import (
    NodeIdentity,
    RegistrationRefused,
    build_register_request,
    register,
    run_heartbeat,
    run_pod_stream,
)
from protos.core.v1 import core_pb2
from protos.node.v1 import node_pb2


def _pod(uid: str, rv: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.uid, pod.metadata.name, pod.metadata.resource_version = uid, uid, rv
    return pod


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def set_pods(self, pods: list[core_pb2.Pod]) -> None:
        self.calls.append(("set", [p.metadata.uid for p in pods]))

    def upsert_pod(self, pod: core_pb2.Pod) -> None:
        self.calls.append(("upsert", pod.metadata.uid))

    def remove_pod(self, uid: str) -> None:
        self.calls.append(("remove", uid))


class FakeStreamAPI:
    """Scripted WatchPods: one list of events per call; records the rv asked for."""

    def __init__(self, scripts: list[list[node_pb2.PodEvent]]) -> None:
        self.scripts = scripts
        self.asked: list[str] = []
        self.done = asyncio.Event()

    async def watch_pods(self, rv: str = "") -> AsyncIterator[node_pb2.PodEvent]:
        self.asked.append(rv)
        if not self.scripts:
            self.done.set()
            await asyncio.Event().wait()
        for ev in self.scripts.pop(0):
            yield ev


def ev(type_: str, uid: str = "", rv: str = "", **kw: object) -> node_pb2.PodEvent:
    return node_pb2.PodEvent(type=type_, pod=_pod(uid) if uid else None, resource_version=rv, **kw)  # type: ignore[arg-type]


async def test_pod_stream_lists_syncs_resumes_and_relists() -> None:
    api = FakeStreamAPI([
        [ev("ADDED", "a", "5"), ev("ADDED", "b", "6"), ev("SYNCED", rv="7"), ev("MODIFIED", "a", "8")],
        [ev("DELETED", "b", "9")],  # resumed at 8
        [ev("ERROR", code=410)],  # resumed at 9: too old
        [ev("ADDED", "c", "20"), ev("SYNCED", rv="21")],  # relisted
    ])
    sink = Sink()
    ready = asyncio.Event()
    task = asyncio.create_task(run_pod_stream(api, sink, ready=ready))
    await asyncio.wait_for(api.done.wait(), 5)
    task.cancel()
    assert ready.is_set()
    assert api.asked == ["", "8", "9", "", "21"]
    assert sink.calls == [("set", ["a", "b"]), ("upsert", "a"), ("remove", "b"), ("set", ["c"])]


class RecordingSleep:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        await asyncio.sleep(0)


async def test_a_bookmark_moves_the_resume_point_and_touches_no_pod() -> None:
    api = FakeStreamAPI([
        [ev("ADDED", "a", "5"), ev("SYNCED", rv="6"), ev("BOOKMARK", rv="40")],
        [ev("MODIFIED", "a", "41")],  # resumed from the bookmark
    ])
    sink = Sink()
    task = asyncio.create_task(run_pod_stream(api, sink))
    await asyncio.wait_for(api.done.wait(), 5)
    task.cancel()
    assert api.asked == ["", "40", "41"]
    assert sink.calls == [("set", ["a"]), ("upsert", "a")]


async def test_pod_stream_backs_off_when_the_server_ends_streams_at_once() -> None:
    # Three streams closed before any event, then a normal one: the agent waits
    # (growing) between the empty ones instead of spinning on the master.
    api = FakeStreamAPI([[], [], [], [ev("SYNCED", rv="3")]])
    clock = RecordingSleep()
    task = asyncio.create_task(run_pod_stream(api, Sink(), clock=clock))  # type: ignore[arg-type]
    await asyncio.wait_for(api.done.wait(), 5)
    task.cancel()
    assert clock.slept == [1.0, 2.0, 4.0]
    assert api.asked == ["", "", "", "", "3"]


class FakeRegAPI:
    def __init__(self, errors: list[APIError]) -> None:
        self.errors = errors
        self.calls = 0

    async def register(self, req: node_pb2.RegisterRequest) -> node_pb2.RegisterResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return node_pb2.RegisterResponse(pod_cidr="10.244.4.0/24")

    async def heartbeat(self) -> node_pb2.HeartbeatResponse:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return node_pb2.HeartbeatResponse(heartbeat_period_seconds=1)


class NoSleep:
    async def sleep(self, s: float) -> None:
        await asyncio.sleep(0)


async def test_register_retries_unavailable_and_stops_on_refusal() -> None:
    api = FakeRegAPI([APIError("down", grpc_code="UNAVAILABLE"), APIError("down", grpc_code="UNAVAILABLE")])
    resp = await register(api, node_pb2.RegisterRequest(node_name="n"), clock=NoSleep())  # type: ignore[arg-type]
    assert resp.pod_cidr == "10.244.4.0/24" and api.calls == 3
    api = FakeRegAPI([APIError("advertise_address 127.0.0.1 is a loopback address", grpc_code="INVALID_ARGUMENT")])
    with pytest.raises(RegistrationRefused, match="loopback"):
        await register(api, node_pb2.RegisterRequest(node_name="n"), clock=NoSleep())  # type: ignore[arg-type]


async def test_reregistration_with_another_cidr_is_refused() -> None:
    resp = await register(FakeRegAPI([]), node_pb2.RegisterRequest(node_name="n"), clock=NoSleep(),  # type: ignore[arg-type]
                          expect_pod_cidr="10.244.4.0/24")
    assert resp.pod_cidr == "10.244.4.0/24"
    with pytest.raises(RegistrationRefused, match="use 10.244.9.0/24"):
        await register(FakeRegAPI([]), node_pb2.RegisterRequest(node_name="n"), clock=NoSleep(),  # type: ignore[arg-type]
                       expect_pod_cidr="10.244.9.0/24")


async def test_heartbeat_reregisters_a_deleted_node() -> None:
    api = FakeRegAPI([APIError("not registered", grpc_code="FAILED_PRECONDITION"),
                      APIError("blip", grpc_code="UNAVAILABLE")])
    reregistered = asyncio.Event()

    async def rereg() -> None:
        reregistered.set()

    ready = asyncio.Event()
    task = asyncio.create_task(run_heartbeat(api, period_s=0.0, reregister=rereg, clock=NoSleep(),  # type: ignore[arg-type]
                                             ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    task.cancel()
    assert reregistered.is_set() and api.calls >= 3


def test_build_register_request() -> None:
    ident = NodeIdentity(node_name="n1", advertise_address="172.28.0.11", labels={"a": "b"},
                         capacity={"pods": "50"})
    req = build_register_request(ident, {"cpu": "2", "memory": "4000Ki", "kernel_version": "6.18",
                                         "os_image": "Debian", "architecture": "amd64"},
                                 runtime_version="docker://20.10")
    assert dict(req.capacity) == {"cpu": "2", "memory": "4000Ki", "pods": "50"}
    assert (req.advertise_address, req.kernel_version, req.container_runtime_version, req.kubelet_port) == (
        "172.28.0.11", "6.18", "docker://20.10", 10250)


def test_flags() -> None:
    args = parse_args(["--node-name", "n1", "--advertise-address", "172.28.0.11", "--labels", "zone=a,x=",
                       "--register-with-taints", "dedicated=infra:NoSchedule", "--control-plane"])
    assert args.state_dir == "/var/lib/flotilla-agent/n1"
    assert args.labels == {"zone": "a", "x": "", "node-role.kubernetes.io/control-plane": ""}
    assert [(t.key, t.value, t.effect) for t in args.register_with_taints] == [
        ("dedicated", "infra", "NoSchedule"), ("node-role.kubernetes.io/control-plane", "", "NoSchedule")]
    with pytest.raises(Exception):  # noqa: B017 - argparse's error type
        parse_taints("bad")
