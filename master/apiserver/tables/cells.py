"""The Table machinery's shared parts: value types, Kubernetes' `HumanDuration`
and timestamp helpers, the cell helpers several kinds use (labels, selectors,
pod templates, conditions) and the column helpers every column set is built from.

Pure: no I/O, and nothing here knows a kind. The per-kind cells and column
sets are in pods.py, workloads.py and core.py; __init__.py assembles them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

Obj = Mapping[str, Any]
Cells = list[Any]
CellsFn = Callable[[Obj, float], Cells]
Printers = dict[tuple[str, str], tuple[list[dict[str, Any]], CellsFn]]

_EMPTY: Mapping[str, Any] = {}
_NONE = "<none>"


# --- durations and timestamps ---------------------------------------------------

def human_duration(seconds: float) -> str:
    """Kubernetes' `duration.HumanDuration`: "45s", "2m30s", "3h5m", "2d1h", "2y1d".

    Up to one second in the future counts as "now" (clock skew between hosts).
    """
    if not math.isfinite(seconds):
        return "<invalid>"
    s = int(seconds)  # truncates toward zero, as Go's int(d.Seconds())
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return _two_units(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return _two_units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _two_units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two_units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two_units(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}{small}{small_unit}" if small else f"{big}{big_unit}"


@lru_cache(maxsize=65536)
def _epoch(timestamp: str) -> float | None:
    """RFC 3339 -> seconds since the epoch; None when unparseable.

    Cached: a LIST's objects mostly share a handful of creation seconds.
    """
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _since(timestamp: Any, now_s: float) -> str:
    """Go's translateTimestampSince: "<unknown>" for a zero (missing) time."""
    epoch = _epoch(timestamp) if isinstance(timestamp, str) and timestamp else None
    if epoch is None:
        return "<unknown>"
    return human_duration(now_s - epoch)


def _now_seconds(now: datetime) -> float:
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


# --- shared cell helpers --------------------------------------------------------

def _format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: sorted "k=v" pairs, "<none>" when empty."""
    if not labels:
        return _NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _requirement(expr: Obj) -> tuple[str, str]:
    key, op = expr.get("key", ""), expr.get("operator")
    values = ",".join(sorted(expr.get("values") or ()))
    if op == "In":
        return key, f"{key} in ({values})"
    if op == "NotIn":
        return key, f"{key} notin ({values})"
    if op == "Exists":
        return key, key
    if op == "DoesNotExist":
        return key, "!" + key
    raise ValueError(f"invalid label selector operator {op!r}")


def _selector_string(selector: Obj | None) -> str:
    """A LabelSelector as labels.Selector.String(): requirements sorted by key."""
    if not selector:
        return ""
    reqs = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or _EMPTY).items()]
    reqs.extend(_requirement(e) for e in selector.get("matchExpressions") or ())
    reqs.sort(key=lambda r: r[0])  # stable, so same-key requirements keep their order
    return ",".join(text for _, text in reqs)


def _format_label_selector(selector: Obj | None) -> str:
    """metav1.FormatLabelSelector: "<none>" when empty, "<error>" when invalid."""
    try:
        return _selector_string(selector) or _NONE
    except ValueError:
        return "<error>"


def _template_spec(obj: Obj) -> Obj:
    return ((obj.get("spec") or _EMPTY).get("template") or _EMPTY).get("spec") or _EMPTY


def _containers_and_images(pod_spec: Obj) -> list[str]:
    containers = pod_spec.get("containers") or ()
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or _EMPTY).get("name", "")


def _age(obj: Obj, now_s: float) -> str:
    return _since((obj.get("metadata") or _EMPTY).get("creationTimestamp"), now_s)


def _condition_true(conditions: Iterable[Obj] | None, kind: str) -> bool:
    for c in conditions or ():  # a plain loop: this runs per pod on every LIST
        if c.get("type") == kind and c.get("status") == "True":
            return True
    return False


# --- column sets ----------------------------------------------------------------

def _col(name: str, description: str, *, type_: str = "string", priority: int = 0,
         format_: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


_NAME = _col("Name", "Name of the object, unique within its namespace and kind.",
             format_="name")
_AGE = _col("Age", "Time since the object was created (metadata.creationTimestamp).")
_CONTAINERS = _col("Containers", "Names of each container in the template.", priority=1)
_IMAGES = _col("Images", "Images referenced by each container in the template.", priority=1)
_SELECTOR = _col("Selector", "The label selector of the pods it manages.", priority=1)


def _ints(*names: str) -> list[dict[str, Any]]:
    return [_col(n, f"{n} replicas or pods.", type_="integer") for n in names]
