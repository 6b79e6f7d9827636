"""Which collection a message class lives in: proto full name -> (group, resource, namespaced).

The client addresses objects by ResourceRef (group, plural resource,
namespace) and is handed message classes, so it needs these three facts per
kind. KINDS is a view of the resource registry (protos/resources.py), keyed
by the message's full protobuf name; the registry is the only list of kinds.
It lives in protos/ rather than master.apiserver so that this module, which
node_agent and netproxy reach through master.client, may read it.

Pure: no I/O, no generated-code imports (the registry holds names only and
loads message classes lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from protos.resources import RESOURCES


class KindInfo(NamedTuple):
    group: str  # "" for the core group
    resource: str  # plural: "pods"
    namespaced: bool


# Read-only: the client copies it (with its extra_kinds) rather than adding to it.
KINDS: Mapping[str, KindInfo] = MappingProxyType(
    {r.proto: KindInfo(r.group, r.resource, r.namespaced) for r in RESOURCES}
)

POD = "flotilla.core.v1.Pod"
# Not a stored resource (the pods/binding subresource's body), so not in KINDS.
BINDING = "flotilla.core.v1.Binding"


class UnknownKind(LookupError):
    """The message class is not an API resource the client knows."""


def kind_of(cls: Any, *, kinds: Mapping[str, KindInfo] = KINDS) -> KindInfo:
    """The KindInfo for a generated message class (or an instance of one)."""
    full_name = cls.DESCRIPTOR.full_name
    try:
        return kinds[full_name]
    except KeyError:
        raise UnknownKind(f"{full_name} is not a known API resource") from None
