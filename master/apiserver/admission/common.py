"""Field rules shared by several kinds: ports, IntOrString, IPs, label maps, selectors.

Every helper returns a list of `Cause`s (empty when the value is fine) with
Kubernetes' field paths and wording, so a strategy can add them up and report
every problem at once. The DNS-1123 and qualified-name rules live in
`meta.py` and are reused here, not repeated.

Pure: no I/O. This module does not know any kind; the strategies do.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

from master.apiserver.admission import meta as meta_rules
from master.apiserver.admission.quantity import is_negative, quantity_errors
from master.apiserver.errors import Cause, forbidden, invalid, required

PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
NON_NEGATIVE_MSG = "must be greater than or equal to 0"
PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  "
    "or '93%', regex used for validation is '[0-9]+%')"
)
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_PERCENT = re.compile(r"^[0-9]+%$")
_IANA = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


# --- causes errors.py does not have ---------------------------------------------

def required_because(path: str, detail: str) -> Cause:
    return Cause("FieldValueRequired", f"Required value: {detail}", path)


def not_found(path: str, value: str) -> Cause:
    return Cause("FieldValueNotFound", f'Not found: "{value}"', path)


def too_long(path: str, limit: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: must have at most {limit} bytes", path)


def invalid_shown(path: str, shown: str, detail: str) -> Cause:
    """FieldValueInvalid with the value already formatted (maps, structs)."""
    return Cause("FieldValueInvalid", f"Invalid value: {shown}: {detail}", path)


def go_map(labels: Mapping[str, str]) -> str:
    """A label map as Go's %#v prints it (keys sorted), for Kubernetes' messages."""
    inner = ", ".join(f'"{k}":"{labels[k]}"' for k in sorted(labels))
    return "map[string]string{" + inner + "}"


# --- numbers ---------------------------------------------------------------------

def non_negative(path: str, value: int) -> list[Cause]:
    return [invalid(path, value, NON_NEGATIVE_MSG)] if value < 0 else []


def optional_non_negative(msg: Any, name: str, path: str) -> list[Cause]:
    return non_negative(path, getattr(msg, name)) if msg.HasField(name) else []


def port_number(path: str, value: int) -> list[Cause]:
    return [] if 1 <= value <= 65535 else [invalid(path, value, PORT_RANGE_MSG)]


def port_name_errors(name: str) -> list[str]:
    """Kubernetes' IsValidPortName (IANA_SVC_NAME)."""
    out = []
    if len(name) > 15:
        out.append("must be no more than 15 characters")
    if not _IANA.match(name):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        out.append("must not contain consecutive hyphens")
    if not _HAS_LETTER.search(name):
        out.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


def port_name(path: str, name: str) -> list[Cause]:
    return [invalid(path, name, e) for e in port_name_errors(name)]


# --- IntOrString (google.protobuf.Value) -------------------------------------------

def int_or_string(value: Any) -> int | str | None:
    """The Value as an int or a str; None when unset or of another JSON type."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return str(value.string_value)
    if kind == "number_value":
        n = value.number_value
        if n == n and abs(n) < 2**31 and float(n).is_integer():
            return int(n)
    return None


def shown(value: Any) -> str:
    """A Value printed for a message: strings quoted, whole numbers as ints."""
    v = int_or_string(value)
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if v is not None:
        return str(v)
    kind = value.WhichOneof("kind")
    return str(value.number_value) if kind == "number_value" else str(kind or "null")


def port_or_name(path: str, value: Any) -> list[Cause]:
    """A probe's or a service's target port: a number 1-65535 or an IANA_SVC_NAME."""
    v = int_or_string(value)
    if isinstance(v, str):
        return port_name(path, v)
    if v is None:
        if value.WhichOneof("kind") is None:
            return [required(path)]
        return [invalid_shown(path, shown(value), "must be an integer or a string")]
    return port_number(path, v)


def positive_int_or_percent(path: str, value: Any) -> list[Cause]:
    """Kubernetes' ValidatePositiveIntOrPercent (maxSurge, maxUnavailable)."""
    v = int_or_string(value)
    if isinstance(v, str):
        return [] if _PERCENT.match(v) else [invalid(path, v, PERCENT_MSG)]
    if v is None:
        return [invalid_shown(path, shown(value), "must be an integer or percentage (e.g '5%')")]
    return non_negative(path, v)


