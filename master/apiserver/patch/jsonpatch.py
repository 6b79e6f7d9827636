"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902, with RFC 6901
pointers), each on a private deep copy of the object.

Pure: no I/O, no API type; failures are `PatchError`s (base.py).
"""

from __future__ import annotations

import re
from typing import Any

from master.apiserver.patch.base import PatchError, _clone, _guarded, _json_key, _show

# --- RFC 7386 JSON merge patch ----------------------------------------------------


def apply_merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    return _guarded(lambda: _merge_patch(_clone(original), _clone(patch)))


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# --- RFC 6902 JSON patch ----------------------------------------------------------

_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


class _Pointer:
    """A parsed RFC 6901 JSON pointer; `text` is kept for error messages."""

    def __init__(self, text: str, tokens: list[str]) -> None:
        self.text = text
        self.tokens = tokens


def apply_json_patch(original: Any, ops: Any) -> Any:
    """RFC 6902: apply the operations in order; the first failure aborts all."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a JSON array of operations", code=400)

    def run() -> Any:
        doc = _clone(original)
        for op in _clone(ops):
            doc = _apply_operation(doc, op)
        return doc

    return _guarded(run)


def _apply_operation(doc: Any, op: Any) -> Any:
    if not isinstance(op, dict):
        raise PatchError(f"invalid JSON patch operation {_show(op)}: not an object")
    name = op.get("op")
    if name == "add":
        return _add(doc, _pointer(op, "path"), _operand(op))
    if name == "remove":
        return _remove(doc, _pointer(op, "path"))
    if name == "replace":
        return _replace(doc, _pointer(op, "path"), _operand(op))
    if name == "move":
        return _move(doc, _pointer(op, "from"), _pointer(op, "path"))
    if name == "copy":
        return _add(doc, _pointer(op, "path"), _clone(_get(doc, _pointer(op, "from"))))
    if name == "test":
        return _test(doc, _pointer(op, "path"), _operand(op))
    raise PatchError(f"unexpected kind of JSON patch operation: {_show(name)}")


def _pointer(op: dict[str, Any], member: str) -> _Pointer:
    text = op.get(member)
    if not isinstance(text, str):
        raise PatchError(f'JSON patch operation "{op.get("op")}" needs a string "{member}"')
    if text == "":
        return _Pointer(text, [])
    if not text.startswith("/") or _BAD_ESCAPE.search(text):
        raise PatchError(f'invalid JSON pointer: "{text}"')
    # ~1 before ~0, so that "~01" decodes to "~1" (RFC 6901 section 4).
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/")]
    return _Pointer(text, tokens)


def _operand(op: dict[str, Any]) -> Any:
    if "value" not in op:  # null is a valid value, so test presence, not truth
        raise PatchError(f'JSON patch operation "{op.get("op")}" needs a "value"')
    return op["value"]


def _missing(ptr: _Pointer) -> PatchError:
    return PatchError(f'doc is missing path: "{ptr.text}"')


def _index(token: str) -> int | None:
    return int(token) if _INDEX.fullmatch(token) else None


def _walk(doc: Any, tokens: list[str], ptr: _Pointer) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
            continue
        index = _index(token) if isinstance(node, list) else None
        if index is None or index >= len(node):
            raise _missing(ptr)
        node = node[index]
    return node


def _get(doc: Any, ptr: _Pointer) -> Any:
    return _walk(doc, ptr.tokens, ptr)


def _add(doc: Any, ptr: _Pointer, value: Any) -> Any:
    if not ptr.tokens:
        return value
    parent, last = _walk(doc, ptr.tokens[:-1], ptr), ptr.tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
        return doc
    if isinstance(parent, list):
        index = len(parent) if last == "-" else _index(last)
        if index is not None and index <= len(parent):
            parent.insert(index, value)
            return doc
    raise _missing(ptr)


def _remove(doc: Any, ptr: _Pointer) -> Any:
    if not ptr.tokens:
        raise PatchError("a JSON patch cannot remove the whole document")
    parent, last = _walk(doc, ptr.tokens[:-1], ptr), ptr.tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
        return doc
    index = _index(last) if isinstance(parent, list) else None
    if index is None or index >= len(parent):
        raise _missing(ptr)
    del parent[index]
    return doc


def _replace(doc: Any, ptr: _Pointer, value: Any) -> Any:
    if not ptr.tokens:
        return value
    parent, last = _walk(doc, ptr.tokens[:-1], ptr), ptr.tokens[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
        return doc
    index = _index(last) if isinstance(parent, list) else None
    if index is None or index >= len(parent):
        raise _missing(ptr)
    parent[index] = value
    return doc


def _move(doc: Any, source: _Pointer, target: _Pointer) -> Any:
    value = _get(doc, source)
    if source.tokens == target.tokens:
        return doc
    if target.tokens[: len(source.tokens)] == source.tokens:
        raise PatchError(f'cannot move "{source.text}" into its own child "{target.text}"')
    return _add(_remove(doc, source), target, value)


def _test(doc: Any, ptr: _Pointer, value: Any) -> Any:
    if _json_key(_get(doc, ptr)) != _json_key(value):
        raise PatchError(f'the "test" operation failed at {ptr.text or "the document root"}')
    return doc
