"""Safety property of admission: any well-typed object either passes or is a 422.

Objects are generated from the protobuf descriptors (every field, with
type-correct JSON values biased towards the words Kubernetes validation
cares about), decoded with the REST codec, then admitted. Admission must
never raise anything but an APIError with code 422, and what it accepts must
encode back to JSON and be accepted again as an update.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from master.apiserver.admission import admit_create, admit_update
from master.apiserver.errors import APIError
from protos.codec import DecodeError, from_dict, to_dict
from protos.flotilla import options_pb2
from protos.resources import RESOURCES
from tests.unit.admission_cases import NOW, info_for

WORDS = [
    "", "a", "web", "app", "Always", "Never", "OnFailure", "IfNotPresent", "TCP", "UDP", "SCTP",
    "In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Equal", "NoSchedule", "NoExecute",
    "ClusterFirst", "None", "Default", "ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
    "RollingUpdate", "Recreate", "OnDelete", "File", "HTTP", "HTTPS", "Indexed", "NonIndexed",
    "metadata.name", "spec.nodeName", "limits.cpu", "cpu", "memory", "100m", "1.5Gi", "1e3", "-1",
    "1Zi", "25%", "150%", "10.0.0.1", "10.244.0.0/24", "::1", "nginx", "nginx:latest", "a/b",
    "example.com/key", "x" * 70, "1e999999", "9" * 80, "@hourly", "*/5 * * * *", "61 * * * *",
    "Europe/Paris", "Mars/Base", "../x", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson",
    ".dockerconfigjson", "tls.crt", "..", "http", "8080", "DoNotSchedule", "Ready", "True", "Normal",
]
STRINGS = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
INTS = st.one_of(st.integers(-3, 70000), st.sampled_from([0, 1, 2**31 - 1, -(2**31), 420, 30000]))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), INTS, STRINGS,
                         st.floats(allow_nan=False, allow_infinity=False, width=32))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(STRINGS, inner, max_size=2)), max_leaves=4)
TIMESTAMPS = st.sampled_from(["2024-05-02T12:00:00Z", "1970-01-01T00:00:00Z"])
BASE64 = st.sampled_from(["", "eA==", "e30=", "e25vcGU="])  # "", "x", "{}", "{nope"

_cache: dict[str, st.SearchStrategy[Any]] = {}


def message_json(desc: Descriptor) -> st.SearchStrategy[Any]:
    """JSON for one message with at most three of its fields set (sparse, so that
    merged onto a valid object it perturbs a few places rather than all)."""
    name = desc.full_name
    if name == "google.protobuf.Timestamp":
        return TIMESTAMPS
    if name == "google.protobuf.Value":
        return JSON_VALUES
    if name == "google.protobuf.Struct":
        return st.dictionaries(STRINGS, JSON_VALUES, max_size=2)
    if name not in _cache:
        fields = {fd.json_name: field_json(fd) for fd in desc.fields}
        _cache[name] = st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True).flatmap(
            lambda keys: st.fixed_dictionaries({k: fields[k] for k in keys}))
    return _cache[name]


def field_json(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    mt = fd.message_type
    if mt is not None and mt.GetOptions().map_entry:
        value_fd = mt.fields_by_name["value"]
        return st.dictionaries(STRINGS, single_json(value_fd, quantity=_is_quantity(fd)), max_size=3)
    one = single_json(fd, quantity=_is_quantity(fd))
    return st.lists(one, max_size=3) if fd.is_repeated else one


def _is_quantity(fd: FieldDescriptor) -> bool:
    return bool(fd.GetOptions().Extensions[options_pb2.quantity])


def single_json(fd: FieldDescriptor, *, quantity: bool) -> st.SearchStrategy[Any]:
    if fd.message_type is not None:
        mt = fd.message_type
        return st.deferred(lambda: message_json(mt))
    if quantity:
        return st.one_of(STRINGS, st.integers(-5, 10**6))
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return STRINGS
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_BYTES:
        return BASE64
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    return INTS


def merge(base: Any, patch: Any) -> Any:
    """`patch` laid over `base`: dicts key by key, lists item by item."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{k: merge(base[k], v) if k in base else v for k, v in patch.items()}}
    if isinstance(base, list) and isinstance(patch, list) and patch:
        return [merge(b, p) for b, p in zip(base, patch, strict=False)] + patch[len(base):]
    return patch


