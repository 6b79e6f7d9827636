"""Label and field selectors: parsing, validation, canonical text, matching.

Owns the two selector languages of list/watch requests, as Kubernetes
defines them, and the label key/value rules they share with metadata.labels:
* label selectors (`?labelSelector=`, and metav1.LabelSelector objects in
  Deployments, ReplicaSets, Services...):
  `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, and the
  numeric `k>3`, `k<3`; requirements separated by commas are ANDed;
* field selectors (`?fieldSelector=`): `f=v`, `f==v`, `f!=v`, ANDed with
  commas, values escaped with backslashes (`\\,` `\\=` `\\\\`); which fields a
  resource supports is the caller's list.
Pure: no I/O and no API types. Reading field values out of an object is
`object_fields`; which fields exist per resource is protos/resources.py's business.

Every problem with a selector, whatever the input, is a `SelectorError`
(the apiserver answers 400 with its message); nothing else is raised.

`nil` versus empty: Kubernetes' own code disagrees by call site (an empty
metav1.LabelSelector selects everything, a nil one sometimes nothing). Here
both None and {} select everything; a caller that needs "nil selects
nothing" (a Service without a selector) checks for None itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple


class SelectorError(ValueError):
    """A selector that cannot be parsed, or names something invalid."""


# --- label keys and values ------------------------------------------------------------

_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_NAME_RULE: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None if it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "prefix part must be non-empty"
    if "/" in prefix:
        return "a qualified name must have at most one '/' (e.g. 'example.com/MyName')"
    if slash and len(prefix) > 253:
        return "prefix part must be no more than 253 characters"
    if slash and not _DNS_SUBDOMAIN.fullmatch(prefix):
        return ("prefix part must be a lowercase RFC 1123 subdomain: lowercase alphanumeric "
                "characters, '-' or '.', starting and ending with an alphanumeric character")
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _NAME.fullmatch(name):
        return "name part " + _NAME_RULE
    return None


def label_value_error(value: str) -> str | None:
    """Why `value` is not a valid label value, or None if it is ("" is valid)."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if value and not _NAME.fullmatch(value):
        return "a valid label must be an empty string or " + _NAME_RULE
    return None


# --- label selectors ---------------------------------------------------------------------

EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_SET_OPERATORS: Final = frozenset({IN, NOT_IN})
_VALUE_OPERATORS: Final = frozenset({EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN})
_INT64: Final = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Requirement:
    """One ANDed term: `key`, one of the operator constants above, values.

    Values are sorted and unique (a set, as in Kubernetes).
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(sorted(set(self.values))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == EXISTS:
            return value is not None
        if self.operator == DOES_NOT_EXIST:
            return value is None
        if self.operator in (NOT_EQUALS, NOT_IN):
            return value is None or value not in self.values
        if value is None:
            return False
        if self.operator in (GREATER_THAN, LESS_THAN):
            return _compare(value, self.values[0], greater=self.operator == GREATER_THAN)
        return value in self.values

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in _SET_OPERATORS:
            # A lone empty value needs "(,)": "()" would read back as no values.
            inner = ",".join(self.values) if self.values != ("",) else ","
            return f"{self.key} {self.operator} ({inner})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"


def _compare(label: str, bound: str, *, greater: bool) -> bool:
    number, limit = _int64(label), _int64(bound)
    if number is None or limit is None:
        return False  # as in Kubernetes, a non-integer label never satisfies gt/lt
    return number > limit if greater else number < limit


def _int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64); Python's int() is far looser."""
    if not re.fullmatch(r"[-+]?[0-9]+", text):
        return None
    number = int(text)
    return number if number in _INT64 else None


