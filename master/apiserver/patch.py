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

Strategic merge, as Kubernetes' apimachinery applies it on the server:
* maps merge recursively; `null` deletes a key;
* a list whose field's patch strategy contains "merge" merges: with a merge
  key, elements are matched by that key and merged recursively, new ones are
  appended; without one (primitives), the result is the union, original
  values first; any other list is replaced whole;
* directives: `$patch: replace|delete|merge` on a map or as a merge-list
  element, `$retainKeys`, `$setElementOrder/<list>`,
  `$deleteFromPrimitiveList/<list>`; any other `$` key is an error.
`$setElementOrder` orders a merged list as Kubernetes does: listed elements
in the given order, unlisted (server-only) ones slotted in by their live
position. Differences from Kubernetes, on purpose: a map with `$patch:
delete` is removed (Kubernetes leaves `{}`); without `$setElementOrder`,
merged lists keep the live order and append new elements (Kubernetes
reorders the patched elements as the patch lists them, which puts a new
element first); `$setElementOrder` is not cross-checked against the patch
list (Kubernetes rejects a patch list whose order disagrees with it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Protocol, TypeVar

MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
JSON_PATCH: Final = "application/json-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"
PATCH_CONTENT_TYPES: Final = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)

_T = TypeVar("_T")


class PatchError(ValueError):
    """A patch that cannot be decoded (code 400) or applied (code 422)."""

    def __init__(self, message: str, *, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UnsupportedPatchType(PatchError):
    """The request's Content-Type is no patch format we apply (415)."""

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f'unsupported patch type "{content_type}": the body of the request was in an unknown '
            "format - accepted media types include: " + ", ".join(PATCH_CONTENT_TYPES),
            code=415,
        )


class PatchSchema(Protocol):
    """What strategic merge needs to know about the object at one position.

    A schema describes one JSON object type (a message). `name` is always a
    JSON field name of that object (lowerCamelCase).
    * `field(name)`: the schema of the object held in map field `name`, or
      None when unknown or opaque (map<string,string>, google.protobuf.Value):
      below it, plain JSON-merge rules apply (maps merge, lists are replaced).
    * `list_strategy(name)`: (patch_strategy, patch_merge_key) of list field
      `name`, e.g. ("merge", "name") for containers, ("merge", "") for
      finalizers, ("", "") for a list that is replaced whole. The strategy
      may be a comma list ("merge,retainKeys"); only "merge" matters here.
    * `item(name)`: the schema of the elements of list field `name` (None for
      primitives or unknown elements).
    """

    def field(self, name: str) -> PatchSchema | None: ...

    def list_strategy(self, name: str) -> tuple[str, str]: ...

    def item(self, name: str) -> PatchSchema | None: ...


class _Opaque:
    """The schema that knows nothing: JSON-merge rules with SMP directives."""

    def field(self, name: str) -> PatchSchema | None:
        return None

    def list_strategy(self, name: str) -> tuple[str, str]:
        return ("", "")

    def item(self, name: str) -> PatchSchema | None:
        return None


OPAQUE: Final[PatchSchema] = _Opaque()


class DictSchema:
    """A PatchSchema written as a nested dict (tests, small fixed types).

    A dict value is a nested object field; a tuple (strategy, merge_key,
    element) is a list field with that patch strategy, `element` being the
    dict schema of its elements or None; anything else is opaque:
        DictSchema({"metadata": {"finalizers": ("merge", "", None)},
                    "spec": {"containers": ("merge", "name", {"ports": ...})}})
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._spec = spec

    def field(self, name: str) -> PatchSchema | None:
        value = self._spec.get(name)
        return DictSchema(value) if isinstance(value, Mapping) else None

    def list_strategy(self, name: str) -> tuple[str, str]:
        value = self._spec.get(name)
        if isinstance(value, tuple) and len(value) >= 2:
            return (str(value[0]), str(value[1]))
        return ("", "")

    def item(self, name: str) -> PatchSchema | None:
        value = self._spec.get(name)
        if isinstance(value, tuple) and len(value) >= 3 and isinstance(value[2], Mapping):
            return DictSchema(value[2])
        return None


# --- shared helpers -------------------------------------------------------------


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value; other mappings/sequences become dict/list."""
    if isinstance(value, Mapping):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clone(v) for v in value]
    return value


