"""NodeClient (the real agent's NodeAPI) treats "gone" the way ClientNodeAPI and
FakeNodeAPI do: a missing ConfigMap or Secret is None (the worker reports
CreateContainerConfigError), a pod that is gone or replaced is not an error."""

from __future__ import annotations

from typing import Any

import pytest

from master.client.errors import Conflict, NotFound, Unavailable
from node_agent.apiclient import NodeClient
from protos.core.v1 import core_pb2


class _Channel:
    """Enough of a grpc.aio.Channel for NodesStub's constructor."""

    def __getattr__(self, _name: str) -> Any:
        return lambda *a, **k: None


class _Objects:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get(self, cls: type, name: str, *, namespace: str = "") -> Any:
        raise self.error


def _client(objects_error: Exception, unary_error: Exception) -> NodeClient:
    nc = NodeClient(_Objects(objects_error), _Channel(), node_name="n1")  # type: ignore[arg-type]

    async def unary(method: Any, request: Any) -> Any:
        raise unary_error

    nc._unary = unary  # type: ignore[method-assign]
    return nc


def _pod() -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "p", "default", "u1"
    return pod


@pytest.mark.parametrize("gone", [NotFound("pods \"p\" not found"), NotFound("pods \"p\" with UID u1 not found")])
async def test_a_pod_that_is_gone_is_not_an_error(gone: Exception) -> None:
    nc = _client(NotFound("x"), gone)
    assert await nc.update_pod_status(_pod()) is None
    await nc.delete_pod(_pod())


async def test_a_status_write_the_master_could_not_make_is_raised_so_it_is_sent_again() -> None:
    nc = _client(NotFound("x"), Conflict("too many concurrent writers; try again"))
    with pytest.raises(Conflict):
        await nc.update_pod_status(_pod())


async def test_missing_config_map_and_secret_are_none() -> None:
    nc = _client(NotFound('configmaps "cm" not found'), NotFound("x"))
    assert await nc.get_config_map("default", "cm") is None
    assert await nc.get_secret("default", "s") is None


async def test_other_errors_still_raise() -> None:
    nc = _client(Unavailable("master down"), Unavailable("master down"))
    with pytest.raises(Unavailable):
        await nc.get_config_map("default", "cm")
    with pytest.raises(Unavailable):
        await nc.delete_pod(_pod())
    with pytest.raises(Unavailable):
        await nc.update_pod_status(_pod())
