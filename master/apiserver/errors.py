"""API errors: the one exception tree of the apiserver boundary.

Every failure a client can cause or see is an `APIError` carrying what
Kubernetes puts in a `Status` body: HTTP code, reason, message and details
(name, group, kind, causes). REST renders it with `to_status()`; gRPC maps
`code` to a gRPC status code with `grpc_code_name()` and ships the Status in
trailing metadata. Storage errors are translated into these once, in the
registry (`from_store_error`), never in the HTTP or gRPC handlers.

Tree:
    APIError
      BadRequest (400), NotFound (404), MethodNotAllowed (405),
      NotAcceptable (406), AlreadyExists (409), Conflict (409), Gone (410),
      RequestEntityTooLarge (413), UnsupportedMediaType (415),
      Invalid (422), TooManyRequests (429), InternalError (500),
      ServiceUnavailable (503), Timeout (504)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field problem, as in Status.details.causes."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


@dataclass
class APIError(Exception):
    message: str
    code: int = 500
    reason: str = "InternalError"
    name: str = ""
    group: str = ""
    kind: str = ""  # Kubernetes puts the resource (plural) or the Kind here
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int = 0

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after_seconds:
            details["retryAfterSeconds"] = self.retry_after_seconds
        if details:
            status["details"] = details
        return status

    def grpc_code_name(self) -> str:
        """The grpc.StatusCode member name for this error."""
        if self.reason == "AlreadyExists":
            return "ALREADY_EXISTS"
        if self.reason == "Conflict":
            return "ABORTED"
        return _GRPC_BY_HTTP.get(self.code, "UNKNOWN")


_GRPC_BY_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    406: "INVALID_ARGUMENT",
    409: "ABORTED",
    410: "OUT_OF_RANGE",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _resource_ref(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def BadRequest(message: str, *, causes: list[Cause] | None = None) -> APIError:
    return APIError(message, 400, "BadRequest", causes=causes or [])


def NotFound(resource: str, name: str, *, group: str = "") -> APIError:
    ref = _resource_ref(resource, group)
    msg = f'{ref} "{name}" not found' if name else "the server could not find the requested resource"
    return APIError(msg, 404, "NotFound", name=name, group=group, kind=resource)


def PathNotFound(message: str = "the server could not find the requested resource") -> APIError:
    return APIError(message, 404, "NotFound")


def MethodNotAllowed(message: str) -> APIError:
    return APIError(message, 405, "MethodNotAllowed")


def NotAcceptable(message: str) -> APIError:
    return APIError(message, 406, "NotAcceptable")


def AlreadyExists(resource: str, name: str, *, group: str = "") -> APIError:
    ref = _resource_ref(resource, group)
    return APIError(
        f'{ref} "{name}" already exists', 409, "AlreadyExists", name=name, group=group, kind=resource
    )


def Conflict(resource: str, name: str, detail: str, *, group: str = "") -> APIError:
    ref = _resource_ref(resource, group)
    return APIError(
        f'Operation cannot be fulfilled on {ref} "{name}": {detail}',
        409,
        "Conflict",
        name=name,
        group=group,
        kind=resource,
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def Gone(message: str) -> APIError:
    return APIError(message, 410, "Expired")


def TooLarge(message: str = "Request entity too large: limit is 3145728") -> APIError:
    return APIError(message, 413, "RequestEntityTooLarge")


def UnsupportedMediaType(content_type: str) -> APIError:
    return APIError(
        f'the body of the request was in an unknown format - accepted media types include: '
        f'application/json, application/yaml, application/apply-patch+yaml, '
        f'application/merge-patch+json, application/strategic-merge-patch+json, '
        f'application/json-patch+json (got "{content_type}")',
        415,
        "UnsupportedMediaType",
    )


def Invalid(kind: str, name: str, causes: list[Cause], *, group: str = "") -> APIError:
    """422: `Pod "x" is invalid: spec.containers[0].name: Required value`."""
    parts = []
    for c in causes:
        parts.append(f"{c.field}: {c.message}" if c.field else c.message)
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return APIError(
        f'{kind} "{name}" is invalid: {summary}',
        422,
        "Invalid",
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def InternalError(message: str) -> APIError:
    return APIError(f"Internal error occurred: {message}", 500, "InternalError")


def ServiceUnavailable(message: str) -> APIError:
    return APIError(message, 503, "ServiceUnavailable", retry_after_seconds=1)


def Timeout(message: str) -> APIError:
    return APIError(message, 504, "Timeout")


def required(field_path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", field_path)


def invalid(field_path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_go_repr(value)}: {detail}", field_path)


def not_supported(field_path: str, value: Any, supported: list[str]) -> Cause:
    vals = ", ".join(f'"{s}"' for s in supported)
    return Cause(
        "FieldValueNotSupported", f"Unsupported value: {_go_repr(value)}: supported values: {vals}", field_path
    )


def forbidden(field_path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", field_path)


def duplicate(field_path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_go_repr(value)}", field_path)


def immutable(field_path: str) -> Cause:
    return Cause("FieldValueInvalid", "Invalid value: field is immutable", field_path)


def _go_repr(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
