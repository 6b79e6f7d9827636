"""Kubernetes' strategic merge patch (SMP) and the simplified server-side apply
built on it, steered by a caller's `PatchSchema` (base.py).

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

Pure: no I/O, no API type; failures are `PatchError`s.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from master.apiserver.patch.base import (
    OPAQUE,
    PatchError,
    PatchSchema,
    _clone,
    _guarded,
    _json_key,
    _show,
)

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
