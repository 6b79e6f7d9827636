"""Small pure helpers of the runtime, the agent and the apiserver's pod proxy."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format

from master.apiserver import errors
from master.apiserver.rest.podproxy import agent_address, pick_container
from node_agent.pods.starting import default_pull_policy
from node_agent.runtime.docker import has_registry_host, parse_docker_time, pull_source
from node_agent.runtime.images import PAUSE_INIT, render_rootfs
from protos.core.v1 import core_pb2
from tests.unit.pod_fixtures import make_pod


@pytest.mark.parametrize("image,host", [("busybox:1", False), ("library/busybox", False), ("a.b/c:1", True),
                                        ("127.0.0.1:5000/x:1", True), ("localhost/x", True), ("x/y/z", False)])
def test_registry_host(image: str, host: bool) -> None:
    assert has_registry_host(image) == host


def test_pull_source() -> None:
    assert pull_source("busybox:1", "") is None
    assert pull_source("busybox:1", "127.0.0.1:5000/") == "127.0.0.1:5000/busybox:1"
    assert pull_source("r.example/x:1", "127.0.0.1:5000") == "r.example/x:1"


@pytest.mark.parametrize("image,policy", [("busybox", "Always"), ("busybox:latest", "Always"),
                                          ("busybox:1.36", "IfNotPresent"), ("127.0.0.1:5000/x", "Always"),
                                          ("x@sha256:abc", "IfNotPresent")])
def test_default_pull_policy(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_docker_time() -> None:
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("2026-12-01T06:09:44.258907123Z") == datetime(2026, 12, 1, 6, 9, 44, 258907, tzinfo=UTC)
    assert parse_docker_time("2026-12-01T06:09:44Z") == datetime(2026, 12, 1, 6, 9, 44, tzinfo=UTC)


def test_pause_rootfs() -> None:
    with tarfile.open(fileobj=io.BytesIO(render_rootfs(with_applets=False, extra_files={"pause": PAUSE_INIT}))) as t:
        names = set(t.getnames())
        assert {"bin/busybox", "bin/sh", "bin/sleep", "pause", "tmp", "etc/passwd"} <= names
        assert t.getmember("pause").mode & 0o111
        assert t.getmember("bin/sh").linkname == "/bin/busybox"


def test_pick_container() -> None:
    one = make_pod("one")
    assert pick_container(one, "") == "app"
    two = make_pod("two", containers=[{"name": "a", "image": "i"}, {"name": "b", "image": "i"}],
                   initContainers=[{"name": "init", "image": "i"}])
    with pytest.raises(errors.APIError, match=r"choose one of: \[a b\]"):
        pick_container(two, "")
    assert pick_container(two, "init") == "init"
    with pytest.raises(errors.APIError, match="container zz is not valid for pod two"):
        pick_container(two, "zz")


def test_agent_address() -> None:
    node = core_pb2.Node()
    json_format.ParseDict({"metadata": {"name": "n"}, "status": {
        "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.5"}]}}, node)
    assert agent_address(node) == ("10.0.0.5", 10250)
    node.status.daemon_endpoints.kubelet_endpoint.port = 12345
    assert agent_address(node) == ("10.0.0.5", 12345)
    with pytest.raises(errors.APIError, match="no InternalIP"):
        agent_address(core_pb2.Node())