_TEMPLATE = {"metadata": {"labels": {"app": "web"}},
             "spec": {"containers": [{"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}}
_SELECTED = {"selector": {"matchLabels": {"app": "web"}}, "template": _TEMPLATE}
_JOB = {"template": merge(_TEMPLATE, {"spec": {"restartPolicy": "Never"}})}
BASES: dict[str, dict[str, Any]] = {
    "Pod": {"spec": _TEMPLATE["spec"]},
    "Deployment": {"spec": _SELECTED}, "ReplicaSet": {"spec": _SELECTED},
    "DaemonSet": {"spec": _SELECTED}, "StatefulSet": {"spec": _SELECTED},
    "ReplicationController": {"spec": {"template": _TEMPLATE}},
    "Job": {"spec": _JOB}, "CronJob": {"spec": {"schedule": "@daily", "jobTemplate": {"spec": _JOB}}},
    "Service": {"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    "Endpoints": {"subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]},
    "Event": {"involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}},
    "Secret": {"data": {"a": "eA=="}}, "ConfigMap": {"data": {"a": "x"}},
    "Node": {"spec": {"podCIDR": "10.244.1.0/24"}}, "Lease": {"spec": {"leaseDurationSeconds": 10}},
    "ResourceQuota": {"spec": {"hard": {"pods": "10"}}}, "Namespace": {},
}


def kind_json(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid object of `kind` with a few random, well-typed changes, or none."""
    info = info_for(kind)
    desc = info.message_class().DESCRIPTOR
    name_meta = {"name": "web-1", **({"namespace": "default"} if info.namespaced else {})}
    base = {**BASES[kind], "metadata": name_meta}
    patches = st.lists(message_json(desc), max_size=3)
    return patches.map(lambda ps: _merge_all(base, ps))


def _merge_all(base: dict[str, Any], patches: list[Any]) -> dict[str, Any]:
    for patch in patches:
        base = merge(base, patch)
    return base


def decode_or_none(kind: str, body: dict[str, Any]) -> Any:
    try:
        msg, _ = from_dict(info_for(kind).message_class(), body)
    except DecodeError:
        return None  # a 400 at the REST layer; admission never sees it
    return msg


def admit_or_422(kind: str, body: dict[str, Any], old: Any = None) -> Any:
    msg = decode_or_none(kind, body)
    if msg is None:
        return None
    info = info_for(kind)
    try:
        if old is None:
            admit_create(info, msg, now=NOW)
        else:
            admit_update(info, msg, old)
    except APIError as exc:
        assert exc.code == 422, exc
        assert exc.causes, exc
        return None
    to_dict(msg)  # what is accepted must encode
    return msg


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(first=kind_json("Pod"), second=kind_json("Pod"))
def test_any_pod_is_admitted_or_rejected_with_422(first: dict[str, Any], second: dict[str, Any]) -> None:
    old = admit_or_422("Pod", first)
    if old is not None:
        admit_or_422("Pod", second, old=old)
        again = type(old)()
        again.CopyFrom(old)
        admit_update(info_for("Pod"), again, old)  # an unchanged object stays valid


@pytest.mark.parametrize("kind", sorted({r.kind for r in RESOURCES} - {"Pod"}))
def test_any_object_is_admitted_or_rejected_with_422(kind: str) -> None:
    @settings(max_examples=40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(first=kind_json(kind), second=kind_json(kind))
    def check(first: dict[str, Any], second: dict[str, Any]) -> None:
        old = admit_or_422(kind, first)
        if old is not None:
            admit_or_422(kind, second, old=old)

    check()
