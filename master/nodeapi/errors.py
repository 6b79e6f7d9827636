"""Refusals of the node API: an APIError (so the Status travels in the
trailer, as on the Objects face) that names its gRPC code explicitly,
because the node API distinguishes codes HTTP does not (FAILED_PRECONDITION
for "register first" or "this address needs --force").

    APIError (master.apiserver.errors)
    └── NodeRefusal      bad or refused node request; `grpc_code` is the answer
"""

from __future__ import annotations

from dataclasses import dataclass

from master.apiserver.errors import APIError

_HTTP = {"INVALID_ARGUMENT": (400, "BadRequest"), "ALREADY_EXISTS": (409, "AlreadyExists"),
         "FAILED_PRECONDITION": (412, "PreconditionFailed"), "PERMISSION_DENIED": (403, "Forbidden"),
         "UNAUTHENTICATED": (401, "Unauthorized"), "NOT_FOUND": (404, "NotFound"),
         "RESOURCE_EXHAUSTED": (507, "InsufficientStorage")}


@dataclass
class NodeRefusal(APIError):
    grpc_code: str = "INVALID_ARGUMENT"

    def grpc_code_name(self) -> str:
        return self.grpc_code


def refuse(grpc_code: str, message: str) -> NodeRefusal:
    http, reason = _HTTP.get(grpc_code, (400, "BadRequest"))
    return NodeRefusal(message, code=http, reason=reason, grpc_code=grpc_code)
