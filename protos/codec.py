"""JSON <-> protobuf for API objects: the one place that knows the wire forms.

DESIGN 1: API objects are protobuf messages whose JSON mapping is
Kubernetes' JSON. This module turns request JSON into typed messages and
typed messages into response JSON, with the corrections the stock protobuf
JSON mapping needs to match Kubernetes exactly:

* decoding walks the JSON against the message descriptor first: unknown
  fields are collected as paths (rejected under fieldValidation=Strict,
  returned as warnings otherwise, as the real apiserver does), JSON numbers
  in quantity fields (`cpu: 1`) become strings, JSON nulls mean "absent";
* encoding prints `google.protobuf.Value` numbers that are whole as integers
  (IntOrString `targetPort: 8080`, never `8080.0`) and timestamps as RFC 3339
  with second precision when there is no fraction.

Encoding is hand-rolled over `ListFields()` (C, upb) rather than
json_format.MessageToDict because every LIST and watch event goes through
it: it is several times faster. Decoding is hand-rolled too (one pass
that checks types and fills the message), 4x faster than ParseDict and with
error messages that name the field path.

Pure: no I/O. Callers: master.apiserver (REST), flotctl.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from protos.flotilla import options_pb2

_WKT_TIMESTAMP = "google.protobuf.Timestamp"
_WKT_VALUE = "google.protobuf.Value"
_WKT_STRUCT = "google.protobuf.Struct"
_WKT_LIST = "google.protobuf.ListValue"
_WKT_ANY = "google.protobuf.Any"
_OPAQUE_JSON = {_WKT_VALUE, _WKT_STRUCT, _WKT_LIST}


class DecodeError(ValueError):
    """The JSON does not fit the schema. `path` names the field when known."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


# --------------------------------------------------------------------------
# Encoding: message -> JSON-shaped dict
# --------------------------------------------------------------------------

def format_timestamp(seconds: int, nanos: int) -> str:
    stamp = _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        frac = f"{nanos:09d}".rstrip("0")
        return f"{stamp}.{frac}Z"
    return stamp + "Z"


