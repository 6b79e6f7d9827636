"""The client's exception tree: every API failure a caller can catch.

The apiserver's gRPC face answers errors with a gRPC status code and, in the
trailing metadata key `flotilla-status-bin`, a serialized
flotilla.meta.v1.Status (Kubernetes' error body: code, reason, message,
details with causes). `from_rpc_error` turns a grpc.aio.AioRpcError into one
of the classes below, once, inside `master.client.client`; `from_status` does
the same for a watch ERROR event. Nothing else in the code base looks at gRPC
status codes.

Tree (HTTP code, `retryable`):
    APIError                        anything else (code from the server)
      BadRequest        400
      Unauthorized      401
      Forbidden         403
      NotFound          404         "not found" means deleted, for a sync(key)
      AlreadyExists     409
      Conflict          409         stale resourceVersion: re-read and retry
      Gone              410         resourceVersion too old: relist
      Invalid           422         field causes in `causes`
      TooManyRequests   429  retryable
      InternalError     500
      Unavailable       503  retryable   (also: connection lost, stream cancelled)
      Timeout           504  retryable   (also: deadline exceeded)

Classification prefers the Status reason, then its HTTP code, then the gRPC
code (a server that sent no trailer, or the transport itself).

Pure: imports no grpc; it reads an rpc error through the three methods every
grpc.RpcError call object has (code, details, trailing_metadata).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from google.protobuf.message import DecodeError

from protos.meta.v1 import meta_pb2

STATUS_TRAILER = "flotilla-status-bin"


class APIError(Exception):
    """An API call failed. `status` is the server's Status (or one built here)."""

    default_code: ClassVar[int] = 500
    default_reason: ClassVar[str] = "InternalError"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str | None = None,
        status: meta_pb2.Status | None = None,
        grpc_code: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.reason = reason if reason is not None else self.default_reason
        self.grpc_code = grpc_code  # grpc.StatusCode name, "" when not from an RPC
        self.status = status if status is not None else self._synthesize_status()

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code}, reason={self.reason!r})"

    @property
    def causes(self) -> list[meta_pb2.StatusCause]:
        """Field problems (Invalid); copies, so callers may keep them."""
        return [_copy_cause(c) for c in self.status.details.causes]

    @property
    def retry_after_seconds(self) -> int:
        return self.status.details.retry_after_seconds

    def _synthesize_status(self) -> meta_pb2.Status:
        return meta_pb2.Status(
            api_version="v1",
            kind="Status",
            status="Failure",
            message=self.message,
            reason=self.reason,
            code=self.code,
        )


class BadRequest(APIError):
    default_code, default_reason = 400, "BadRequest"


class Unauthorized(APIError):
    default_code, default_reason = 401, "Unauthorized"


class Forbidden(APIError):
    default_code, default_reason = 403, "Forbidden"


class NotFound(APIError):
    default_code, default_reason = 404, "NotFound"


class AlreadyExists(APIError):
    default_code, default_reason = 409, "AlreadyExists"


class Conflict(APIError):
    default_code, default_reason = 409, "Conflict"


class Gone(APIError):
    default_code, default_reason = 410, "Expired"


class Invalid(APIError):
    default_code, default_reason = 422, "Invalid"


class TooManyRequests(APIError):
    default_code, default_reason = 429, "TooManyRequests"
    retryable = True


class InternalError(APIError):
    default_code, default_reason = 500, "InternalError"


class Unavailable(APIError):
    default_code, default_reason = 503, "ServiceUnavailable"
    retryable = True


class Timeout(APIError):
    default_code, default_reason = 504, "Timeout"
    retryable = True


_BY_REASON: dict[str, type[APIError]] = {
    "BadRequest": BadRequest,
    "Unauthorized": Unauthorized,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "AlreadyExists": AlreadyExists,
    "Conflict": Conflict,
    "Expired": Gone,
    "Gone": Gone,
    "Invalid": Invalid,
    "TooManyRequests": TooManyRequests,
    "InternalError": InternalError,
    "ServiceUnavailable": Unavailable,
    "Timeout": Timeout,
}

