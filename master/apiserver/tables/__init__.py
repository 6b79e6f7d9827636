"""Server-side printing: `meta.k8s.io/v1` Tables for `kubectl get`.

Owns the column set and the cell rules of every kind in the registry, written to
give what the real apiserver's printers give (kubectl 1.31 output), and
Kubernetes' `HumanDuration` for the AGE-style cells. Works on JSON-shaped dicts,
objects exactly as the REST API returns them.

It does no I/O, no content negotiation and no JSON encoding (the REST layer
picks `as=Table`, wraps watch events and serializes). It never mutates its
inputs, and rows *share* sub-dicts with them (`metadata`, or the whole object
for includeObject=Object): objects from the watch cache are never mutated, so
copying 10,000 metadata dicts per LIST would be pure waste.

Like the real apiserver, every cell is always computed, the wide (priority 1)
ones too; kubectl hides priority-1 columns unless `-o wide`.

The package: cells.py (HumanDuration, timestamps, shared cell and column
helpers), pods.py, workloads.py (apps, batch, ReplicationControllers) and
core.py (the other core kinds, Leases) hold the per-kind cells and column
sets; this module assembles them, prints any other kind with the default
columns, and builds rows and Tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from master.apiserver.tables import core, pods, workloads
from master.apiserver.tables.cells import (
    _EMPTY,
    _NAME,
    Cells,
    CellsFn,
    Obj,
    Printers,
    _col,
    _epoch,
    _name,
    _now_seconds,
    human_duration,
)
from master.apiserver.tables.pods import _POD_ROW_CONDITIONS, _pod_cells
from protos import resources

__all__ = ["INCLUDE_OBJECT_CHOICES", "column_definitions", "human_duration", "one_row_table",
           "row_cells", "table", "table_row"]

INCLUDE_OBJECT_CHOICES = ("None", "Metadata", "Object")


def _default_cells(obj: Obj, now_s: float) -> Cells:
    created = (obj.get("metadata") or _EMPTY).get("creationTimestamp")
    epoch = _epoch(created) if isinstance(created, str) and created else None
    stamp = ("0001-01-01T00:00:00Z" if epoch is None
             else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return [_name(obj), stamp]


_DEFAULT_COLUMNS = [_NAME, _col("Created At", "The time the object was created.",
                                type_="date")]

_PRINTERS: Printers = {
    **pods.PRINTERS, **workloads.PRINTERS, **core.PRINTERS,
}


def _printer(resource: str, group: str) -> tuple[list[dict[str, Any]], CellsFn]:
    return _PRINTERS.get((group, resource), (_DEFAULT_COLUMNS, _default_cells))


# --- public API -----------------------------------------------------------------

def column_definitions(resource: str, group: str) -> list[dict[str, Any]]:
    """The Table's columnDefinitions for `resource` (plural) in `group` ("" = core)."""
    return [dict(c) for c in _printer(resource, group)[0]]


def row_cells(resource: str, group: str, obj: Obj, *, now: datetime) -> Cells:
    """One row's cells, as many as `column_definitions` has columns."""
    return _printer(resource, group)[1](obj, _now_seconds(now))


def _row_object(resource: str, group: str, obj: Obj, include_object: str) -> Obj | None:
    if include_object == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {}}
    if include_object == "Object":
        info = resources.lookup(group, resource)
        if info is None or ("kind" in obj and "apiVersion" in obj):
            return obj
        return {"kind": info.kind, "apiVersion": info.api_version, **obj}
    if include_object == "None":
        return None
    raise ValueError(f"includeObject must be one of {INCLUDE_OBJECT_CHOICES}, "
                     f"not {include_object!r}")


def _row(resource: str, group: str, obj: Obj, cells_fn: CellsFn, *, include_object: str,
         now_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"cells": cells_fn(obj, now_s)}
    if cells_fn is _pod_cells:
        conditions = _POD_ROW_CONDITIONS.get((obj.get("status") or _EMPTY).get("phase", ""))
        if conditions:
            row["conditions"] = [dict(c) for c in conditions]
    embedded = _row_object(resource, group, obj, include_object)
    if embedded is not None:
        row["object"] = embedded
    return row


def table_row(resource: str, group: str, obj: Obj, *, include_object: str = "Metadata",
              now: datetime) -> dict[str, Any]:
    """One `rows[]` entry: cells, pod row conditions, and the object per includeObject.

    Raises ValueError for an includeObject outside INCLUDE_OBJECT_CHOICES.
    """
    cells_fn = _printer(resource, group)[1]
    return _row(resource, group, obj, cells_fn, include_object=include_object,
                now_s=_now_seconds(now))


def table(resource: str, group: str, objects: Iterable[Obj], *, resource_version: str,
          include_object: str = "Metadata", now: datetime, continue_token: str = "",
          remaining_item_count: int | None = None,
          include_columns: bool = True) -> dict[str, Any]:
    """A complete Table for a LIST (or a GET, given one object).

    `continue_token` / `remaining_item_count` fill the list metadata of a paged
    LIST. `include_columns=False` leaves columnDefinitions empty, as the real
    apiserver does for `?noHeaders=true`. Raises ValueError for a bad includeObject.
    """
    columns, cells_fn = _printer(resource, group)
    now_s = _now_seconds(now)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    if remaining_item_count is not None:
        metadata["remainingItemCount"] = remaining_item_count
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": [dict(c) for c in columns] if include_columns else [],
        "rows": [_row(resource, group, o, cells_fn, include_object=include_object,
                      now_s=now_s) for o in objects],
    }


def one_row_table(resource: str, group: str, obj: Obj, *, include_object: str = "Metadata",
                  now: datetime, resource_version: str | None = None,
                  include_columns: bool = True) -> dict[str, Any]:
    """A Table holding one object: a watch event's `object`, or a GET of one item.

    The Table's resourceVersion defaults to the object's, as the real apiserver's.
    """
    if resource_version is None:
        resource_version = (obj.get("metadata") or _EMPTY).get("resourceVersion", "")
    return table(resource, group, [obj], resource_version=resource_version,
                 include_object=include_object, now=now, include_columns=include_columns)