def _value_to_py(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        n = v.number_value
        if math.isfinite(n) and n.is_integer() and abs(n) < 2**53:
            return int(n)
        return n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: _value_to_py(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_value_to_py(x) for x in v.list_value.values]
    return None


def _struct_to_py(s: Any) -> dict[str, Any]:
    return {k: _value_to_py(x) for k, x in s.fields.items()}


_Conv = Callable[[Any], Any]
_field_conv_cache: dict[FieldDescriptor, tuple[str, _Conv]] = {}


def _identity(v: Any) -> Any:
    return v


def _bytes_to_json(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def _message_conv(desc: Descriptor) -> _Conv:
    name = desc.full_name
    if name == _WKT_TIMESTAMP:
        return lambda m: format_timestamp(m.seconds, m.nanos)
    if name == _WKT_VALUE:
        return _value_to_py
    if name == _WKT_STRUCT:
        return _struct_to_py
    if name == _WKT_LIST:
        return lambda m: [_value_to_py(x) for x in m.values]
    return to_dict


def _scalar_conv(fd: FieldDescriptor) -> _Conv:
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return _bytes_to_json
    if fd.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return lambda v: int(v) if float(v).is_integer() else v
    return _identity


def format_micro_time(seconds: int, nanos: int) -> str:
    stamp = _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


def _map_of(value: _Conv) -> _Conv:
    return lambda m: {k: value(v) for k, v in m.items()}


def _list_of(elem: _Conv) -> _Conv:
    return lambda seq: [elem(x) for x in seq]


def _field_conv(fd: FieldDescriptor) -> tuple[str, _Conv]:
    hit = _field_conv_cache.get(fd)
    if hit is not None:
        return hit
    if fd.GetOptions().Extensions[options_pb2.micro_time]:
        hit = (fd.json_name, lambda m: format_micro_time(m.seconds, m.nanos))
        _field_conv_cache[fd] = hit
        return hit
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        vfd = fd.message_type.fields_by_name["value"]
        vconv = _message_conv(vfd.message_type) if vfd.message_type else _scalar_conv(vfd)
        if vconv is _identity:
            conv: _Conv = dict
        else:
            conv = _map_of(vconv)
    else:
        elem = _message_conv(fd.message_type) if fd.message_type else _scalar_conv(fd)
        if fd.is_repeated:
            conv = list if elem is _identity else _list_of(elem)
        else:
            conv = elem
    hit = (fd.json_name, conv)
    _field_conv_cache[fd] = hit
    return hit


def to_dict(msg: Message) -> dict[str, Any]:
    """The object's Kubernetes JSON as a fresh dict (only fields that are set)."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        name, conv = _field_conv(fd)
        out[name] = conv(value)
    return out


# --------------------------------------------------------------------------
# Decoding: JSON-shaped dict -> message
# --------------------------------------------------------------------------

class _Decoder:
    """Fills a message from JSON in one pass, checking types as Go's decoder
    would and naming the field that does not fit; unknown fields are
    collected, not fatal (the caller applies fieldValidation)."""

    def __init__(self) -> None:
        self.unknown: list[str] = []

    def fill(self, msg: Any, data: Any, path: str) -> None:
        desc = msg.DESCRIPTOR
        name = desc.full_name
        if name in _WKT_FILL:
            _WKT_FILL[name](msg, data, path)
            return
        if not isinstance(data, dict):
            raise DecodeError(
                f"{path or 'body'}: expected an object, got {_json_type(data)}", path=path
            )
        fields = _json_fields(desc)
        for key, value in data.items():
            fd = fields.get(key)
            sub = f"{path}.{key}" if path else key
            if fd is None:
                self.unknown.append(sub)
                continue
            if value is None:
                continue  # Kubernetes: null is "not set"
            self.field(msg, fd, value, sub)

    def field(self, msg: Any, fd: FieldDescriptor, value: Any, path: str) -> None:
        mt, is_map, vfd, quantity, repeated, name = _field_plan(fd)
        if is_map:
            if not isinstance(value, dict):
                raise DecodeError(f"{path}: expected an object, got {_json_type(value)}", path=path)
            target = getattr(msg, name)
            for k, v in value.items():
                if v is None:
                    continue
                if vfd.message_type is not None:
                    self.fill(target[k], v, f"{path}.{k}")
                    continue
                if quantity:
                    v = _quantity(v, f"{path}.{k}")
                else:
                    v = _scalar(vfd, v, f"{path}.{k}")
                target[k] = v
            return
        if repeated:
            if not isinstance(value, list):
                raise DecodeError(f"{path}: expected an array, got {_json_type(value)}", path=path)
            target = getattr(msg, name)
            if mt is not None:
                for i, v in enumerate(value):
                    if v is None:
                        raise DecodeError(f"{path}[{i}]: expected an object, got null", path=path)
                    self.fill(target.add(), v, f"{path}[{i}]")
            elif quantity:
                target.extend(_quantity(v, f"{path}[{i}]") for i, v in enumerate(value))
            else:
                target.extend(_scalar(fd, v, f"{path}[{i}]") for i, v in enumerate(value))
            return
        if mt is not None:
            sub = getattr(msg, name)
            sub.SetInParent()  # `{}` is a set, empty message
            self.fill(sub, value, path)
            return
        if quantity:
            setattr(msg, name, _quantity(value, path))
        else:
            setattr(msg, name, _scalar(fd, value, path))


_FieldPlan = tuple[Any, bool, Any, bool, bool, str]
_field_plans: dict[FieldDescriptor, _FieldPlan] = {}


def _field_plan(fd: FieldDescriptor) -> _FieldPlan:
    """What decoding needs to know of a field, read from its descriptor once:
    (message type, is a map, the map's value field, is a quantity, repeated, name)."""
    plan = _field_plans.get(fd)
    if plan is None:
        mt = fd.message_type
        is_map = mt is not None and bool(mt.GetOptions().map_entry)
        vfd = mt.fields_by_name["value"] if is_map else None
        quantity = bool(fd.GetOptions().Extensions[options_pb2.quantity])
        plan = (mt, is_map, vfd, quantity, fd.is_repeated, fd.name)
        _field_plans[fd] = plan
    return plan


def _fill_timestamp(msg: Any, data: Any, path: str) -> None:
    if not isinstance(data, str):
        raise DecodeError(f"{path}: expected an RFC 3339 timestamp string, got {_json_type(data)}", path=path)
    try:
        msg.FromJsonString(data)
    except ValueError:
        raise DecodeError(f'{path}: "{data[:64]}" is not an RFC 3339 timestamp', path=path) from None


def _fill_json(msg: Any, data: Any, path: str) -> None:
    if msg.DESCRIPTOR.full_name == _WKT_VALUE:
        # Scalars (IntOrString ports, mostly) directly; what ParseDict does for them.
        if isinstance(data, str):
            msg.string_value = data
            return
        if isinstance(data, bool):
            msg.bool_value = data
            return
        if isinstance(data, int | float):
            try:
                number = float(data)
            except OverflowError:  # an integer too large: ParseDict names it below
                number = math.inf
            if math.isfinite(number):
                msg.number_value = number
                return
    try:
        json_format.ParseDict(data, msg)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"{path}: {exc}", path=path) from exc


_WKT_FILL: dict[str, Callable[[Any, Any, str], None]] = {
    _WKT_TIMESTAMP: _fill_timestamp,
    _WKT_VALUE: _fill_json,
    _WKT_STRUCT: _fill_json,
    _WKT_LIST: _fill_json,
}


def _quantity(value: Any, path: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DecodeError(f"{path}: quantities must be a string or a number", path=path)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


_INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}
_TYPE_NAMES = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "boolean",
    FieldDescriptor.TYPE_DOUBLE: "number",
    FieldDescriptor.TYPE_FLOAT: "number",
}


def _scalar(fd: FieldDescriptor, value: Any, path: str) -> Any:
    """Type-check one JSON scalar the way Go's decoder would, naming the field;
    returns the value to store."""
    t = fd.type
    bounds = _INT_TYPES.get(t)
    if bounds is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DecodeError(f"{path}: expected integer, got {_json_type(value)}", path=path)
        if not bounds[0] <= value <= bounds[1]:
            raise DecodeError(f"{path}: value {value} is out of range", path=path)
        return value
    if t == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise DecodeError(f"{path}: expected a base64 string, got {_json_type(value)}", path=path)
        try:
            return base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise DecodeError(f"{path}: illegal base64 data", path=path) from None
    if t == FieldDescriptor.TYPE_STRING:
        ok = isinstance(value, str)
    elif t == FieldDescriptor.TYPE_BOOL:
        ok = isinstance(value, bool)
    elif t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = True
    if not ok:
        raise DecodeError(
            f"{path}: expected {_TYPE_NAMES.get(t, 'value')}, got {_json_type(value)}", path=path
        )
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return float(value)
    return value


_json_fields_cache: dict[Descriptor, dict[str, FieldDescriptor]] = {}


def _json_fields(desc: Descriptor) -> dict[str, FieldDescriptor]:
    hit = _json_fields_cache.get(desc)
    if hit is None:
        hit = {fd.json_name: fd for fd in desc.fields}
        _json_fields_cache[desc] = hit
    return hit


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if v is None:
        return "null"
    return "object"


def from_dict(cls: type[Message], data: Any, *, path: str = "") -> tuple[Message, list[str]]:
    """Decode a JSON dict into a new `cls`; returns it and the unknown field paths.

    Unknown fields are dropped (the caller decides whether they are an error).
    Raises DecodeError for anything that does not fit the schema.
    """
    dec = _Decoder()
    msg = cls()
    try:
        dec.fill(msg, data, path)
    except DecodeError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        # upb's own checks (e.g. invalid UTF-8 surrogates in a string)
        raise DecodeError(f"{path or 'body'}: {exc}") from exc
    except RecursionError:
        raise DecodeError(f"{path or 'body'}: nested too deeply") from None
    return msg, dec.unknown


def field_options(fd: FieldDescriptor) -> tuple[str, str]:
    """(patch_strategy, patch_merge_key) declared on a field."""
    opts = fd.GetOptions()
    return (
        opts.Extensions[options_pb2.patch_strategy],
        opts.Extensions[options_pb2.patch_merge_key],
    )
