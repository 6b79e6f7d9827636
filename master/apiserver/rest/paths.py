"""Kubernetes REST paths -> what they name. Pure.

    /api/v1/<resource>[/<name>[/<subresource>]]                     cluster scope, or all namespaces
    /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]]     namespaced
    /apis/<group>/<version>/...                                     the same under a group

`/api/v1/namespaces/<name>` and `/api/v1/namespaces/<name>/status|finalize`
name the Namespace itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.apiserver import errors
from protos.resources import ResourceInfo, lookup


@dataclass(frozen=True)
class Route:
    info: ResourceInfo
    namespace: str  # "" = cluster scope or every namespace
    name: str  # "" = the collection
    subresource: str = ""


def parse_path(path: str) -> Route:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise errors.PathNotFound()
    if not rest:
        raise errors.PathNotFound()
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
        len(rest) == 3 and group == "" and rest[2] in ("status", "finalize")
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise errors.PathNotFound()
    info = lookup(group, rest[0])
    if info is None or info.version != version:
        raise errors.PathNotFound(
            f"the server could not find the requested resource ({rest[0]}"
            f"{'.' + group if group else ''})"
        )
    if namespace and not info.namespaced:
        raise errors.PathNotFound()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in info.subresources:
        raise errors.PathNotFound()
    if info.namespaced and name and not namespace:
        raise errors.PathNotFound()
    return Route(info, namespace, name, sub)
