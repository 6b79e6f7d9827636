"""Request bodies -> Python values and typed messages. Pure.

What clients send (KUBECTL.md §1.2): JSON with or without a Content-Type,
YAML, the four PATCH media types. Kubernetes' protobuf envelope is refused
with 415 (we report minor 31, so kubectl sends JSON). Every failure is a
4xx APIError naming the problem: malformed input is 400, a well-formed body
that names unknown fields under fieldValidation=Strict is 400 too (as the
Go apiserver answers), schema violations are 400 ("cannot be handled as").
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from master.apiserver import errors
from protos.codec import DecodeError, from_dict
from protos.resources import ResourceInfo

JSON = "application/json"
YAML = "application/yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, APPLY_PATCH)
MAX_BODY_BYTES = 3 * 1024 * 1024


def media_type(content_type: str | None) -> str:
    """The bare media type; a missing Content-Type means JSON (Python client 37)."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower()


def parse_document(raw: bytes, mtype: str, *, validation: str = "Ignore", warnings: list[str] | None = None) -> Any:
    """JSON (or YAML) text -> a Python value.

    A key repeated within one object is refused under fieldValidation=Strict
    and warned about under Warn (the last value wins), as Kubernetes does.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise errors.TooLarge()
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    duplicates: list[str] = []
    if mtype in (JSON, MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, "*/*"):
        value = _json(raw, duplicates)
    elif mtype in (YAML, "application/x-yaml", "text/yaml", APPLY_PATCH):
        # apply-patch+yaml bodies are JSON from kubectl; JSON is YAML anyway.
        try:
            value = _json(raw, duplicates)
        except errors.APIError:
            duplicates.clear()
            value = _yaml(raw)
    else:
        raise errors.UnsupportedMediaType(mtype)
    if duplicates:
        details = ", ".join(f'json: duplicate field "{d}"' for d in dict.fromkeys(duplicates))
        if validation == "Strict":
            raise errors.BadRequest(f"strict decoding error: {details}")
        if validation == "Warn" and warnings is not None:
            warnings.extend(f'duplicate field "{d}"' for d in dict.fromkeys(duplicates))
    return value


def _reject_constant(name: str) -> Any:
    raise errors.BadRequest(f"error decoding JSON: {name} is not a JSON value")


def _json(raw: bytes, duplicates: list[str]) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                duplicates.append(k)
            out[k] = v
        return out

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"the body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise errors.BadRequest(
            f"error decoding JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise errors.BadRequest("error decoding JSON: nested too deeply") from None


# Aliases make a small YAML text a huge document ("billion laughs"): the
# expanded document may hold at most this many values.
MAX_YAML_NODES = 1_000_000


def _yaml(raw: bytes) -> Any:
    try:
        docs = list(yaml.load_all(raw, Loader=_LOADER))
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding YAML: {_short(str(exc))}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise errors.BadRequest(f"error decoding YAML: {_short(str(exc))}") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise errors.BadRequest(f"expected exactly one YAML document, got {len(docs)}")
    budget = [MAX_YAML_NODES]
    return _json_safe(docs[0], 0, budget)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _json_safe(value: Any, depth: int, budget: list[int]) -> Any:
    """YAML can produce dates, sets and non-string keys; JSON cannot."""
    budget[0] -= 1
    if budget[0] < 0:
        raise errors.BadRequest("error decoding YAML: the document is too large once its aliases are expanded")
    if depth > 100:
        raise errors.BadRequest("error decoding YAML: nested too deeply")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise errors.BadRequest(f"error decoding YAML: map key {k!r} is not a string")
            out[k] = _json_safe(v, depth + 1, budget)
        return out
    if isinstance(value, list):
        return [_json_safe(v, depth + 1, budget) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise errors.BadRequest("error decoding YAML: NaN and infinities are not JSON numbers")
        return value
    return str(value)


def _short(text: str) -> str:
    return " ".join(text.split())[:300]


def decode_object(
    info: ResourceInfo, data: Any, *, validation: str, warnings: list[str]
) -> Any:
    """A JSON value -> the resource's message. apiVersion and kind may be
    absent (the Python client sends models without them); when present they
    must name this resource's kind."""
    if not isinstance(data, dict):
        raise errors.BadRequest(
            f"{info.kind} in version \"{info.version}\" cannot be handled as a {info.kind}: "
            f"expected a JSON object, got {_json_kind(data)}"
        )
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if api_version not in (None, "") and api_version != info.api_version:
        raise errors.BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API version ({info.api_version})"
        )
    if kind not in (None, "") and kind != info.kind:
        raise errors.BadRequest(
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
        )
    try:
        msg, unknown = from_dict(info.message_class(), data)
    except DecodeError as exc:
        raise errors.BadRequest(
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {exc}'
        ) from None
    if unknown:
        apply_field_validation(unknown, validation=validation, warnings=warnings)
    return msg


def apply_field_validation(unknown: list[str], *, validation: str, warnings: list[str]) -> None:
    if validation == "Strict":
        details = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise errors.BadRequest(f"strict decoding error: {details}")
    if validation == "Warn":
        warnings.extend(f'unknown field "{u}"' for u in unknown)


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return "null"
