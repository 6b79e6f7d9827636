"""master.client.kinds must agree with the apiserver's resource registry."""

from __future__ import annotations

import pytest

from master.apiserver import resources
from master.client.kinds import KINDS, KindInfo, UnknownKind, kind_of
from protos.meta.v1 import meta_pb2


def test_kinds_match_the_resource_registry() -> None:
    expected = {r.proto: KindInfo(r.group, r.resource, r.namespaced) for r in resources.RESOURCES}
    assert dict(KINDS) == expected


def test_kind_of_reads_the_descriptor_and_accepts_an_override() -> None:
    with pytest.raises(UnknownKind):
        kind_of(meta_pb2.Scale)
    kinds = {"flotilla.meta.v1.Scale": KindInfo("autoscaling", "scales", True)}
    assert kind_of(meta_pb2.Scale, kinds=kinds) == ("autoscaling", "scales", True)
    assert kind_of(meta_pb2.Scale(), kinds=kinds).resource == "scales"
