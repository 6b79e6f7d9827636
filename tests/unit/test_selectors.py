"""Tests for master/apiserver/selectors.py: label and field selectors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from master.apiserver.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    escape_field_value,
    label_key_error,
    label_selector_from_dict,
    label_value_error,
    object_fields,
    parse_field_selector,
    parse_label_selector,
    requirement,
)

# --- label selector parsing -------------------------------------------------------------

CANONICAL = [
    ("", ""),
    ("   ", ""),
    ("app=x", "app=x"),
    ("app==x", "app==x"),
    (" app = x , tier != db ", "app=x,tier!=db"),
    ("b,a", "a,b"),
    ("!foo", "!foo"),
    ("! foo", "!foo"),
    ("foo", "foo"),
    ("env in (prod, dev)", "env in (dev,prod)"),
    ("env in (prod,prod)", "env in (prod)"),
    ("env notin (a)", "env notin (a)"),
    ("env in(a),x", "env in (a),x"),
    ("example.com/key=v", "example.com/key=v"),
    ("k8s.io/app.kubernetes.io-name_x=A.b-c_9", "k8s.io/app.kubernetes.io-name_x=A.b-c_9"),
    ("k=", "k="),
    ("k=,j", "j,k="),
    ("k!=", "k!="),
    ("k in (a,)", "k in (,a)"),
    ("k in (,)", "k in (,)"),
    ("k=in", "k=in"),
    ("k in (in,notin)", "k in (in,notin)"),
    ("x>1", "x>1"),
    ("x < 10", "x<10"),
    ("kubernetes.io/cluster-service=true", "kubernetes.io/cluster-service=true"),
    ("a\tin\n(b)", "a in (b)"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL)
def test_label_selector_canonical_form(text: str, canonical: str) -> None:
    selector = parse_label_selector(text)
    assert str(selector) == canonical == selector.to_string()
    assert selector.empty == (canonical == "")
    assert parse_label_selector(canonical) == selector


LABEL_ERRORS = [
    ("a=(", "found '\\(', expected: identifier"),
    ("in", "found 'in', expected: !, identifier"),
    ("k in ()", "values set can't be empty"),
    ("k in (a", "found '', expected: ',' or '\\)'"),
    ("k in (a b)", "found 'b', expected: ',' or '\\)'"),
    ("k notin a", "found 'a', expected: '\\('"),
    ("k in (a,=)", "found '=', expected: ',', '\\)' or identifier"),
    ("a,", "found '', expected: !, identifier"),
    (",a", "found ',', expected: !, identifier"),
    ("a b", "found 'b', expected: in, notin"),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("!", "found '', expected: identifier"),
    ("!=a", "found '!=', expected: !, identifier"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("x/y/z", 'invalid label key "x/y/z"'),
    ("/a", "prefix part must be non-empty"),
    ("a/", "name part must be non-empty"),
    ("-a", 'invalid label key "-a"'),
    ("Example.com/a", "prefix part must be a lowercase RFC 1123 subdomain"),
    ("a" * 64, "name part must be no more than 63 characters"),
    ("a" * 254 + "/b", "prefix part must be no more than 253 characters"),
    ("a=-b", 'invalid label value "-b"'),
    ("a=b_", 'invalid label value "b_"'),
    ("a=" + "b" * 64, "must be no more than 63 characters"),
    ("a in (b, -c)", 'invalid label value "-c"'),
    ("k>x", "must be an integer"),
    ("k>", "must be an integer"),
    ("k>99999999999999999999", "must be an integer"),
    ("é=1", 'invalid label key "é"'),
]


@pytest.mark.parametrize(("text", "message"), LABEL_ERRORS)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        parse_label_selector(text)


def test_label_selector_rejects_non_strings() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(None)  # type: ignore[arg-type]


LABELS = {"app": "web", "tier": "front", "n": "5", "empty": ""}
MATCHES = [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("missing=x", False),
    ("missing=", False),
    ("empty=", True),
    ("app in (web,db)", True),
    ("app in (db)", False),
    ("missing in (a)", False),
    ("app notin (db)", True),
    ("app notin (web)", False),
    ("missing notin (a)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("n>4", True),
    ("n>5", False),
    ("n<6", True),
    ("app>1", False),
    ("missing<1", False),
]


@pytest.mark.parametrize(("text", "expected"), MATCHES)
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_matches_none_labels() -> None:
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)


# --- metav1.LabelSelector ------------------------------------------------------------------

FROM_DICT = [
    (None, ""),
    ({}, ""),
    ({"matchLabels": {"app": "x"}}, "app=x"),
    ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
    ({"matchLabels": None, "matchExpressions": None}, ""),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}, "tier in (a,b)"),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, "tier notin (a)"),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "tier"),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist", "values": []}]}, "!tier"),
    ({"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "env", "operator": "In", "values": [""]}]},
     "app=x,env in (,)"),
]


@pytest.mark.parametrize(("selector", "text"), FROM_DICT)
def test_label_selector_from_dict(selector: Any, text: str) -> None:
    parsed = label_selector_from_dict(selector)
    assert parsed.to_string() == text
    assert parse_label_selector(text) == parsed


FROM_DICT_ERRORS = [
    ([], "must be an object"),
    ({"matchLabels": ["a"]}, "matchLabels must be an object"),
    ({"matchLabels": {"a": 1}}, "strings to strings"),
    ({"matchLabels": {"a": "-"}}, "invalid label value"),
    ({"matchLabels": {"a b": "x"}}, "invalid label key"),
    ({"matchExpressions": {}}, "must be a list"),
    ({"matchExpressions": ["a"]}, "must be an object"),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
     '"Equals" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "values set must be empty"),
    ({"matchExpressions": [{"key": 1, "operator": "Exists"}]}, "key must be a string"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}, "list of strings"),
]


@pytest.mark.parametrize(("selector", "message"), FROM_DICT_ERRORS)
def test_label_selector_from_dict_errors(selector: Any, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        label_selector_from_dict(selector)


def test_requirement_builder_and_dataclasses() -> None:
    assert requirement("a", IN, ["y", "x", "y"]) == Requirement("a", IN, ("x", "y"))
    assert LabelSelector((Requirement("b", EXISTS), Requirement("a", DOES_NOT_EXIST))).to_string() == "!a,b"
    with pytest.raises(SelectorError, match="not recognized"):
        requirement("a", "~", ["x"])
    with pytest.raises(SelectorError, match="one value"):
        requirement("a", EQUALS, ["x", "y"])


@pytest.mark.parametrize(("key", "ok"), [
    ("app", True), ("a", True), ("A.b_c-d", True), ("example.com/app", True), ("a.b.c/x", True),
    ("", False), ("a_", False), ("_a", False), ("a/b/c", False), ("EXAMPLE.com/a", False),
    ("ex_ample.com/a", False), ("-example.com/a", False), ("a" * 63, True), ("a" * 64, False),
])
def test_label_key_error(key: str, ok: bool) -> None:
    assert (label_key_error(key) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    ("", True), ("x", True), ("1.2_3-a", True), ("a" * 63, True), ("a" * 64, False),
    ("-a", False), ("a.", False), ("a b", False), ("ä", False),
])
def test_label_value_error(value: str, ok: bool) -> None:
    assert (label_value_error(value) is None) is ok


# --- field selectors ------------------------------------------------------------------------

ALLOWED = ("metadata.name", "metadata.namespace", "spec.nodeName", "status.phase",
           "involvedObject.name", "involvedObject.uid", "involvedObject.kind")

FIELD_CASES = [
    ("", []),
    ("metadata.name=x", [("metadata.name", "=", "x")]),
    ("metadata.name==x", [("metadata.name", "=", "x")]),
    ("spec.nodeName=node1,status.phase!=Succeeded,status.phase!=Failed",
     [("spec.nodeName", "=", "node1"), ("status.phase", "!=", "Succeeded"), ("status.phase", "!=", "Failed")]),
    ("involvedObject.name=x,involvedObject.uid=1-2", [("involvedObject.name", "=", "x"),
                                                      ("involvedObject.uid", "=", "1-2")]),
    (r"metadata.name=a\,b\=c\\d", [("metadata.name", "=", "a,b=c\\d")]),
    ("metadata.name=", [("metadata.name", "=", "")]),
    (",metadata.name=x,", [("metadata.name", "=", "x")]),
    (" metadata.name =x", [("metadata.name", "=", "x")]),
]


@pytest.mark.parametrize(("text", "terms"), FIELD_CASES)
def test_field_selector_parse(text: str, terms: list[tuple[str, str, str]]) -> None:
    selector = parse_field_selector(text, allowed=ALLOWED)
    assert selector.requirements == terms
    assert selector.empty == (not terms)
    assert parse_field_selector(str(selector), allowed=ALLOWED) == selector


FIELD_ERRORS = [
    ("spec.foo=x", "field label not supported: spec.foo"),
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("metadata.name=x,bad", "can't understand 'bad'"),
    ("metadata.name=a=b", "unescaped character in value: ="),
    ("metadata.name=a\\x", r"invalid escape sequence: \\x"),
    ("metadata.name=a\\", r"invalid escape sequence: \\"),
    ("=x", "field label not supported: $"),
]


@pytest.mark.parametrize(("text", "message"), FIELD_ERRORS)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        parse_field_selector(text, allowed=ALLOWED)


FIELDS = {"metadata.name": "x", "spec.nodeName": "node1", "status.phase": "Running"}


@pytest.mark.parametrize(("text", "expected"), [
    ("", True),
    ("metadata.name=x", True),
    ("metadata.name=y", False),
    ("metadata.name!=y", True),
    ("spec.nodeName=node1,status.phase!=Succeeded,status.phase!=Failed", True),
    ("spec.nodeName=node1,status.phase!=Running", False),
    ("metadata.namespace=", True),  # absent reads as ""
    ("metadata.namespace!=", False),
])
def test_field_selector_matches(text: str, expected: bool) -> None:
    assert parse_field_selector(text, allowed=ALLOWED).matches(FIELDS) is expected


def test_field_selector_value_for() -> None:
    selector = parse_field_selector("status.phase!=x,metadata.name=web,metadata.name=other", allowed=ALLOWED)
    assert selector.value_for("metadata.name") == "web"
    assert selector.value_for("status.phase") is None
    assert selector.value_for("spec.nodeName") is None
    assert FieldSelector().value_for("metadata.name") is None


def test_field_selector_string_escapes() -> None:
    assert str(FieldSelector((("metadata.name", "=", "a,b"), ("status.phase", "!=", "x=\\")))) == \
        r"metadata.name=a\,b,status.phase!=x\=\\"
    assert escape_field_value("plain") == "plain"


OBJECT = {
    "metadata": {"name": "p", "namespace": "default"},
    "spec": {"nodeName": "n1", "unschedulable": True, "replicas": 3, "ratio": 1.5, "whole": 2.0,
             "list": [1], "map": {"a": 1}, "nothing": None},
    "status": {"phase": "Running"},
    "involvedObject": {"uid": "u-1"},
}


def test_object_fields() -> None:
    paths = ["metadata.name", "metadata.namespace", "spec.nodeName", "spec.unschedulable", "spec.replicas",
             "spec.ratio", "spec.whole", "spec.list", "spec.map", "spec.nothing", "status.phase",
             "involvedObject.uid", "involvedObject.kind", "missing.deep.path", "metadata.name.more"]
    assert object_fields(OBJECT, paths) == {
        "metadata.name": "p", "metadata.namespace": "default", "spec.nodeName": "n1",
        "spec.unschedulable": "true", "spec.replicas": "3", "spec.ratio": "1.5", "spec.whole": "2",
        "spec.list": "", "spec.map": "", "spec.nothing": "", "status.phase": "Running",
        "involvedObject.uid": "u-1", "involvedObject.kind": "", "missing.deep.path": "",
        "metadata.name.more": "",
    }
    assert object_fields({"spec": {"unschedulable": False}}, ["spec.unschedulable"]) == {"spec.unschedulable": "false"}


# --- properties -----------------------------------------------------------------------------

SELECTOR_ALPHABET = st.sampled_from(list("ab=!(),<> \t\\/.-_9éZ") + ["in", "notin", "=="])
SELECTOR_TEXT = st.lists(SELECTOR_ALPHABET, max_size=20).map("".join) | st.text(max_size=30)


@settings(max_examples=500)
@given(SELECTOR_TEXT)
def test_label_parser_only_raises_selector_error_and_is_canonical(text: str) -> None:
    try:
        selector = parse_label_selector(text)
    except SelectorError:
        return
    canonical = str(selector)
    assert parse_label_selector(canonical) == selector
    assert str(parse_label_selector(canonical)) == canonical


FIELD_TERMS = st.tuples(st.sampled_from(["a", "b", "a.b", "ab", "c", " a"]), st.sampled_from(["=", "==", "!=", ""]),
                        st.lists(st.sampled_from(list("xy,=\\! ")), max_size=5).map("".join))
FIELD_TEXT = st.lists(FIELD_TERMS.map("".join), max_size=4).map(",".join)


@settings(max_examples=500)
@given(SELECTOR_TEXT | FIELD_TEXT)
def test_field_parser_only_raises_selector_error(text: str) -> None:
    try:
        selector = parse_field_selector(text, allowed=["a", "b", "a.b", "ab"])
    except SelectorError:
        return
    assert parse_field_selector(str(selector), allowed=["a", "b", "a.b", "ab"]) == selector


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                       max_leaves=10)
SELECTOR_DICTS = st.fixed_dictionaries({}, optional={
    "matchLabels": st.dictionaries(st.sampled_from(["a", "b", "-"]), st.sampled_from(["x", "", "-"])) | JSONISH,
    "matchExpressions": st.lists(st.fixed_dictionaries({}, optional={
        "key": st.sampled_from(["a", "b/c", ""]) | JSONISH,
        "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "in"]) | JSONISH,
        "values": st.lists(st.sampled_from(["x", "y", "", "-"]), max_size=3) | JSONISH,
    }), max_size=3) | JSONISH,
}) | JSONISH


@settings(max_examples=500)
@given(SELECTOR_DICTS)
def test_label_selector_from_dict_only_raises_selector_error(selector: Any) -> None:
    try:
        parsed = label_selector_from_dict(selector)
    except SelectorError:
        return
    assert parse_label_selector(str(parsed)) == parsed


NAMES = st.from_regex(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?", fullmatch=True)
PREFIXES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\.[a-z0-9]{1,5}){0,2}", fullmatch=True)
# "in" and "notin" are the selector language's keywords: Kubernetes' lexer
# reads them as operators, never as a key, so "in=x" is no valid selector.
KEYS = st.one_of(NAMES, st.tuples(PREFIXES, NAMES).map("/".join)).filter(lambda k: k not in ("in", "notin"))
VALUES = st.one_of(st.just(""), NAMES)
REQUIREMENTS = st.one_of(
    st.tuples(KEYS, st.sampled_from(["=", "==", "!="]), VALUES).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.tuples(KEYS, st.sampled_from(["in", "notin"]), st.lists(VALUES, min_size=1, max_size=3))
    .map(lambda t: f"{t[0]} {t[1]} ({', '.join(t[2]) or ','})"),  # a lone "" is written "(,)"
    KEYS,
    KEYS.map(lambda k: "!" + k),
    st.tuples(KEYS, st.sampled_from([">", "<"]), st.integers(0, 10**6)).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
)


@settings(max_examples=300)
@given(st.lists(REQUIREMENTS, max_size=5).map(",".join))
def test_valid_label_selectors_round_trip(text: str) -> None:
    selector = parse_label_selector(text)
    assert parse_label_selector(str(selector)) == selector
    assert str(parse_label_selector(str(selector))) == str(selector)


@settings(max_examples=200)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_match_labels_select_their_own_labels(labels: dict[str, str]) -> None:
    selector = label_selector_from_dict({"matchLabels": labels})
    assert selector.matches(labels)
    assert parse_label_selector(str(selector)).matches(labels)
    assert selector.empty == (not labels)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from(ALLOWED), st.sampled_from(["=", "!="]), st.text(max_size=8)), max_size=4))
def test_field_selectors_round_trip(terms: list[tuple[str, str, str]]) -> None:
    selector = FieldSelector(tuple(terms))
    assert parse_field_selector(str(selector), allowed=ALLOWED) == selector