def _json_key(value: Any) -> Hashable:
    """A hashable stand-in with JSON equality: 1 == 1.0, but true != 1."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, list):
        return ("list", tuple(_json_key(v) for v in value))
    if isinstance(value, dict):
        return ("obj", frozenset((k, _json_key(v)) for k, v in value.items()))
    raise PatchError(f"not a JSON value: {type(value).__name__}", code=400)


def _guarded(run: Callable[[], _T]) -> _T:
    # Recursion depth is the one resource a hostile document can exhaust here.
    try:
        return run()
    except RecursionError:
        raise PatchError("the patch or the object is nested too deeply", code=400) from None


def _show(value: Any) -> str:
    """A short rendering of a patch fragment for an error message."""
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


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


# --- Kubernetes strategic merge patch ---------------------------------------------

_PATCH: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"


class _Deleted:
    """What merging a map with `$patch: delete` yields: remove the field."""


_DELETED: Final = _Deleted()


def apply_strategic_merge_patch(
    original: Mapping[str, Any], patch: Mapping[str, Any], schema: PatchSchema
) -> dict[str, Any]:
    """Kubernetes' strategic merge patch of a JSON object (see the module doc)."""
    if not isinstance(original, Mapping):
        raise PatchError("the object to patch must be a JSON object")
    if not isinstance(patch, Mapping):
        raise PatchError("a strategic merge patch must be a JSON object", code=400)

    def run() -> dict[str, Any]:
        merged = _merge_map(_clone(original), _clone(patch), schema)
        return {} if isinstance(merged, _Deleted) else merged

    return _guarded(run)


def apply_server_side(
    original: Mapping[str, Any] | None, applied: Mapping[str, Any], schema: PatchSchema
) -> dict[str, Any]:
    """The simplified server-side apply this project implements.

    The applied configuration is strategically merged over the live object
    (None: the object does not exist yet and is created from `applied`).
    There is no field ownership: fields a manager stops applying are kept,
    and conflicts between managers are never reported.
    """
    return apply_strategic_merge_patch({} if original is None else original, applied, schema)


def _merge_map(orig: dict[str, Any], patch: dict[str, Any], schema: PatchSchema) -> Any:
    """Merge `patch` into `orig` (owned: mutated and returned) or return _DELETED."""
    if _PATCH in patch:
        directive = patch[_PATCH]
        rest = {k: v for k, v in patch.items() if k != _PATCH}
        if directive == "delete":
            return _DELETED
        if directive == "replace":
            return _merge_map({}, rest, schema)
        if directive != "merge":
            raise _bad_directive(directive, patch)
        patch = rest
    _check_keys(patch)
    if _RETAIN_KEYS in patch:
        _retain_keys(orig, patch)
    # Deletions first so that the result does not depend on key order in the patch.
    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            _delete_from_list(orig, key[len(_DELETE_FROM):], value)
    # $setElementOrder places elements relative to the live order, so remember it.
    ordered = [k[len(_SET_ORDER):] for k in patch if k.startswith(_SET_ORDER)]
    live_keys = {f: _list_keys(orig.get(f), schema.list_strategy(f)[1]) for f in ordered}
    for key, value in patch.items():
        if not key.startswith("$"):
            _merge_field(orig, key, value, schema)
    for field in ordered:
        _set_order(orig, field, patch[_SET_ORDER + field], schema, live_keys=live_keys[field])
    return orig


def _bad_directive(directive: Any, where: Any) -> PatchError:
    return PatchError(f"unknown patch directive {_show(directive)} in {_show(where)}", code=400)


def _check_keys(patch: dict[Any, Any]) -> None:
    for key in patch:
        if not isinstance(key, str):
            raise PatchError(f"invalid patch: key {key!r} is not a string", code=400)
        if not key.startswith("$") or key == _RETAIN_KEYS:
            continue
        for prefix in (_SET_ORDER, _DELETE_FROM):
            if key.startswith(prefix) and len(key) > len(prefix):
                if not isinstance(patch[key], list):
                    raise PatchError(f'invalid patch: "{key}" must be a list', code=400)
                break
        else:
            raise PatchError(f'unknown patch directive "{key}"', code=400)


def _retain_keys(orig: dict[str, Any], patch: dict[str, Any]) -> None:
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise PatchError('invalid patch: "$retainKeys" must be a list of field names', code=400)
    for key, value in patch.items():
        if value is not None and not key.startswith("$") and key not in keep:
            raise PatchError(f'invalid patch: field "{key}" is set but not listed in "$retainKeys"', code=400)
    for key in [k for k in orig if k not in keep]:
        del orig[key]


def _merge_field(orig: dict[str, Any], key: str, value: Any, schema: PatchSchema) -> None:
    if value is None:
        orig.pop(key, None)
        return
    current = orig.get(key)
    # A patch value with nothing of its type underneath merges into an empty
    # container, so its own directives and nulls are processed, never stored.
    if isinstance(value, dict):
        base = current if isinstance(current, dict) else {}
        merged = _merge_map(base, value, schema.field(key) or OPAQUE)
    elif isinstance(value, list):
        merged = _merge_list(current if isinstance(current, list) else [], value, schema, key)
    else:
        merged = value
    if isinstance(merged, _Deleted):
        orig.pop(key, None)
    else:
        orig[key] = merged


def _is_merge(strategy: str) -> bool:
    return "merge" in (s.strip() for s in strategy.split(","))


