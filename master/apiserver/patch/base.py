"""What every PATCH type shares: the media types, the `PatchError` tree, the
`PatchSchema` protocol (with `OPAQUE` and `DictSchema`), and the JSON-value
helpers (deep copy, JSON equality, the recursion guard, error-message snippets).

Pure: no I/O, no API type. The algorithms are in jsonpatch.py (RFC 7386,
RFC 6902) and strategic.py (strategic merge, server-side apply).
"""

from __future__ import annotations

import json
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