@dataclass(frozen=True)
class LabelSelector:
    """ANDed requirements, kept sorted by key; none selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.requirements, key=lambda r: r.key))
        object.__setattr__(self, "requirements", ordered)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels if labels is not None else {}
        return all(r.matches(labels) for r in self.requirements)

    def to_string(self) -> str:
        """The canonical text, e.g. `app=x,tier in (a,b)` (Scale.status.selector)."""
        return ",".join(str(r) for r in self.requirements)

    def __str__(self) -> str:
        return self.to_string()


def requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A validated Requirement (SelectorError if the key, values or arity are wrong)."""
    values = tuple(values)
    why = label_key_error(key)
    if why:
        raise SelectorError(f'unable to parse requirement: invalid label key "{key}": {why}')
    if operator not in _SET_OPERATORS | _VALUE_OPERATORS | {EXISTS, DOES_NOT_EXIST}:
        raise SelectorError(f'unable to parse requirement: operator "{operator}" is not recognized')
    if operator in _SET_OPERATORS and not values:
        raise SelectorError("unable to parse requirement: for 'in', 'notin' operators, values set can't be empty")
    if operator in _VALUE_OPERATORS and len(values) != 1:
        raise SelectorError(f"unable to parse requirement: exact-match compatibility requires one value, got {len(values)}")
    if operator in (EXISTS, DOES_NOT_EXIST) and values:
        raise SelectorError("unable to parse requirement: values set must be empty for exists and does not exist")
    if operator in (GREATER_THAN, LESS_THAN) and _int64(values[0]) is None:
        raise SelectorError(f"unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer, got \"{values[0]}\"")
    for value in values:
        why = label_value_error(value)
        if why:
            raise SelectorError(f'unable to parse requirement: invalid label value "{value}": {why}')
    return Requirement(key, operator, values)


class _Token(NamedTuple):
    kind: str  # "ident", "in", "notin", an operator or punctuation symbol, or "end"
    text: str


_WHITESPACE: Final = frozenset(" \t\r\n")
_SPECIAL: Final = frozenset("!=(),<>")
_VALUE_KINDS: Final = frozenset({"ident", IN, NOT_IN})  # keywords are fine as values


def _lex(text: str) -> list[_Token]:
    tokens = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _WHITESPACE:
            i += 1
            continue
        if char in _SPECIAL:
            symbol = text[i:i + 2] if text[i:i + 2] in ("!=", "==") else char
            tokens.append(_Token(symbol, symbol))
            i += len(symbol)
            continue
        start = i
        while i < len(text) and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        tokens.append(_Token(word if word in (IN, NOT_IN) else "ident", word))
    tokens.append(_Token("end", ""))
    return tokens


def _found(token: _Token, expected: str) -> SelectorError:
    return SelectorError(f"found '{token.text}', expected: {expected}")


class _LabelParser:
    """Recursive descent over the tokens of one label selector."""

    def __init__(self, text: str) -> None:
        self._tokens = _lex(text)
        self._at = 0

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _take(self) -> _Token:
        token = self._tokens[self._at]
        self._at = min(self._at + 1, len(self._tokens) - 1)  # "end" repeats forever
        return token

    def parse(self) -> list[Requirement]:
        if self._peek().kind == "end":
            return []
        requirements = []
        while True:
            requirements.append(self._requirement())
            token = self._take()
            if token.kind == "end":
                return requirements
            if token.kind != ",":
                raise _found(token, "',' or 'end of string'")

    def _requirement(self) -> Requirement:
        token = self._take()
        if token.kind == "!":
            key = self._take()
            if key.kind != "ident":
                raise _found(key, "identifier")
            return requirement(key.text, DOES_NOT_EXIST)
        if token.kind != "ident":
            raise _found(token, "!, identifier")
        operator = self._peek()
        if operator.kind in ("end", ","):
            return requirement(token.text, EXISTS)
        self._take()
        if operator.kind in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            return requirement(token.text, operator.kind, [self._exact_value()])
        if operator.kind in (">", "<"):
            kind = GREATER_THAN if operator.kind == ">" else LESS_THAN
            return requirement(token.text, kind, [self._exact_value()])
        if operator.kind in _SET_OPERATORS:
            return requirement(token.text, operator.kind, self._value_set())
        raise _found(operator, "in, notin, =, ==, !=, >, <")

    def _exact_value(self) -> str:
        token = self._peek()
        if token.kind in ("end", ","):
            return ""  # `k=` selects the empty value, as in Kubernetes
        if token.kind not in _VALUE_KINDS:
            raise _found(token, "identifier")
        return self._take().text

    def _value_set(self) -> list[str]:
        token = self._take()
        if token.kind != "(":
            raise _found(token, "'('")
        if self._peek().kind == ")":
            self._take()
            return []
        values = []
        while True:
            token = self._peek()
            if token.kind in _VALUE_KINDS:
                values.append(self._take().text)
            elif token.kind in (",", ")"):
                values.append("")  # "(a,)" and "(,a)" hold an empty value
            else:
                raise _found(token, "',', ')' or identifier")
            separator = self._take()
            if separator.kind == ")":
                return values
            if separator.kind != ",":
                raise _found(separator, "',' or ')'")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse `?labelSelector=` text; "" (or only whitespace) selects everything."""
    if not isinstance(text, str):
        raise SelectorError(f"a label selector must be a string, not {type(text).__name__}")
    return LabelSelector(tuple(_LabelParser(text).parse()))


_EXPRESSION_OPERATORS: Final = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector JSON object (matchLabels, matchExpressions).

    None and {} select everything (see the module docstring).
    """
    if selector is None:
        return LabelSelector()
    if not isinstance(selector, Mapping):
        raise SelectorError("a label selector must be an object")
    match_labels = _or_default(selector.get("matchLabels"), {})
    expressions = _or_default(selector.get("matchExpressions"), [])
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object of strings")
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    requirements = []
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"matchLabels must map strings to strings, got {key!r}: {value!r}")
        requirements.append(requirement(key, EQUALS, [value]))
    requirements.extend(_expression(e) for e in expressions)
    return LabelSelector(tuple(requirements))