def _merge_list(orig: list[Any], patch: list[Any], schema: PatchSchema, key: str) -> list[Any]:
    strategy, merge_key = schema.list_strategy(key)
    if not _is_merge(strategy):
        return [_drop_nulls(v) for v in patch]
    if merge_key:
        return _merge_keyed_list(orig, patch, merge_key, schema.item(key) or OPAQUE)
    return _merge_primitive_list(orig, patch)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _merge_keyed_list(orig: list[Any], patch: list[Any], merge_key: str, item: PatchSchema) -> list[Any]:
    elements: list[dict[str, Any]] = []
    for element in patch:
        if not isinstance(element, dict):
            raise PatchError(f"invalid patch: {_show(element)} in a list merged by "
                             f'"{merge_key}" is not an object', code=400)
        directive = element.get(_PATCH, "merge")
        if directive == "replace":
            orig = []  # the list becomes the patch's other elements
        elif directive == "delete":
            doomed = _json_key(_merge_value(element, merge_key))
            orig = [e for e in orig if _list_key(e, merge_key) != doomed]
        elif directive == "merge":
            elements.append(element)
        else:
            raise _bad_directive(directive, element)
    for element in elements:
        wanted = _json_key(_merge_value(element, merge_key))
        index = next((i for i, e in enumerate(orig) if _list_key(e, merge_key) == wanted), None)
        merged = _merge_map({} if index is None else orig[index], element, item)
        if index is None:
            orig.append(merged)
        else:
            orig[index] = merged
    return orig


def _merge_value(element: dict[str, Any], merge_key: str) -> Any:
    # A null key is as good as none: it could never be matched again.
    if element.get(merge_key) is None:
        raise PatchError(f"map: {_show(element)} does not contain declared merge key: {merge_key}")
    return element[merge_key]


def _merge_primitive_list(orig: list[Any], patch: list[Any]) -> list[Any]:
    values: list[Any] = []
    for value in patch:
        if isinstance(value, dict) and _PATCH in value:
            if value[_PATCH] == "replace":
                orig = []
            elif value[_PATCH] != "merge":
                raise _bad_directive(value[_PATCH], value)
        else:
            values.append(value)
    return _unique(orig + values)


def _unique(values: list[Any]) -> list[Any]:
    seen: set[Hashable] = set()
    out = []
    for value in values:
        key = _json_key(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _delete_from_list(orig: dict[str, Any], field: str, values: list[Any]) -> None:
    current = orig.get(field)
    if isinstance(current, list):
        doomed = {_json_key(v) for v in values}
        orig[field] = [v for v in current if _json_key(v) not in doomed]


class _Unkeyed:
    """The identity of a stored merge-list element that lacks its merge key."""


def _list_key(element: Any, merge_key: str) -> Hashable:
    """An element's identity: its merge key's value, or the value itself."""
    if not merge_key:
        return _json_key(element)
    if isinstance(element, dict) and element.get(merge_key) is not None:
        return _json_key(element[merge_key])
    return _Unkeyed()  # equal to nothing: such elements are never matched


def _list_keys(value: Any, merge_key: str) -> list[Hashable]:
    return [_list_key(e, merge_key) for e in value] if isinstance(value, list) else []


def _set_order(
    orig: dict[str, Any], field: str, order: list[Any], schema: PatchSchema, *, live_keys: list[Hashable]
) -> None:
    """Apply `$setElementOrder/<field>` as Kubernetes does.

    Elements named in `order` come in that order; the other (server-only)
    elements keep their relative order and are slotted in before the first
    listed element that follows them in the live list.
    """
    current = orig.get(field)
    strategy, merge_key = schema.list_strategy(field)
    if not isinstance(current, list) or not _is_merge(strategy):
        return
    rank: dict[Hashable, int] = {}
    for position, entry in enumerate(order):
        rank.setdefault(_order_key(entry, merge_key, field), position)
    listed = sorted((e for e in current if _list_key(e, merge_key) in rank),
                    key=lambda e: rank[_list_key(e, merge_key)])
    others = [e for e in current if _list_key(e, merge_key) not in rank]
    live: dict[Hashable, int] = {}
    for position, key in enumerate(live_keys):
        live.setdefault(key, position)
    orig[field] = _interleave(others, listed, live, lambda e: _list_key(e, merge_key))


def _order_key(entry: Any, merge_key: str, field: str) -> Hashable:
    """Entries name elements by {merge_key: value} maps, primitives by value."""
    if not merge_key:
        return _json_key(entry)
    if not isinstance(entry, dict):
        raise PatchError(f'invalid patch: "{_SET_ORDER}{field}" entry {_show(entry)} is not an object', code=400)
    return _json_key(_merge_value(entry, merge_key))


def _interleave(
    others: list[Any], listed: list[Any], live: dict[Hashable, int], key: Callable[[Any], Hashable]
) -> list[Any]:
    out: list[Any] = []
    i = j = 0
    while i < len(others) and j < len(listed):
        mine, theirs = live.get(key(others[i])), live.get(key(listed[j]))
        if mine is not None and theirs is not None and mine < theirs:
            out.append(others[i])
            i += 1
        else:
            out.append(listed[j])
            j += 1
    return out + others[i:] + listed[j:]


# --- dispatch on the request's media type ---------------------------------------


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