_BY_HTTP: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
    500: InternalError,
    503: Unavailable,
    504: Timeout,
}

# What the transport or a trailer-less server means by each gRPC code. The
# apiserver's own mapping (master.apiserver.errors) sends 410 as OUT_OF_RANGE
# and 409 Conflict as ABORTED; the trailer disambiguates 400 from 422.
_BY_GRPC: dict[str, type[APIError]] = {
    "INVALID_ARGUMENT": BadRequest,
    "UNAUTHENTICATED": Unauthorized,
    "PERMISSION_DENIED": Forbidden,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": AlreadyExists,
    "ABORTED": Conflict,
    "FAILED_PRECONDITION": Conflict,
    "OUT_OF_RANGE": Gone,
    "INTERNAL": InternalError,
    "UNKNOWN": InternalError,
    "DATA_LOSS": InternalError,
    "UNAVAILABLE": Unavailable,
    # The server went away mid-call (shutdown, GOAWAY): the call may be retried.
    "CANCELLED": Unavailable,
    "DEADLINE_EXCEEDED": Timeout,
}

# Codes that only the transport produces without a Status: kept permanent.
_TRANSPORT_ONLY: dict[str, tuple[int, str]] = {
    # Message larger than the channel's limit: retrying cannot help.
    "RESOURCE_EXHAUSTED": (413, "RequestEntityTooLarge"),
    "UNIMPLEMENTED": (405, "MethodNotAllowed"),
}


class RpcErrorLike(Protocol):
    """The part of grpc.aio.AioRpcError (and grpc.RpcError calls) we read."""

    def code(self) -> Any: ...

    def details(self) -> str | None: ...

    def trailing_metadata(self) -> Any: ...


def from_rpc_error(exc: RpcErrorLike) -> APIError:
    """The APIError for a failed RPC; raise it `from exc`."""
    grpc_code = _code_name(exc.code())
    status = _status_from_trailers(exc.trailing_metadata())
    if status is not None:
        return _from_status(status, grpc_code=grpc_code)
    message = exc.details() or grpc_code or "unknown error"
    if grpc_code in _TRANSPORT_ONLY:
        code, reason = _TRANSPORT_ONLY[grpc_code]
        return APIError(message, code=code, reason=reason, grpc_code=grpc_code)
    cls = _BY_GRPC.get(grpc_code, InternalError)
    return cls(message, grpc_code=grpc_code)


def from_status(status: meta_pb2.Status) -> APIError:
    """The APIError for a Status (a watch ERROR event's object)."""
    return _from_status(status, grpc_code="")


def _from_status(status: meta_pb2.Status, *, grpc_code: str) -> APIError:
    cls = _BY_REASON.get(status.reason) or _BY_HTTP.get(status.code)
    if cls is None:
        cls = _BY_GRPC.get(grpc_code, APIError)
    message = status.message or status.reason or "unknown error"
    return cls(
        message,
        code=status.code or cls.default_code,
        reason=status.reason or cls.default_reason,
        status=status,
        grpc_code=grpc_code,
    )


def _code_name(code: Any) -> str:
    # grpc.StatusCode is an Enum; accept a bare name too (fakes, tests).
    if code is None:
        return ""
    return str(getattr(code, "name", code))


def _status_from_trailers(metadata: Any) -> meta_pb2.Status | None:
    for key, value in _pairs(metadata):
        if key != STATUS_TRAILER:
            continue
        raw = value if isinstance(value, bytes) else str(value).encode()
        try:
            status: meta_pb2.Status = meta_pb2.Status.FromString(raw)
        except DecodeError:
            return None  # a garbled trailer: fall back to the gRPC code
        return status
    return None


def _pairs(metadata: Any) -> Iterable[tuple[str, Any]]:
    if not metadata:
        return ()
    if isinstance(metadata, dict):
        return metadata.items()
    return (tuple(item) for item in metadata)  # grpc.aio.Metadata, tuple of pairs


def _copy_cause(cause: meta_pb2.StatusCause) -> meta_pb2.StatusCause:
    out = meta_pb2.StatusCause()
    out.CopyFrom(cause)
    return out