def _or_default(value: Any, default: Any) -> Any:
    return default if value is None else value  # not `or`: {} must still be type-checked


def _expression(expression: Any) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError("each of matchExpressions must be an object")
    key, operator = expression.get("key"), expression.get("operator")
    values = _or_default(expression.get("values"), [])
    if not isinstance(key, str):
        raise SelectorError("matchExpressions[].key must be a string")
    if not isinstance(operator, str) or operator not in _EXPRESSION_OPERATORS:
        raise SelectorError(f'"{operator}" is not a valid label selector operator')
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SelectorError("matchExpressions[].values must be a list of strings")
    return requirement(key, _EXPRESSION_OPERATORS[operator], values)


# --- field selectors -----------------------------------------------------------------


@dataclass(frozen=True)
class FieldSelector:
    """ANDed (field, "=" or "!=", value) terms in the order written."""

    terms: tuple[tuple[str, str, str], ...] = ()

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        """(field, op, value) with op "=" (also for "==") or "!="."""
        return list(self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        for field, operator, value in self.terms:
            actual = fields.get(field, "")  # absent reads as "", as in Kubernetes' fields.Set
            if (actual == value) != (operator == "="):
                return False
        return True

    def value_for(self, field: str) -> str | None:
        """The value `field` must equal, if the selector pins it with `=`."""
        return next((v for f, op, v in self.terms if f == field and op == "="), None)

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.terms)


def escape_field_value(value: str) -> str:
    """Escape a value for a field selector (the inverse of parsing)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def parse_field_selector(text: str, *, allowed: Iterable[str]) -> FieldSelector:
    """Parse `?fieldSelector=` text; fields outside `allowed` are rejected."""
    if not isinstance(text, str):
        raise SelectorError(f"a field selector must be a string, not {type(text).__name__}")
    supported = set(allowed)
    terms = []
    for term in _split_terms(text):
        if not term.strip():
            continue
        field, operator, raw = _split_term(text, term)
        value = _unescape(raw)
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        terms.append((field, "!=" if operator == "!=" else "=", value))
    return FieldSelector(tuple(terms))


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped by a backslash."""
    terms, start, escaped = [], 0, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(text: str, term: str) -> tuple[str, str, str]:
    for i in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, i):
                return term[:i].strip(), operator, term[i + len(operator):]
    raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        char = value[i]
        if char == "\\":
            sequence = value[i:i + 2]
            if len(sequence) < 2 or sequence[1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: {sequence}")
            out.append(sequence[1])
            i += 2
            continue
        if char in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {char}")
        out.append(char)
        i += 1
    return "".join(out)


# --- field values of objects -----------------------------------------------------------


def object_fields(obj: Mapping[str, Any], paths: Iterable[str]) -> dict[str, str]:
    """The field-selector view of a JSON object: dotted path -> text.

    Strings as they are, booleans "true"/"false", integers in decimal,
    anything missing (or not a scalar) "".
    """
    return {path: _field_text(_lookup(obj, path)) for path in paths}


def _lookup(obj: Any, path: str) -> Any:
    node = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return ""
