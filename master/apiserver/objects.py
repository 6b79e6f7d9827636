"""`StoredObject`: one version of one API object, as the apiserver holds it.

A StoredObject pairs the typed message (resourceVersion set) with its wire
forms, each computed at most once (DESIGN 1: serialize each object once per
wire form, so that a LIST or a watch fan-out to a thousand clients does not
re-encode it per client). It is shared by the watch cache, LIST answers and
every watcher, so it is immutable by contract: nobody mutates `msg`, the dict
from `as_dict()` or the bytes; a writer copies the message first
(`copy_msg()`).

Also here: the encoding of objects in etcd. We keep protobuf's binary form
(without resourceVersion, which is the key's mod_revision and is filled in on
read): on this machine decoding it is ~20x faster than parsing the JSON form
back into a message (see README, "Performance"), and it is exactly what the
gRPC face sends.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message

from master.apiserver.selectors import object_fields
from protos.codec import to_dict
from protos.resources import ResourceInfo


class StoredObject:
    __slots__ = ("info", "msg", "rv", "key", "_dict", "_json", "_pb", "_fields", "_lines")

    def __init__(self, info: ResourceInfo, msg: Message, rv: int, *, key: str | None = None) -> None:
        self.info = info
        self.msg: Any = msg
        self.rv = rv
        meta = msg.metadata  # type: ignore[attr-defined]
        self.key = key if key is not None else info.key(meta.namespace, meta.name)
        self._dict: dict[str, Any] | None = None
        self._json: bytes | None = None
        self._pb: bytes | None = None
        self._fields: dict[str, str] | None = None
        self._lines: dict[str, bytes] | None = None

    @property
    def name(self) -> str:
        return str(self.msg.metadata.name)

    @property
    def namespace(self) -> str:
        return str(self.msg.metadata.namespace)

    @property
    def labels(self) -> Any:
        return self.msg.metadata.labels

    def as_dict(self) -> dict[str, Any]:
        """The Kubernetes JSON form as a dict. Shared: do not mutate."""
        if self._dict is None:
            d = to_dict(self.msg)
            # Clients need apiVersion and kind on every object they read.
            d["apiVersion"] = self.info.api_version
            d["kind"] = self.info.kind
            self._dict = d
        return self._dict

    def to_json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.as_dict(), separators=(",", ":")).encode()
        return self._json

    def watch_line(self, type_: str) -> bytes:
        """`{"type":T,"object":...}\n`, built once per event type for every watcher."""
        if self._lines is None:
            self._lines = {}
        line = self._lines.get(type_)
        if line is None:
            line = b'{"type":"' + type_.encode() + b'","object":' + self.to_json() + b"}\n"
            self._lines[type_] = line
        return line

    def to_pb(self) -> bytes:
        if self._pb is None:
            self._pb = self.msg.SerializeToString()
        return self._pb

    def fields(self) -> dict[str, str]:
        """Values of every field a field selector may name."""
        if self._fields is None:
            self._fields = object_fields(self.as_dict(), self.info.all_field_selectors())
        return self._fields

    def superseded(self) -> None:
        """A newer version (or a delete) replaced this one in the watch cache.

        It lives on in the watch history only, where replays read its watch
        lines, protobuf bytes and selector fields. The JSON dict (two thirds
        of a pod's memory here) and its encoding serve reads of the current
        state, so they are dropped; anyone who still asks gets them rebuilt
        from the message.
        """
        self._dict = None
        self._json = None

    def copy_msg(self) -> Any:
        out = type(self.msg)()
        out.CopyFrom(self.msg)
        return out

    def with_rv(self, rv: int) -> StoredObject:
        """The same object stamped with another resourceVersion (DELETED events)."""
        msg = self.copy_msg()
        msg.metadata.resource_version = str(rv)
        return StoredObject(self.info, msg, rv, key=self.key)


def encode_for_store(msg: Message) -> bytes:
    """The bytes kept in etcd: the message without its resourceVersion."""
    meta = msg.metadata  # type: ignore[attr-defined]
    saved = meta.resource_version
    meta.resource_version = ""
    try:
        return msg.SerializeToString()
    finally:
        meta.resource_version = saved


def decode_from_store(info: ResourceInfo, key: str, value: bytes, rv: int) -> StoredObject:
    msg = info.message_class().FromString(value)
    msg.metadata.resource_version = str(rv)
    if not msg.api_version:
        msg.api_version = info.api_version
        msg.kind = info.kind
    return StoredObject(info, msg, rv, key=key)
