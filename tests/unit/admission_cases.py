"""Helpers for the admission tests: decode a manifest, admit it, read back the JSON."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from master.apiserver.admission import admit_create, admit_update
from master.apiserver.errors import APIError
from protos.codec import from_dict, to_dict
from protos.resources import RESOURCES, ResourceInfo

NOW = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC)


def info_for(kind: str) -> ResourceInfo:
    return next(r for r in RESOURCES if r.kind == kind)


def decode(kind: str, body: dict[str, Any]) -> Any:
    msg, unknown = from_dict(info_for(kind).message_class(), body)
    assert not unknown, unknown
    return msg


def admitted(kind: str, body: dict[str, Any]) -> Any:
    msg = decode(kind, body)
    admit_create(info_for(kind), msg, now=NOW)
    return msg


def create(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The object's JSON after a successful admit_create."""
    return to_dict(admitted(kind, body))


def create_error(kind: str, body: dict[str, Any]) -> APIError:
    with pytest.raises(APIError) as exc:
        admitted(kind, body)
    assert exc.value.code == 422, exc.value
    return exc.value


def update(kind: str, old_body: dict[str, Any], new_body: dict[str, Any], *,
           subresource: str = "") -> dict[str, Any]:
    old = admitted(kind, old_body)
    new = decode(kind, new_body)
    admit_update(info_for(kind), new, old, subresource=subresource)
    return to_dict(new)


def update_error(kind: str, old_body: dict[str, Any], new_body: dict[str, Any]) -> APIError:
    with pytest.raises(APIError) as exc:
        update(kind, old_body, new_body)
    assert exc.value.code == 422, exc.value
    return exc.value


def cause_fields(err: APIError) -> set[str]:
    return {c.field for c in err.causes}


def assert_cause(err: APIError, field: str, text: str = "") -> None:
    """`err` has a cause at `field` whose message contains `text`."""
    hits = [c for c in err.causes if c.field == field]
    assert hits, f"no cause at {field!r}: {[c.to_dict() for c in err.causes]}"
    assert any(text in c.message for c in hits), [c.message for c in hits]


def edit(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the dotted `path` set (list indexes as numbers);
    value DELETE removes the key."""
    out = copy.deepcopy(body)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


DELETE = object()


def meta(name: str = "x", namespace: str = "default", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def container(name: str = "app", image: str = "nginx:1.25", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def pod_spec(**extra: Any) -> dict[str, Any]:
    return {"containers": [container()], **extra}


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": pod_spec(**spec)}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
            "spec": pod_spec(**spec)}
