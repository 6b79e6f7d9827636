"""Label and node-selector matching as the scheduler needs it.

Owns: LabelSelector (matchLabels + In/NotIn/Exists/DoesNotExist), node
selector requirements (In, NotIn, Exists, DoesNotExist, Gt, Lt) over labels
and over fields (only metadata.name, as Kubernetes allows). Pure: no I/O.
An invalid requirement (unknown operator, Gt with a non-integer) matches
nothing, which is what Kubernetes' scheduler does with a selector it cannot
parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def match_requirement(op: str, key: str, values: list[str], labels: Mapping[str, str]) -> bool:
    """One requirement (node-selector operators, a superset of label-selector ones)."""
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _int(labels[key]), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_label_selector(selector: Any, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector; an empty selector matches everything."""
    for k, v in selector.match_labels.items():
        if labels.get(k) != v:
            return False
    for e in selector.match_expressions:
        if e.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
        if not match_requirement(e.operator, e.key, list(e.values), labels):
            return False
    return True


def match_node_selector_term(term: Any, labels: Mapping[str, str], node_name: str) -> bool:
    """A NodeSelectorTerm: every expression and field must match; an empty term matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    for e in term.match_expressions:
        if not match_requirement(e.operator, e.key, list(e.values), labels):
            return False
    fields = {"metadata.name": node_name}
    for f in term.match_fields:
        if f.key != "metadata.name" or f.operator not in ("In", "NotIn"):
            return False
        if not match_requirement(f.operator, f.key, list(f.values), fields):
            return False
    return True


def match_node_selector(selector: Any, labels: Mapping[str, str], node_name: str) -> bool:
    """A NodeSelector: the terms are ORed."""
    return any(match_node_selector_term(t, labels, node_name) for t in selector.node_selector_terms)
