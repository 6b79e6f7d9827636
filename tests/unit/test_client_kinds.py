"""master.client.kinds is a view of the resource registry (protos/resources.py)."""

from __future__ import annotations

import pytest

from master.client.kinds import BINDING, KINDS, POD, KindInfo, UnknownKind, kind_of
from protos import resources
from protos.meta.v1 import meta_pb2


@pytest.mark.parametrize("info", resources.RESOURCES, ids=lambda i: i.group_resource)
def test_every_registry_resource_is_a_kind_with_its_facts(info: resources.ResourceInfo) -> None:
    assert KINDS[info.proto] == KindInfo(info.group, info.resource, info.namespaced)
    assert kind_of(info.message_class()) == (info.group, info.resource, info.namespaced)


def test_kinds_holds_nothing_but_registry_resources() -> None:
    # No two resources share a message (the view would silently keep only one).
    assert len(KINDS) == len(resources.RESOURCES)
    assert set(KINDS) == {r.proto for r in resources.RESOURCES}


def test_pod_is_a_kind_and_binding_is_not() -> None:
    assert KINDS[POD] == KindInfo("", "pods", True)
    assert BINDING not in KINDS
    assert resources.message_class(BINDING).DESCRIPTOR.full_name == BINDING


def test_kinds_is_read_only() -> None:
    with pytest.raises(TypeError):
        KINDS["flotilla.meta.v1.Scale"] = KindInfo("autoscaling", "scales", True)  # type: ignore[index]


def test_kind_of_reads_the_descriptor_and_accepts_an_override() -> None:
    with pytest.raises(UnknownKind):
        kind_of(meta_pb2.Scale)
    kinds = {"flotilla.meta.v1.Scale": KindInfo("autoscaling", "scales", True)}
    assert kind_of(meta_pb2.Scale, kinds=kinds) == ("autoscaling", "scales", True)
    assert kind_of(meta_pb2.Scale(), kinds=kinds).resource == "scales"
