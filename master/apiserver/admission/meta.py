"""Metadata rules every kind shares: names, labels, annotations, owners.

The name formats are Kubernetes' (DNS-1123 subdomain for most kinds,
DNS-1123 label for namespaces and services), with its error wording.
"""

from __future__ import annotations

import re
from typing import Any

from master.apiserver.errors import Cause, invalid, required
from protos.resources import ResourceInfo

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Kinds whose names must be DNS-1123 labels (they become DNS names or hostnames).
LABEL_NAMED = {"Namespace", "Service"}
ANNOTATIONS_MAX_BYTES = 256 * 1024

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def dns1123_label_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1123_LABEL.match(value):
        out.append(LABEL_MSG)
    return out


def dns1123_subdomain_errors(value: str) -> list[str]:
    out = []
    if len(value) > 253:
        out.append("must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        out.append(SUBDOMAIN_MSG)
    return out


def qualified_name_errors(value: str) -> list[str]:
    """Label/annotation keys: an optional DNS subdomain prefix, '/', a name."""
    prefix, slash, name = value.rpartition("/")
    out = []
    if slash:
        if not prefix:
            out.append("prefix part must be non-empty")
        else:
            out += [f"prefix part {e}" for e in dns1123_subdomain_errors(prefix)]
    if not name:
        out.append("name part must be non-empty")
    elif len(name) > 63:
        out.append("name part must be no more than 63 characters")
    elif not _QUALIFIED_NAME.match(name):
        out.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return out


def label_value_errors(value: str) -> list[str]:
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        out.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return out


def name_errors(kind: str, name: str) -> list[str]:
    return dns1123_label_errors(name) if kind in LABEL_NAMED else dns1123_subdomain_errors(name)


def validate(info: ResourceInfo, meta: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not meta.name:
        causes.append(Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name"))
    else:
        causes += [invalid("metadata.name", meta.name, e) for e in name_errors(info.kind, meta.name)]
    if info.namespaced:
        if not meta.namespace:
            causes.append(required("metadata.namespace"))
    elif meta.namespace:
        causes.append(Cause("FieldValueForbidden", "Forbidden: not allowed on this type", "metadata.namespace"))
    for k, v in meta.labels.items():
        causes += [invalid("metadata.labels", k, e) for e in qualified_name_errors(k)]
        causes += [invalid("metadata.labels", v, e) for e in label_value_errors(v)]
    size = 0
    for k, v in meta.annotations.items():
        causes += [invalid("metadata.annotations", k, e) for e in qualified_name_errors(k.lower())]
        size += len(k) + len(v)
    if size > ANNOTATIONS_MAX_BYTES:
        causes.append(Cause("FieldValueTooLong", f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes", "metadata.annotations"))
    for i, ref in enumerate(meta.owner_references):
        path = f"metadata.ownerReferences[{i}]"
        for attr, json_name in (("api_version", "apiVersion"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not getattr(ref, attr):
                causes.append(required(f"{path}.{json_name}"))
    controllers = sum(1 for r in meta.owner_references if r.HasField("controller") and r.controller)
    if controllers > 1:
        causes.append(invalid("metadata.ownerReferences", controllers, "Only one reference can have Controller set to true"))
    for i, fin in enumerate(meta.finalizers):
        causes += [invalid(f"metadata.finalizers[{i}]", fin, e) for e in qualified_name_errors(fin)]
    return causes
