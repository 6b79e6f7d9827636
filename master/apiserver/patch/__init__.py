"""PATCH algorithms: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
Kubernetes' strategic merge patch (SMP), on JSON-shaped Python values.

Owns: turning (object, patch document) into the patched object. It knows no
API type: strategic merge asks a caller-supplied `PatchSchema` which lists
merge by key (the apiserver answers from the protobuf descriptors'
patch_strategy / patch_merge_key options, see patchschema.py). It must not
validate the result, touch metadata or check preconditions (the registry does
that after patching), and it does no I/O.

Inputs are never mutated: each function patches a private deep copy, and the
result shares no container with the original or the patch.

Every failure is a `PatchError` whose `code` is what Kubernetes answers: 400
for a malformed patch document, 422 for a well-formed one that does not apply
(a failed JSON-patch `test`, a missing path, a merge-list element without its
merge key), 415 (`UnsupportedPatchType`) for an unknown patch media type.

The package: base.py (media types, errors, the schema protocol, shared
helpers), jsonpatch.py (RFC 7386, RFC 6902) and strategic.py (strategic
merge, server-side apply, and the rules they follow); this module decodes a
body and dispatches on the request's media type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from master.apiserver.patch.base import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    OPAQUE,
    PATCH_CONTENT_TYPES,
    STRATEGIC_MERGE_PATCH,
    DictSchema,
    PatchError,
    PatchSchema,
    UnsupportedPatchType,
)
from master.apiserver.patch.jsonpatch import apply_json_patch, apply_merge_patch
from master.apiserver.patch.strategic import apply_server_side, apply_strategic_merge_patch

__all__ = [
    "APPLY_PATCH", "JSON_PATCH", "MERGE_PATCH", "OPAQUE", "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_PATCH", "DictSchema", "PatchError", "PatchSchema", "UnsupportedPatchType",
    "apply_json_patch", "apply_merge_patch", "apply_patch", "apply_server_side",
    "apply_strategic_merge_patch", "decode_patch",
]


def decode_patch(body: bytes | str) -> Any:
    """Decode a JSON patch body; PatchError(400) when it is not strict JSON."""

    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        return json.loads(body, parse_constant=reject)
    except RecursionError:
        raise PatchError("the patch is nested too deeply", code=400) from None
    except json.JSONDecodeError as exc:
        raise PatchError(f"invalid JSON in patch: {exc.msg} at line {exc.lineno} column {exc.colno}", code=400) from None
    except (ValueError, TypeError) as exc:
        raise PatchError(f"invalid JSON in patch: {exc}", code=400) from None


def apply_patch(content_type: str, original: Any, patch: Any, schema: PatchSchema) -> Any:
    """Apply `patch` (raw body bytes/str, or the decoded document) by media type.

    `application/apply-patch+yaml` bodies are decoded as JSON here (kubectl
    and the Python client send JSON); a YAML body must be decoded by the
    caller and passed as an object. `original` None is only valid for apply.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_CONTENT_TYPES:
        raise UnsupportedPatchType(content_type)
    document = patch
    if isinstance(patch, bytes | bytearray | memoryview | str):
        document = decode_patch(patch if isinstance(patch, str) else bytes(patch))
    if media == MERGE_PATCH:
        return apply_merge_patch(original, document)
    if media == JSON_PATCH:
        return apply_json_patch(original, document)
    if not isinstance(document, Mapping):
        raise PatchError("a strategic merge or apply patch must be a JSON object", code=400)
    if media == APPLY_PATCH:
        return apply_server_side(original, document, schema)
    return apply_strategic_merge_patch(original, document, schema)
