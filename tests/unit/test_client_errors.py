"""master.client.errors: one translation from gRPC failures to the client's tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from master.client import errors
from master.client.errors import STATUS_TRAILER, from_rpc_error, from_status
from protos.meta.v1 import meta_pb2


@dataclass
class FakeRpcError:
    """Quacks like grpc.aio.AioRpcError: code(), details(), trailing_metadata()."""

    status_code: grpc.StatusCode
    text: str = ""
    trailers: Any = ()

    def code(self) -> grpc.StatusCode:
        return self.status_code

    def details(self) -> str:
        return self.text

    def trailing_metadata(self) -> Any:
        return self.trailers


def status(code: int, reason: str, message: str = "msg", **details: Any) -> meta_pb2.Status:
    return meta_pb2.Status(
        kind="Status", api_version="v1", status="Failure", code=code, reason=reason,
        message=message, details=meta_pb2.StatusDetails(**details),
    )


def trailer(st: meta_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    return (("other-key", b"x"), (STATUS_TRAILER, st.SerializeToString()))


# What the apiserver sends (master.apiserver.errors.grpc_code_name) -> our class.
WITH_STATUS = [
    (grpc.StatusCode.NOT_FOUND, status(404, "NotFound"), errors.NotFound, 404, False),
    (grpc.StatusCode.ALREADY_EXISTS, status(409, "AlreadyExists"), errors.AlreadyExists, 409, False),
    (grpc.StatusCode.ABORTED, status(409, "Conflict"), errors.Conflict, 409, False),
    (grpc.StatusCode.OUT_OF_RANGE, status(410, "Expired"), errors.Gone, 410, False),
    (grpc.StatusCode.INVALID_ARGUMENT, status(422, "Invalid"), errors.Invalid, 422, False),
    (grpc.StatusCode.INVALID_ARGUMENT, status(400, "BadRequest"), errors.BadRequest, 400, False),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, status(429, "TooManyRequests"), errors.TooManyRequests, 429, True),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, status(413, "RequestEntityTooLarge"), errors.APIError, 413, False),
    (grpc.StatusCode.UNAVAILABLE, status(503, "ServiceUnavailable"), errors.Unavailable, 503, True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, status(504, "Timeout"), errors.Timeout, 504, True),
    (grpc.StatusCode.INTERNAL, status(500, "InternalError"), errors.InternalError, 500, False),
    (grpc.StatusCode.UNIMPLEMENTED, status(405, "MethodNotAllowed"), errors.APIError, 405, False),
    # Reason unknown to us: the HTTP code decides.
    (grpc.StatusCode.ABORTED, status(409, "SomethingNew"), errors.Conflict, 409, False),
]


@pytest.mark.parametrize(("grpc_code", "st", "cls", "http", "retryable"), WITH_STATUS)
def test_the_status_trailer_decides(
    grpc_code: grpc.StatusCode, st: meta_pb2.Status, cls: type[errors.APIError], http: int,
    retryable: bool,
) -> None:
    err = from_rpc_error(FakeRpcError(grpc_code, "transport text", trailer(st)))
    assert type(err) is cls
    assert err.code == http
    assert err.reason == st.reason
    assert err.message == "msg"
    assert err.retryable is retryable
    assert err.grpc_code == grpc_code.name
    assert err.status == st


# A trailer-less answer (the transport, or a foreign server): the gRPC code decides.
WITHOUT_STATUS = [
    (grpc.StatusCode.NOT_FOUND, errors.NotFound, 404, "NotFound", False),
    (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists, 409, "AlreadyExists", False),
    (grpc.StatusCode.ABORTED, errors.Conflict, 409, "Conflict", False),
    (grpc.StatusCode.OUT_OF_RANGE, errors.Gone, 410, "Expired", False),
    (grpc.StatusCode.INVALID_ARGUMENT, errors.BadRequest, 400, "BadRequest", False),
    (grpc.StatusCode.UNAUTHENTICATED, errors.Unauthorized, 401, "Unauthorized", False),
    (grpc.StatusCode.PERMISSION_DENIED, errors.Forbidden, 403, "Forbidden", False),
    (grpc.StatusCode.UNAVAILABLE, errors.Unavailable, 503, "ServiceUnavailable", True),
    (grpc.StatusCode.CANCELLED, errors.Unavailable, 503, "ServiceUnavailable", True),
    (grpc.StatusCode.DEADLINE_EXCEEDED, errors.Timeout, 504, "Timeout", True),
    (grpc.StatusCode.UNKNOWN, errors.InternalError, 500, "InternalError", False),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.APIError, 413, "RequestEntityTooLarge", False),
    (grpc.StatusCode.UNIMPLEMENTED, errors.APIError, 405, "MethodNotAllowed", False),
]


@pytest.mark.parametrize(("grpc_code", "cls", "http", "reason", "retryable"), WITHOUT_STATUS)
def test_without_a_trailer_the_grpc_code_decides(
    grpc_code: grpc.StatusCode, cls: type[errors.APIError], http: int, reason: str, retryable: bool,
) -> None:
    err = from_rpc_error(FakeRpcError(grpc_code, "details from grpc"))
    assert type(err) is cls
    assert (err.code, err.reason, err.retryable) == (http, reason, retryable)
    assert str(err) == "details from grpc"
    assert err.status.code == http and err.status.message == "details from grpc"


def test_a_garbled_trailer_falls_back_to_the_grpc_code() -> None:
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "nope", ((STATUS_TRAILER, b"\xff\xff"),)))
    assert isinstance(err, errors.NotFound)
    assert err.message == "nope"


def test_invalid_carries_copies_of_its_causes() -> None:
    causes = [meta_pb2.StatusCause(reason="FieldValueRequired", message="Required value",
                                   field="spec.containers[0].name")]
    st = status(422, "Invalid", 'Pod "x" is invalid', name="x", kind="Pod", causes=causes)
    err = from_rpc_error(FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "", trailer(st)))
    assert isinstance(err, errors.Invalid)
    assert [c.field for c in err.causes] == ["spec.containers[0].name"]
    err.causes[0].field = "changed"
    assert err.causes[0].field == "spec.containers[0].name"


def test_a_real_aio_rpc_error_with_metadata_translates() -> None:
    st = status(410, "Expired", "too old resource version: 5 (90)")
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_TRAILER, st.SerializeToString())),
        details="too old",
    )
    err = from_rpc_error(exc)
    assert isinstance(err, errors.Gone)
    assert err.message == "too old resource version: 5 (90)"


@pytest.mark.parametrize(
    ("st", "cls"),
    [
        (status(410, "Expired"), errors.Gone),
        (status(410, "Gone"), errors.Gone),
        (status(410, ""), errors.Gone),
        (status(500, "InternalError"), errors.InternalError),
        (status(418, "Teapot"), errors.APIError),
    ],
)
def test_watch_error_statuses(st: meta_pb2.Status, cls: type[errors.APIError]) -> None:
    err = from_status(st)
    assert type(err) is cls
    assert err.code == st.code
    assert err.grpc_code == ""


def test_every_class_is_an_api_error_with_a_synthesized_status() -> None:
    for cls in [errors.NotFound, errors.Conflict, errors.Gone, errors.Unavailable]:
        err = cls("boom")
        assert isinstance(err, errors.APIError)
        assert err.status.reason == cls.default_reason
        assert err.status.code == cls.default_code
        assert "boom" in repr(err)