def int_or_percent_value(value: Any) -> int | None:
    """The number in 3 or "3%" (None when not parseable), for the 'both zero' checks."""
    v = int_or_string(value)
    if isinstance(v, str):
        return int(v[:-1]) if _PERCENT.match(v) and len(v) < 12 else None
    return v


def not_more_than_100_percent(path: str, value: Any) -> list[Cause]:
    v = int_or_string(value)
    if isinstance(v, str) and _PERCENT.match(v) and (int_or_percent_value(value) or 0) > 100:
        return [invalid(path, v, "must not be greater than 100%")]
    return []


# --- addresses -----------------------------------------------------------------

def ip(path: str, value: str) -> list[Cause]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [invalid(path, value, IP_MSG)]
    return []


def cidr(path: str, value: str) -> list[Cause]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, CIDR_MSG)]
    return [] if "/" in value else [invalid(path, value, CIDR_MSG)]


# --- names, keys, labels ---------------------------------------------------------------

def dns_label(path: str, value: str) -> list[Cause]:
    return [invalid(path, value, e) for e in meta_rules.dns1123_label_errors(value)]


def dns_subdomain(path: str, value: str) -> list[Cause]:
    return [invalid(path, value, e) for e in meta_rules.dns1123_subdomain_errors(value)]


def qualified_name(path: str, value: str) -> list[Cause]:
    return [invalid(path, value, e) for e in meta_rules.qualified_name_errors(value)]


def label_map(path: str, labels: Mapping[str, str]) -> list[Cause]:
    """Kubernetes' ValidateLabels: keys are qualified names, values label values."""
    causes: list[Cause] = []
    for k, v in labels.items():
        causes += qualified_name(path, k)
        causes += [invalid(path, v, e) for e in meta_rules.label_value_errors(v)]
    return causes


def config_key(path: str, key: str) -> list[Cause]:
    """Kubernetes' IsConfigMapKey: ConfigMap and Secret data keys, key selectors."""
    out = []
    if len(key) > 253:
        out.append("must be no more than 253 characters")
    if not _CONFIG_KEY.match(key):
        out.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        out.append("must not be '.'")
    elif key == "..":
        out.append("must not be '..'")
    elif key.startswith(".."):
        out.append("must not start with '..'")
    return [invalid(path, key, e) for e in out]


# --- quantities ------------------------------------------------------------------------

def quantity_map(path: str, values: Mapping[str, str]) -> list[Cause]:
    """Every value parses and is not negative; keys are qualified names."""
    causes: list[Cause] = []
    for name, text in values.items():
        key_path = f"{path}[{name}]"
        causes += qualified_name(key_path, name)
        errs = quantity_errors(text)
        if errs:
            causes += [invalid(key_path, text, e) for e in errs]
        elif is_negative(text):
            causes.append(invalid(key_path, text, NON_NEGATIVE_MSG))
    return causes


# --- label selectors ---------------------------------------------------------------------

def label_selector(path: str, sel: Any) -> list[Cause]:
    """Kubernetes' ValidateLabelSelector (metav1.LabelSelector)."""
    causes = label_map(f"{path}.matchLabels", sel.match_labels)
    for i, req in enumerate(sel.match_expressions):
        causes += selector_requirement(f"{path}.matchExpressions[{i}]", req)
    return causes


def selector_requirement(path: str, req: Any) -> list[Cause]:
    causes = qualified_name(f"{path}.key", req.key)
    if req.operator in ("In", "NotIn"):
        if not req.values:
            causes.append(required_because(
                f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif req.operator in ("Exists", "DoesNotExist"):
        if req.values:
            causes.append(forbidden(
                f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    else:
        causes.append(invalid(f"{path}.operator", req.operator, "not a valid selector operator"))
    return causes


def selector_is_empty(sel: Any) -> bool:
    return not sel.match_labels and not sel.match_expressions


def selector_matches(sel: Any, labels: Mapping[str, str]) -> bool:
    """Whether a (valid) LabelSelector selects `labels`; an empty one selects everything."""
    if any(labels.get(k) != v for k, v in sel.match_labels.items()):
        return False
    return all(_requirement_matches(r.key, r.operator, r.values, labels) for r in sel.match_expressions)


def _requirement_matches(key: str, op: str, values: Iterable[str], labels: Mapping[str, str]) -> bool:
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def same(a: Any, b: Any) -> bool:
    """Two messages (or two unset fields) hold the same content."""
    return bool(a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True))
