"""Query-string parameters, parsed the way the Go apiserver parses them. Pure.

Booleans follow Go's strconv.ParseBool (the Python client <= 3x sends
`True`/`False`); anything unparseable is a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from master.apiserver import errors

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def go_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    if raw == "":
        return True if name == "watch" else default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise errors.BadRequest(f'invalid value for {name}: strconv.ParseBool: parsing "{raw}": invalid syntax')


def go_int(query: Mapping[str, str], name: str, *, minimum: int = 0, maximum: int = 2**31 - 1) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    body = raw[1:] if raw[:1] in "+-" else raw
    if not (body.isascii() and body.isdigit()) or len(body) > 18:
        raise errors.BadRequest(f'invalid value for {name}: strconv.ParseInt: parsing "{raw}": invalid syntax')
    value = int(raw)
    if not minimum <= value <= maximum:
        raise errors.BadRequest(f"invalid value for {name}: {value} is out of range [{minimum}, {maximum}]")
    return value


def dry_run(query: Mapping[str, str]) -> bool:
    values = query.getall("dryRun", []) if hasattr(query, "getall") else [query.get("dryRun")]  # type: ignore[attr-defined]
    values = [v for v in values if v is not None]
    if not values:
        return False
    for v in values:
        if v != "All":
            raise errors.BadRequest(f'Invalid dryRun value: "{v}": supported values: "All"')
    return True


FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


def field_validation(query: Mapping[str, str]) -> str:
    raw = query.get("fieldValidation", "")
    if raw == "":
        return "Warn"
    if raw not in FIELD_VALIDATION:
        raise errors.BadRequest(
            f'fieldValidation: Unsupported value: "{raw}": supported values: "Ignore", "Warn", "Strict"'
        )
    return raw


PROPAGATION = ("Orphan", "Background", "Foreground")


def propagation_policy(value: str | None) -> str:
    if not value:
        return ""
    if value not in PROPAGATION:
        raise errors.Invalid(
            "DeleteOptions", "",
            [errors.not_supported("propagationPolicy", value, list(PROPAGATION))],
        )
    return value
