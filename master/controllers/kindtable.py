"""Every kind the Client knows, as message classes: what the namespace
controller, the garbage collector and the quota controller walk.

The Client's kinds table (master/client/kinds.py) maps proto full names to
(group, resource, namespaced); this module resolves the generated classes
(`flotilla.<pkg>.v1.<Kind>` lives in `protos.<pkg>.v1.<pkg>_pb2`) and looks
a kind up by (apiVersion, kind) as ownerReferences name it. No I/O beyond
importing generated modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from master.client.kinds import KindInfo


@dataclass(frozen=True)
class Kind:
    cls: Any
    info: KindInfo

    @property
    def name(self) -> str:
        return str(self.cls.DESCRIPTOR.name)

    @property
    def full_name(self) -> str:
        return str(self.cls.DESCRIPTOR.full_name)

    @property
    def group_resource(self) -> str:
        return f"{self.info.resource}.{self.info.group}" if self.info.group else self.info.resource


@cache
def _message_class(full_name: str) -> Any:
    package, _, name = full_name.rpartition(".")
    parts = package.split(".")  # flotilla, <pkg>, v1
    module = importlib.import_module(f"protos.{parts[1]}.{parts[2]}.{parts[1]}_pb2")
    return getattr(module, name)


def all_kinds(kinds: Mapping[str, KindInfo]) -> list[Kind]:
    return [Kind(_message_class(name), info) for name, info in kinds.items()]


def by_owner_ref(kinds: list[Kind], api_version: str, kind: str) -> Kind | None:
    """The kind an ownerReference names (group from apiVersion "group/v1", or core)."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    for k in kinds:
        if k.name == kind and k.info.group == group:
            return k
    return None
