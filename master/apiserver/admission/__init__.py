"""Admission: what every object goes through before it is written.

`admit_create` and `admit_update` apply, in order: metadata rules shared by
every kind (name format, labels, annotations, owner references, finalizers),
then the kind's own strategy (`strategies.py`: defaults, validation,
immutable fields), and the status-subresource rules (a write to the main
resource cannot change status; a write to /status changes only status).
They mutate the message they are given (the registry owns it), and raise
`Invalid` (422) naming every problem at once.

Pure: no I/O. The registry does the namespace-exists check and the writes.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from master.apiserver import errors
from master.apiserver.admission import meta as meta_rules
from master.apiserver.admission.strategies import strategy_for
from master.apiserver.errors import Cause
from protos.resources import ResourceInfo

# Kinds whose metadata.generation Kubernetes maintains (a controller reports
# status.observedGeneration against it); others leave it unset.
GENERATION_KINDS = frozenset(
    {"Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "ReplicationController", "Job", "CronJob"}
)


def admit_create(info: ResourceInfo, msg: Any, *, now: _dt.datetime) -> None:
    """Defaults and validates a new object; sets uid, creationTimestamp, generation."""
    strategy = strategy_for(info.kind)
    meta = msg.metadata
    msg.api_version = info.api_version
    msg.kind = info.kind
    meta.uid = str(uuid.uuid4())
    meta.creation_timestamp.FromDatetime(now.replace(microsecond=0))
    meta.ClearField("deletion_timestamp")
    meta.ClearField("deletion_grace_period_seconds")
    meta.resource_version = ""
    meta.self_link = ""
    if info.kind in GENERATION_KINDS:
        meta.generation = 1
    if info.has_status_subresource and _has_field(msg, "status"):
        strategy.reset_status_on_create(msg)
    strategy.default(msg)
    causes = meta_rules.validate(info, meta) + strategy.validate(msg)
    _raise_if(info, msg, causes)


def admit_update(info: ResourceInfo, new: Any, old: Any, *, subresource: str = "") -> None:
    """Carries over what a client cannot change, applies status rules, validates."""
    strategy = strategy_for(info.kind)
    meta, old_meta = new.metadata, old.metadata
    new.api_version = info.api_version
    new.kind = info.kind
    # Set by the server, never by an update.
    meta.uid = old_meta.uid
    meta.creation_timestamp.CopyFrom(old_meta.creation_timestamp)
    meta.name = old_meta.name
    meta.namespace = old_meta.namespace
    meta.self_link = ""
    _copy_optional(meta, old_meta, "deletion_timestamp")
    _copy_optional(meta, old_meta, "deletion_grace_period_seconds")
    meta.generation = old_meta.generation
    if subresource == "status":
        # /status writes change status only (Kubernetes' status strategies).
        status = type(new.status)()
        status.CopyFrom(new.status)
        new.CopyFrom(old)
        new.status.CopyFrom(status)
    elif subresource == "finalize":
        # namespaces/finalize writes change spec.finalizers only.
        finalizers = list(new.spec.finalizers)
        new.CopyFrom(old)
        new.spec.ClearField("finalizers")
        new.spec.finalizers.extend(finalizers)
    elif subresource == "binding":
        pass  # the registry's binding sets nodeName and PodScheduled itself
    elif info.has_status_subresource and _has_field(new, "status"):
        # Mirror presence too: an absent status must stay absent, or an
        # unchanged PUT would look like a change and write.
        if old.HasField("status"):
            new.status.CopyFrom(old.status)
        else:
            new.ClearField("status")
    # Carry over what the server allocated and a client may leave out (a
    # Service's clusterIP) before spec changes are judged.
    strategy.prepare_for_update(new, old)
    strategy.default(new)
    if info.kind in GENERATION_KINDS and new.spec.SerializeToString(deterministic=True) != old.spec.SerializeToString(deterministic=True):
        meta.generation = old_meta.generation + 1
    causes = meta_rules.validate(info, meta) + strategy.validate(new)
    if subresource != "binding":
        causes += strategy.validate_update(new, old)
    _raise_if(info, new, causes)


def _raise_if(info: ResourceInfo, msg: Any, causes: list[Cause]) -> None:
    if causes:
        name = msg.metadata.name or msg.metadata.generate_name
        raise errors.Invalid(info.kind, name, causes, group=info.group)


def _has_field(msg: Any, name: str) -> bool:
    return name in msg.DESCRIPTOR.fields_by_name


def _copy_optional(dst: Any, src: Any, name: str) -> None:
    if src.HasField(name):
        f = getattr(src, name)
        if hasattr(f, "CopyFrom"):
            getattr(dst, name).CopyFrom(f)
        else:
            setattr(dst, name, f)
    else:
        dst.ClearField(name)
