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
from master.apiserver.resources import ResourceInfo
from protos.codec import DecodeError, from_dict

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


def parse_document(raw: bytes, mtype: str) -> Any:
    """JSON (or YAML) text -> a Python value."""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.TooLarge()
    if not raw.strip():
        raise errors.BadRequest("the request body is empty")
    if mtype in (JSON, MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH, "*/*"):
        return _json(raw)
    if mtype in (YAML, "application/x-yaml", "text/yaml", APPLY_PATCH):
        # apply-patch+yaml bodies are JSON from kubectl; JSON is YAML anyway.
        try:
            return _json(raw)
        except errors.APIError:
            return _yaml(raw)
    raise errors.UnsupportedMediaType(mtype)


def _json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"the body is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.BadRequest(
            f"error decoding JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise errors.BadRequest("error decoding JSON: nested too deeply") from None


def _yaml(raw: bytes) -> Any:
    try:
        docs = list(yaml.safe_load_all(raw))
    except yaml.YAMLError as exc:
        raise errors.BadRequest(f"error decoding YAML: {_short(str(exc))}") from None
    except (RecursionError, ValueError, TypeError) as exc:
        raise errors.BadRequest(f"error decoding YAML: {_short(str(exc))}") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise errors.BadRequest(f"expected exactly one YAML document, got {len(docs)}")
    return _json_safe(docs[0])


def _json_safe(value: Any, depth: int = 0) -> Any:
    """YAML can produce dates, sets and non-string keys; JSON cannot."""
    if depth > 100:
        raise errors.BadRequest("error decoding YAML: nested too deeply")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise errors.BadRequest(f"error decoding YAML: map key {k!r} is not a string")
            out[k] = _json_safe(v, depth + 1)
        return out
    if isinstance(value, list):
        return [_json_safe(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        if isinstance(value, float) and value != value:
            raise errors.BadRequest("error decoding YAML: NaN is not a JSON number")
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
