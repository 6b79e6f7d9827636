"""Kubernetes resource quantities ("500m", "1.5Gi", "1e3") parsed to exact fractions.

API objects keep quantities as the strings the client sent (DESIGN 1); this
module is the one helper that reads them. `parse_quantity` returns a
`Fraction` so that sums and comparisons (requests <= limits, quota usage)
are exact, as Kubernetes' inf.Dec arithmetic is. It raises `QuantityError`
with Kubernetes' own messages; callers turn those into 422 causes.

Pure: no I/O, no formatting back to canonical strings (the API keeps what the
client wrote).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

FORMAT_MSG = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
SUFFIX_MSG = "unable to parse quantity's suffix"
# Kubernetes has no digit limit (inf.Dec); ours keeps hostile input from
# costing quadratic int parsing or a 10**(10**9) power.
TOO_LONG_MSG = "quantities may have at most 64 digits and a decimal exponent of at most 1000"
_MAX_DIGITS = 64
_MAX_EXPONENT = 1000

_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?([0-9]*)(?:\.([0-9]*))?$")
_DECIMAL_EXP = re.compile(r"^[eE]([-+]?[0-9]+)$")

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class QuantityError(ValueError):
    """The string is not a quantity; the message is Kubernetes' wording."""


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity string, e.g. "100m" -> Fraction(1, 10).

    Memoised: manifests repeat a handful of quantities ("100m", "128Mi")
    thousands of times, and Fraction arithmetic is slow. Fractions are
    immutable, so the cached value is safe to share; errors are cached too.
    """
    # Long strings (never valid quantities, or hostile) bypass the cache.
    value, error = _parse_cached(text) if len(text) <= 2 * _MAX_DIGITS else _parse_checked(text)
    if error is not None:
        raise QuantityError(error)
    assert value is not None
    return value


def _parse_checked(text: str) -> tuple[Fraction | None, str | None]:
    try:
        return _parse(text), None
    except QuantityError as exc:
        return None, str(exc)


_parse_cached = lru_cache(maxsize=4096)(_parse_checked)


def _parse(text: str) -> Fraction:
    shape = _SHAPE.match(text)
    if shape is None:
        raise QuantityError(FORMAT_MSG)
    number, suffix = shape.group(1), shape.group(2)
    digits = _NUMBER.match(number)
    if digits is None or not (digits.group(1) or digits.group(2)):
        raise QuantityError(FORMAT_MSG)
    if len(number) > _MAX_DIGITS:
        raise QuantityError(TOO_LONG_MSG)
    return Fraction(number) * _multiplier(suffix)


def _multiplier(suffix: str) -> Fraction:
    if suffix in _BINARY:
        return Fraction(2 ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return Fraction(10) ** _DECIMAL[suffix]
    exp = _DECIMAL_EXP.match(suffix)
    if exp is None:
        raise QuantityError(SUFFIX_MSG)
    power = int(exp.group(1)) if len(exp.group(1)) <= 8 else _MAX_EXPONENT + 1
    if abs(power) > _MAX_EXPONENT:
        raise QuantityError(TOO_LONG_MSG)
    return Fraction(10) ** power


def is_negative(text: str) -> bool:
    """True for a quantity below zero (garbage is not negative). Memoised."""
    return _is_negative(text) if len(text) <= 2 * _MAX_DIGITS else _negative(text)


def exceeds(text: str, other: str) -> bool:
    """True when both parse and the first is greater (requests > limits). Memoised."""
    if len(text) <= 2 * _MAX_DIGITS and len(other) <= 2 * _MAX_DIGITS:
        return _exceeds(text, other)
    return _greater(text, other)


def _negative(text: str) -> bool:
    value = try_parse(text)
    return value is not None and value < 0


def _greater(text: str, other: str) -> bool:
    a, b = try_parse(text), try_parse(other)
    return a is not None and b is not None and a > b


_is_negative = lru_cache(maxsize=4096)(_negative)
_exceeds = lru_cache(maxsize=4096)(_greater)


def quantity_errors(text: str) -> list[str]:
    """[] when `text` parses, else the one reason it does not."""
    try:
        parse_quantity(text)
    except QuantityError as exc:
        return [str(exc)]
    return []


def try_parse(text: str) -> Fraction | None:
    """The value, or None for garbage (defaulting runs before validation)."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return None
