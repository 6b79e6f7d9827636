"""Strategic-merge patch metadata read from the protobuf schema.

Kubernetes keeps patchStrategy/patchMergeKey in Go struct tags; we keep them
as field options in protos/ (flotilla.options). `DescriptorSchema` answers
patch.PatchSchema's questions from a message descriptor, so the patch code
stays pure and schema-agnostic. Maps (labels, annotations, resource lists)
and google.protobuf.Value/Struct fields are opaque: plain JSON-merge rules.
"""

from __future__ import annotations

from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from protos.codec import field_options

_OPAQUE = {"google.protobuf.Value", "google.protobuf.Struct", "google.protobuf.ListValue",
           "google.protobuf.Timestamp"}


class DescriptorSchema:
    __slots__ = ("_desc", "_by_json")

    def __init__(self, desc: Descriptor) -> None:
        self._desc = desc
        self._by_json: dict[str, FieldDescriptor] = {fd.json_name: fd for fd in desc.fields}

    def field(self, name: str) -> DescriptorSchema | None:
        fd = self._by_json.get(name)
        if fd is None or fd.message_type is None or fd.is_repeated:
            return None
        return schema_for(fd.message_type)

    def list_strategy(self, name: str) -> tuple[str, str]:
        fd = self._by_json.get(name)
        if fd is None or not fd.is_repeated:
            return ("", "")
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            return ("", "")
        return field_options(fd)

    def item(self, name: str) -> DescriptorSchema | None:
        fd = self._by_json.get(name)
        if fd is None or not fd.is_repeated or fd.message_type is None:
            return None
        if fd.message_type.GetOptions().map_entry:
            return None
        return schema_for(fd.message_type)

    def field_strategy(self, name: str) -> str:
        """patchStrategy on a non-list field (e.g. "retainKeys" on strategy)."""
        fd = self._by_json.get(name)
        return field_options(fd)[0] if fd is not None else ""


@cache
def _schema(desc: Descriptor) -> DescriptorSchema | None:
    if desc.full_name in _OPAQUE or desc.GetOptions().map_entry:
        return None
    return DescriptorSchema(desc)


def schema_for(desc: Descriptor) -> DescriptorSchema | None:
    return _schema(desc)
