"""Building HTTP answers: JSON objects, lists, Tables, Status. Pure-ish
(aiohttp Response objects only; no I/O)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from master.apiserver import errors, tables
from master.apiserver.objects import StoredObject
from protos.resources import ResourceInfo

JSON_CT = "application/json"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wants_table(accept: str) -> bool:
    """kubectl's human-readable gets ask for meta.k8s.io Tables first."""
    if "as=Table" not in accept:
        return False
    first = accept.split(",", 1)[0]
    return "as=Table" in first and "g=meta.k8s.io" in first


def include_object(query: Any) -> str:
    value = query.get("includeObject", "") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise errors.BadRequest(f'includeObject: Unsupported value: "{value}": supported values: "Metadata", "None", "Object"')
    return str(value)


def raw(body: bytes, *, status: int = 200, content_type: str = JSON_CT, warnings: Sequence[str] = ()) -> web.Response:
    resp = web.Response(body=body, status=status, headers={"Content-Type": content_type})
    for w in warnings:
        resp.headers.add("Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return resp


def obj_response(obj: StoredObject, *, status: int = 200, warnings: Sequence[str] = ()) -> web.Response:
    return raw(obj.to_json(), status=status, warnings=warnings)


def dict_response(data: dict[str, Any], *, status: int = 200, warnings: Sequence[str] = ()) -> web.Response:
    return raw(json.dumps(data, separators=(",", ":")).encode(), status=status, warnings=warnings)


def status_response(exc: errors.APIError) -> web.Response:
    resp = dict_response(exc.to_status(), status=exc.code)
    if exc.retry_after_seconds:
        resp.headers["Retry-After"] = str(exc.retry_after_seconds)
    return resp


def success_status(info: ResourceInfo, obj: StoredObject) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": obj.name, "group": info.group, "kind": info.resource, "uid": obj.msg.metadata.uid},
    }


def list_body(info: ResourceInfo, objs: Sequence[StoredObject], rv: int, *, continue_token: str = "", remaining: int | None = None) -> bytes:
    """`items: []` always (the Python client 37 requires it); each item's JSON
    is the object's cached encoding, joined, never re-encoded."""
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    head = (
        b'{"kind":"' + info.list_kind.encode() + b'","apiVersion":"' + info.api_version.encode()
        + b'","metadata":' + json.dumps(meta, separators=(",", ":")).encode() + b',"items":['
    )
    return head + b",".join(o.to_json() for o in objs) + b"]}"


def table_body(info: ResourceInfo, objs: Sequence[StoredObject], rv: int, *, include: str, now: _dt.datetime) -> bytes:
    t = tables.table(
        info.resource, info.group, [o.as_dict() for o in objs],
        resource_version=str(rv), include_object=include, now=now,
    )
    return json.dumps(t, separators=(",", ":")).encode()
