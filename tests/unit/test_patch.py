"""Tests for master/apiserver/patch/: RFC 7386, RFC 6902 and strategic merge."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.apiserver.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    OPAQUE,
    STRATEGIC_MERGE_PATCH,
    DictSchema,
    PatchError,
    UnsupportedPatchType,
    apply_json_patch,
    apply_merge_patch,
    apply_patch,
    apply_server_side,
    apply_strategic_merge_patch,
    decode_patch,
)

# A slice of the apps/v1 Deployment schema with the struct tags Kubernetes has.
CONTAINER: dict[str, Any] = {
    "ports": ("merge", "containerPort", {}),
    "env": ("merge", "name", {}),
    "volumeMounts": ("merge", "mountPath", {}),
    "command": ("", "", None),
}
POD_SPEC = {
    "containers": ("merge", "name", CONTAINER),
    "initContainers": ("merge", "name", CONTAINER),
    "volumes": ("merge,retainKeys", "name", {}),
}
META: dict[str, Any] = {"finalizers": ("merge", "", None), "ownerReferences": ("merge", "uid", {})}
SCHEMA = DictSchema({
    "metadata": META,
    "spec": {
        "strategy": {"rollingUpdate": {}},
        "template": {"metadata": META, "spec": POD_SPEC},
        "containers": ("merge", "name", CONTAINER),  # a Pod's spec, same schema object
    },
})


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a": "1"}},
        "spec": {"replicas": 2, **spec, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": list(containers)}}},
    }


def containers_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# --- RFC 7386 ------------------------------------------------------------------------

RFC7386_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]

KUBECTL_MERGE_PATCHES = [
    # kubectl label / annotate, with --overwrite and "key-" removal
    ({"metadata": {"labels": {"app": "x", "old": "y"}}},
     {"metadata": {"labels": {"env": "prod", "old": None}}},
     {"metadata": {"labels": {"app": "x", "env": "prod"}}}),
    ({"metadata": {"name": "x"}},
     {"metadata": {"annotations": {"note": "hi"}}},
     {"metadata": {"name": "x", "annotations": {"note": "hi"}}}),
    # kubectl scale on /scale
    ({"spec": {"replicas": 1}, "status": {"replicas": 1}},
     {"spec": {"replicas": 3}},
     {"spec": {"replicas": 3}, "status": {"replicas": 1}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_APPENDIX_A + KUBECTL_MERGE_PATCHES)
def test_merge_patch(original: Any, patch: Any, expected: Any) -> None:
    assert apply_merge_patch(original, patch) == expected


# --- RFC 6902 ------------------------------------------------------------------------

RFC6902_APPENDIX_A = [
    ("A.1", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A.2", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}],
     {"foo": ["bar", "baz"]}),
    ("A.5", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    ("A.6", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A.7", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A.8", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A.10", {"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A.11", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
     {"foo": "bar", "baz": "qux"}),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.16", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
    # beyond the appendix
    ("copy", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
     {"a": {"b": [1]}, "c": {"b": [1]}}),
    ("replace root", {"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ("add root", {"a": 1}, [{"op": "add", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("add null", {}, [{"op": "add", "path": "/a", "value": None}], {"a": None}),
    ("key with slash", {}, [{"op": "add", "path": "/a~1b", "value": 1}], {"a/b": 1}),
    ("empty key", {}, [{"op": "add", "path": "/", "value": 1}], {"": 1}),
    ("append at len", {"a": [1]}, [{"op": "add", "path": "/a/1", "value": 2}], {"a": [1, 2]}),
    ("move to itself", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    ("test int vs float", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ("test object order", {"a": {"x": 1, "y": [2]}},
     [{"op": "test", "path": "/a", "value": {"y": [2], "x": 1}}], {"a": {"x": 1, "y": [2]}}),
    ("digit key in object", {"0": "x"}, [{"op": "replace", "path": "/0", "value": "y"}], {"0": "y"}),
]


@pytest.mark.parametrize(("name", "doc", "ops", "expected"), RFC6902_APPENDIX_A)
def test_json_patch(name: str, doc: Any, ops: list[Any], expected: Any) -> None:
    assert apply_json_patch(doc, ops) == expected


RFC6902_ERRORS = [
    ("A.9", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
     'the "test" operation failed at /baz'),
    ("A.12", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
     'doc is missing path: "/baz/bat"'),
    ("A.15", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
     'the "test" operation failed at /~01'),
    ("bool is not 1", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], '"test" operation failed'),
    ("test missing", {}, [{"op": "test", "path": "/a", "value": None}], 'doc is missing path: "/a"'),
    ("remove missing", {"metadata": {"labels": {}}},
     [{"op": "remove", "path": "/metadata/labels/x"}], 'doc is missing path: "/metadata/labels/x"'),
    ("replace missing", {}, [{"op": "replace", "path": "/a", "value": 1}], "missing path"),
    ("index past end", {"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}], "missing path"),
    ("leading zero", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], "missing path"),
    ("dash on remove", {"a": [1]}, [{"op": "remove", "path": "/a/-"}], "missing path"),
    ("index into scalar", {"a": 1}, [{"op": "add", "path": "/a/b", "value": 1}], "missing path"),
    ("no slash", {}, [{"op": "add", "path": "a", "value": 1}], 'invalid JSON pointer: "a"'),
    ("bad escape", {}, [{"op": "add", "path": "/a~2", "value": 1}], "invalid JSON pointer"),
    ("no value", {}, [{"op": "add", "path": "/a"}], 'needs a "value"'),
    ("no path", {}, [{"op": "remove"}], 'needs a string "path"'),
    ("no from", {"a": 1}, [{"op": "copy", "path": "/b"}], 'needs a string "from"'),
    ("unknown op", {}, [{"op": "frobnicate", "path": "/a"}], "unexpected kind of JSON patch operation"),
    ("op not object", {}, ["add"], "not an object"),
    ("move into child", {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}],
     "into its own child"),
    ("remove root", {}, [{"op": "remove", "path": ""}], "whole document"),
]


@pytest.mark.parametrize(("name", "doc", "ops", "message"), RFC6902_ERRORS)
def test_json_patch_errors(name: str, doc: Any, ops: list[Any], message: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(PatchError, match=message.replace("(", r"\(")) as info:
        apply_json_patch(doc, ops)
    assert info.value.code == 422
    assert doc == before


def test_json_patch_must_be_a_list() -> None:
    with pytest.raises(PatchError) as info:
        apply_json_patch({}, {"op": "add"})
    assert info.value.code == 400


def test_json_patch_failure_applies_nothing() -> None:
    doc = {"a": 1}
    ops = [{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 3}]
    with pytest.raises(PatchError):
        apply_json_patch(doc, ops)
    assert doc == {"a": 1}


def test_json_patch_values_are_copied() -> None:
    value = {"x": 1}
    result = apply_json_patch({}, [{"op": "add", "path": "/a", "value": value},
                                   {"op": "add", "path": "/a/y", "value": 2}])
    assert result == {"a": {"x": 1, "y": 2}}
    assert value == {"x": 1}


def test_rollout_undo_json_patch() -> None:
    """kubectl rollout undo (KUBECTL.md section 2.10)."""
    live = deployment({"name": "web", "image": "nginx:1.26"})
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    old_template = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
    ops = [{"op": "replace", "path": "/spec/template", "value": old_template},
           {"op": "replace", "path": "/metadata/annotations",
            "value": {"deployment.kubernetes.io/revision": "2"}}]
    result = apply_json_patch(live, ops)
    assert result["spec"]["template"] == old_template
    assert result["spec"]["replicas"] == 2
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


# --- strategic merge patch -------------------------------------------------------------

WEB = {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
SIDECAR = {"name": "sidecar", "image": "busybox"}

SMP_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("kubectl apply (KUBECTL.md 2.5)",
     deployment(dict(WEB)),
     {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
      "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                     "containers": [{"image": "nginx:1.26", "name": "web"}]}}}},
     {**deployment({**WEB, "image": "nginx:1.26"}),
      "metadata": {"name": "web", "labels": {"app": "web"},
                   "annotations": {"a": "1", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
    ("kubectl set image keeps the other container",
     deployment(dict(WEB), dict(SIDECAR)),
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                                     "containers": [{"image": "nginx:1.27", "name": "web"}]}}}},
     deployment({**WEB, "image": "nginx:1.27"}, dict(SIDECAR))),
    ("kubectl rollout restart",
     deployment(dict(WEB)),
     {"spec": {"template": {"metadata": {"annotations": {
         "kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}}}}},
     {**deployment(dict(WEB)), "spec": {"replicas": 2, "template": {
         "metadata": {"labels": {"app": "web"},
                      "annotations": {"kubectl.kubernetes.io/restartedAt": "2024-01-01T00:00:00Z"}},
         "spec": {"containers": [dict(WEB)]}}}}),
    ("kubectl rollout pause", deployment(dict(WEB)), {"spec": {"paused": True}},
     deployment(dict(WEB), paused=True)),
    ("kubectl cordon", {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}},
     {"spec": {"unschedulable": True}},
     {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": True}}),
    ("labels merge, null deletes",
     deployment(dict(WEB)),
     {"metadata": {"labels": {"tier": "front", "app": None}, "annotations": None}},
     {**deployment(dict(WEB)), "metadata": {"name": "web", "labels": {"tier": "front"}}}),
    ("$patch: delete removes a container",
     deployment(dict(WEB), dict(SIDECAR)),
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                                     "containers": [{"$patch": "delete", "name": "sidecar"}]}}}},
     deployment(dict(WEB))),
    ("$patch: delete of an absent element is a no-op",
     deployment(dict(WEB)),
     {"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "name": "nope"}]}}}},
     deployment(dict(WEB))),
    ("new container is appended", deployment(dict(WEB)),
     {"spec": {"template": {"spec": {"containers": [dict(SIDECAR)]}}}},
     deployment(dict(WEB), dict(SIDECAR))),
    ("container fields merge recursively, ports by containerPort",
     deployment(dict(WEB)),
     {"spec": {"template": {"spec": {"containers": [
         {"name": "web", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
          "env": [{"name": "A", "value": "1"}]}]}}}},
     deployment({**WEB, "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                                  {"containerPort": 443}], "env": [{"name": "A", "value": "1"}]})),
    ("a list without merge strategy is replaced",
     deployment({"name": "web", "command": ["a", "b"]}),
     {"spec": {"template": {"spec": {"containers": [{"name": "web", "command": ["c"]}]}}}},
     deployment({"name": "web", "command": ["c"]})),
    ("an unknown list is replaced",
     {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}},
     {"spec": {"tolerations": [{"key": "c", "value": None}]}},
     {"spec": {"tolerations": [{"key": "c"}]}}),
    ("$patch: replace on a merge list",
     deployment(dict(WEB), dict(SIDECAR)),
     {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "x"}]}}}},
     deployment({"name": "new", "image": "x"})),
    ("$patch: replace with no elements empties the list",
     deployment(dict(WEB)),
     {"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}]}}}},
     deployment()),
    ("$patch: replace on a map",
     deployment(dict(WEB)),
     {"metadata": {"labels": {"$patch": "replace", "only": "me"}}},
     {**deployment(dict(WEB)), "metadata": {"name": "web", "labels": {"only": "me"}, "annotations": {"a": "1"}}}),
    ("$patch: delete on a map removes it",
     deployment(dict(WEB)),
     {"metadata": {"annotations": {"$patch": "delete"}}},
     {**deployment(dict(WEB)), "metadata": {"name": "web", "labels": {"app": "web"}}}),
    ("$patch: merge is the default",
     {"a": {"b": 1}}, {"a": {"$patch": "merge", "c": 2}}, {"a": {"b": 1, "c": 2}}),
    ("$retainKeys: RollingUpdate -> Recreate",
     deployment(dict(WEB), strategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}},
     deployment(dict(WEB), strategy={"type": "Recreate"})),
    ("$retainKeys keeps listed keys and merges them",
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
     {"spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"], "rollingUpdate": {"maxUnavailable": 0}}}},
     {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
    ("$retainKeys on merge-list elements (volumes)",
     {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}},
     {"spec": {"template": {"spec": {"volumes": [
         {"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "cm"}}]}}}},
     {"spec": {"template": {"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}}}),
    ("finalizers are a union, original first",
     {"metadata": {"finalizers": ["a", "b"]}}, {"metadata": {"finalizers": ["c", "a"]}},
     {"metadata": {"finalizers": ["a", "b", "c"]}}),
    ("$deleteFromPrimitiveList",
     {"metadata": {"finalizers": ["a", "b", "c"]}},
     {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"], "finalizers": ["d"]}},
     {"metadata": {"finalizers": ["a", "c", "d"]}}),
    ("$deleteFromPrimitiveList on an absent list",
     {"metadata": {}}, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}, {"metadata": {}}),
    ("null of an absent key is dropped", {"a": 1}, {"b": None, "c": {"d": None, "e": 1}},
     {"a": 1, "c": {"e": 1}}),
    ("directives inside a new value are applied, not stored",
     {}, {"metadata": {"labels": {"$patch": "delete"}, "annotations": {"$patch": "replace", "a": "b"}},
          "spec": {"template": {"spec": {"containers": [{"name": "x", "env": [{"name": "E", "$patch": "delete"}]}]}}}},
     {"metadata": {"annotations": {"a": "b"}}, "spec": {"template": {"spec": {"containers": [{"name": "x", "env": []}]}}}}),
    ("a type change replaces", {"a": [1], "b": {"c": 1}, "d": 1}, {"a": {"x": 1}, "b": [2], "d": {"e": None}},
     {"a": {"x": 1}, "b": [2], "d": {}}),
    ("merge keys compare as JSON (80 == 80.0)",
     {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}},
     {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80.0, "name": "http"}]}]}},
     {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}}),
    ("ownerReferences merge by uid",
     {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "controller": True}]}},
     {"metadata": {"ownerReferences": [{"uid": "1", "name": "a", "controller": True}, {"uid": "2", "name": "b"}]}}),
    ("top-level $patch: delete", {"a": 1}, {"$patch": "delete"}, {}),
    ("top-level $patch: replace", {"a": 1}, {"$patch": "replace", "b": 2}, {"b": 2}),
]


@pytest.mark.parametrize(("name", "original", "patch", "expected"), SMP_CASES)
def test_strategic_merge_patch(name: str, original: dict[str, Any], patch: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    assert apply_strategic_merge_patch(original, patch, SCHEMA) == expected
    assert original == before and patch == patch_before


def order_patch(order: list[Any], field: str, items: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    patch: dict[str, Any] = {f"$setElementOrder/{field}": order, **extra}
    if items is not None:
        patch[field] = items
    return {"spec": patch}


def names(*keys: Any) -> list[dict[str, Any]]:
    return [{"name": k} for k in keys]


ORDER_CASES: list[tuple[str, list[Any], dict[str, Any], list[Any]]] = [
    ("reorder without changes", names("b", "a"), order_patch(names("a", "b"), "containers"), names("a", "b")),
    ("new element placed by the order",
     names("a", "b"), order_patch(names("c", "a", "b"), "containers", [{"name": "c", "image": "i"}]),
     [{"name": "c", "image": "i"}, *names("a", "b")]),
    # Kubernetes' strategicpatch test "merge lists of maps".
    ("new elements at both ends",
     [{"name": 1}, {"name": 2, "value": 2}],
     order_patch(names(4, 1, 2, 3), "containers", [{"name": 4, "value": 4}, {"name": 3, "value": 3}]),
     [{"name": 4, "value": 4}, {"name": 1}, {"name": 2, "value": 2}, {"name": 3, "value": 3}]),
    ("order names an element that does not exist",
     names(1, 3), order_patch(names(3, 2, 1), "containers"), names(3, 1)),
    # Server-only elements keep their place relative to the live list
    # (Kubernetes' mergeSortedSlice): live [2, 5, 1, 3, 4], patch deletes 3, adds 6.
    ("server-only elements are interleaved by live order",
     names(2, 5, 1, 3, 4),
     order_patch(names(1, 2, 6), "containers", [{"name": 3, "$patch": "delete"}, {"name": 6}]),
     names(5, 1, 2, 6, 4)),
]


@pytest.mark.parametrize(("name", "live", "patch", "expected"), ORDER_CASES)
def test_set_element_order_on_merge_list(name: str, live: list[Any], patch: dict[str, Any],
                                         expected: list[Any]) -> None:
    result = apply_strategic_merge_patch({"spec": {"containers": live}}, patch, SCHEMA)
    assert result["spec"]["containers"] == expected


PRIMITIVE_ORDER_CASES = [
    ("reorder", [3, 1, 2], {"$setElementOrder/finalizers": [1, 2, 3]}, [1, 2, 3]),
    # Kubernetes' strategicpatch test "delete items in lists of scalars".
    ("delete keeps server-only", [1, 2, 3, 4],
     {"$setElementOrder/finalizers": [1, 2], "$deleteFromPrimitiveList/finalizers": [3]}, [1, 2, 4]),
    ("add and delete", [1, 2, 3],
     {"$setElementOrder/finalizers": [1, 2, 4], "$deleteFromPrimitiveList/finalizers": [3],
      "finalizers": [4]}, [1, 2, 4]),
    ("new value first", ["a"], {"$setElementOrder/finalizers": ["b", "a"], "finalizers": ["b"]}, ["b", "a"]),
]


@pytest.mark.parametrize(("name", "live", "patch", "expected"), PRIMITIVE_ORDER_CASES)
def test_set_element_order_on_primitive_list(name: str, live: list[Any], patch: dict[str, Any],
                                             expected: list[Any]) -> None:
    result = apply_strategic_merge_patch({"metadata": {"finalizers": live}}, {"metadata": patch}, SCHEMA)
    assert result["metadata"]["finalizers"] == expected


def test_set_element_order_ignored_on_replaced_list() -> None:
    original = {"spec": {"tolerations": ["b", "a"]}}
    patch = {"spec": {"$setElementOrder/tolerations": ["a", "b"]}}
    assert apply_strategic_merge_patch(original, patch, SCHEMA) == original


SMP_ERRORS = [
    ("missing merge key", {"spec": {"containers": [{"image": "x"}]}}, 422, "does not contain declared merge key: name"),
    ("null merge key", {"spec": {"containers": [{"name": None}]}}, 422, "does not contain declared merge key"),
    ("delete without merge key", {"spec": {"containers": [{"$patch": "delete"}]}}, 422, "merge key"),
    ("unknown directive key", {"spec": {"$frobnicate": 1}}, 400, 'unknown patch directive "\\$frobnicate"'),
    ("bare prefix", {"spec": {"$setElementOrder/": []}}, 400, "unknown patch directive"),
    ("unknown $patch", {"spec": {"$patch": "bogus"}}, 400, "unknown patch directive"),
    ("unknown $patch in a list", {"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}, 400, "directive"),
    ("delete in a primitive list", {"metadata": {"finalizers": [{"$patch": "delete"}]}}, 400, "directive"),
    ("non-object element", {"spec": {"containers": ["web"]}}, 400, "is not an object"),
    ("order entry not an object", {"spec": {"$setElementOrder/containers": ["web"]}}, 400, "is not an object"),
    ("order not a list", {"spec": {"$setElementOrder/containers": {"name": "x"}}}, 400, "must be a list"),
    ("delete list not a list", {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400, "must be a list"),
    ("retainKeys not a list", {"spec": {"strategy": {"$retainKeys": "type"}}}, 400, "retainKeys"),
    ("patch field outside retainKeys", {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
     400, 'field "rollingUpdate" is set but not listed'),
]


@pytest.mark.parametrize(("name", "patch", "code", "message"), SMP_ERRORS)
def test_strategic_merge_patch_errors(name: str, patch: dict[str, Any], code: int, message: str) -> None:
    original = {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "web"}],
                                                            "strategy": {"type": "Recreate"}}}
    with pytest.raises(PatchError, match=message) as info:
        apply_strategic_merge_patch(original, patch, SCHEMA)
    assert info.value.code == code


def test_strategic_merge_patch_rejects_non_objects() -> None:
    with pytest.raises(PatchError):
        apply_strategic_merge_patch({}, [], SCHEMA)  # type: ignore[arg-type]
    with pytest.raises(PatchError):
        apply_strategic_merge_patch([], {}, SCHEMA)  # type: ignore[arg-type]


def test_opaque_schema_replaces_lists() -> None:
    original = {"spec": {"containers": [{"name": "a"}], "finalizers": ["x"]}}
    patch = {"spec": {"containers": [{"name": "b"}], "finalizers": ["y"]}}
    assert apply_strategic_merge_patch(original, patch, OPAQUE) == patch


def test_deep_nesting_is_a_patch_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    for apply in (lambda: apply_merge_patch({}, deep), lambda: apply_strategic_merge_patch({}, deep, SCHEMA),
                  lambda: apply_json_patch({}, [{"op": "add", "path": "/a", "value": deep}])):
        with pytest.raises(PatchError) as info:
            apply()
        assert info.value.code == 400


# --- server-side apply and dispatch ---------------------------------------------------


def test_apply_server_side_creates_and_merges() -> None:
    applied = {"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.26"}]}}}}
    assert apply_server_side(None, applied, SCHEMA) == applied
    live = deployment(dict(WEB), dict(SIDECAR))
    result = apply_server_side(live, applied, SCHEMA)
    assert containers_of(result) == [{**WEB, "image": "nginx:1.26"}, SIDECAR]
    assert result["spec"]["replicas"] == 2  # not in the applied config: kept


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    (MERGE_PATCH, b'{"spec":{"replicas":3}}', {"spec": {"replicas": 3, "paused": False}}),
    ("application/merge-patch+json; charset=utf-8", '{"spec":{"paused":null}}', {"spec": {"replicas": 1}}),
    (STRATEGIC_MERGE_PATCH, b'{"spec":{"replicas":3}}', {"spec": {"replicas": 3, "paused": False}}),
    (JSON_PATCH, b'[{"op":"replace","path":"/spec/replicas","value":5}]', {"spec": {"replicas": 5, "paused": False}}),
    (APPLY_PATCH, bytearray(b'{"spec":{"replicas":4}}'), {"spec": {"replicas": 4, "paused": False}}),
    ("Application/Strategic-Merge-Patch+JSON", {"spec": {"paused": True}}, {"spec": {"replicas": 1, "paused": True}}),
])
def test_apply_patch_dispatch(content_type: str, body: Any, expected: Any) -> None:
    assert apply_patch(content_type, {"spec": {"replicas": 1, "paused": False}}, body, SCHEMA) == expected


@pytest.mark.parametrize(("content_type", "body", "code"), [
    ("application/json", b"{}", 415),
    ("text/plain", b"{}", 415),
    (MERGE_PATCH, b"{", 400),
    (MERGE_PATCH, b'{"a": NaN}', 400),
    (MERGE_PATCH, b"\xff\xfe\xfa", 400),
    (STRATEGIC_MERGE_PATCH, b"[]", 400),
    (APPLY_PATCH, b"a: b", 400),
    (JSON_PATCH, b'{"op":"add"}', 400),
])
def test_apply_patch_errors(content_type: str, body: bytes, code: int) -> None:
    with pytest.raises(PatchError) as info:
        apply_patch(content_type, {}, body, SCHEMA)
    assert info.value.code == code
    assert isinstance(info.value, UnsupportedPatchType) == (code == 415)


def test_decode_patch_nesting() -> None:
    with pytest.raises(PatchError):
        decode_patch("[" * 100_000 + "]" * 100_000)


# --- properties -----------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "name", "containers", "finalizers", "spec", "metadata", "value",
                        "$patch", "$retainKeys", "$setElementOrder/containers", "$setElementOrder/finalizers",
                        "$deleteFromPrimitiveList/finalizers", "$setElementOrder/a", "$bogus", ""])
SCALARS = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(["a", "b", "web", "replace", "delete", "merge", "name", "containers"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(KEYS, inner, max_size=4), max_leaves=25)
PLAIN_KEYS = st.sampled_from(["a", "b", "name", "containers", "finalizers", "spec", "metadata", "value"])
PLAIN_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(PLAIN_KEYS, inner, max_size=4), max_leaves=25)
FUZZ_SCHEMA = DictSchema({
    "containers": ("merge", "name", {"containers": ("merge", "name", {}), "finalizers": ("merge", "", None)}),
    "finalizers": ("merge", "", None),
    "spec": {"containers": ("merge", "name", {}), "a": ("merge,retainKeys", "value", {})},
})
POINTERS = st.sampled_from(["", "/", "/a", "/a/0", "/a/-", "/a/b", "/0", "/a/01", "/~0", "/~1", "/~2", "a",
                            "/name/1", "/containers/0/name"]) | st.integers() | st.none()
OPS = st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "nope", 3])},
    optional={"path": POINTERS, "from": POINTERS, "value": JSON})


def container_ids(value: Any, into: set[int]) -> set[int]:
    if isinstance(value, dict | list):
        into.add(id(value))
        for child in value.values() if isinstance(value, dict) else value:
            container_ids(child, into)
    return into


def assert_fresh(result: Any, *inputs: Any) -> None:
    """The result shares no dict or list with the inputs."""
    shared = container_ids(result, set()) & set().union(*(container_ids(i, set()) for i in inputs))
    assert not shared


@settings(max_examples=300)
@given(JSON, JSON)
def test_merge_patch_is_safe_and_idempotent(original: Any, patch: Any) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    once = apply_merge_patch(original, patch)
    assert original == before and patch == patch_before
    assert apply_merge_patch(once, patch) == once
    assert_fresh(once, original, patch)


@settings(max_examples=300)
@given(JSON, st.lists(OPS, max_size=5) | JSON)
def test_json_patch_only_raises_patch_error(original: Any, ops: Any) -> None:
    before, ops_before = copy.deepcopy(original), copy.deepcopy(ops)
    try:
        result = apply_json_patch(original, ops)
    except PatchError:
        pass
    else:
        assert_fresh(result, original, ops)
    assert original == before and ops == ops_before


@settings(max_examples=500)
@given(st.dictionaries(KEYS, JSON, max_size=4), st.dictionaries(KEYS, JSON, max_size=4))
def test_strategic_merge_patch_only_raises_patch_error(original: dict[str, Any], patch: dict[str, Any]) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    try:
        result = apply_strategic_merge_patch(original, patch, FUZZ_SCHEMA)
    except PatchError:
        pass
    else:
        assert isinstance(result, dict)
        assert_fresh(result, original, patch)
        json.dumps(result)  # still plain JSON
    assert original == before and patch == patch_before


@settings(max_examples=300)
@given(st.dictionaries(PLAIN_KEYS, PLAIN_JSON, max_size=4), st.dictionaries(PLAIN_KEYS, PLAIN_JSON, max_size=4))
def test_strategic_merge_patch_without_directives_is_idempotent(original: dict[str, Any],
                                                                patch: dict[str, Any]) -> None:
    try:
        once = apply_strategic_merge_patch(original, patch, FUZZ_SCHEMA)
    except PatchError:
        return
    assert apply_strategic_merge_patch(once, patch, FUZZ_SCHEMA) == once


@settings(max_examples=200)
@given(st.binary(max_size=64) | st.text(max_size=64),
       st.sampled_from([MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH, "x/y", ""]))
def test_apply_patch_only_raises_patch_error(body: bytes | str, content_type: str) -> None:
    try:
        apply_patch(content_type, {"a": [1]}, body, FUZZ_SCHEMA)
    except PatchError:
        pass
