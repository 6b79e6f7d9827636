"""Discovery documents derived from the resource registry, and /version."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from kubernetes import client

from master.apiserver import discovery
from protos import resources

GROUP_VERSIONS = sorted({(r.group, r.version) for r in resources.RESOURCES})
NAMED_GROUPS = sorted({r.group for r in resources.RESOURCES if r.group})


def entries(group: str, version: str) -> dict[str, dict[str, Any]]:
    document = discovery.api_resource_list(group, version)
    assert document is not None
    return {e["name"]: e for e in document["resources"]}


# --- /version and /api ----------------------------------------------------------

def test_version_info() -> None:
    info = discovery.version_info(git_commit="abc123", git_tree_state="clean",
                                  build_date="2024-05-02T12:00:00Z")
    assert info["major"] == "1"
    assert info["minor"] == "31"
    assert info["gitVersion"].startswith("v1.31.")
    assert (info["gitCommit"], info["gitTreeState"]) == ("abc123", "clean")
    assert set(info) == {"major", "minor", "gitVersion", "gitCommit", "gitTreeState",
                         "buildDate", "goVersion", "compiler", "platform"}
    assert all(isinstance(v, str) for v in info.values())
    parsed = client.VersionInfo.from_dict(discovery.version_info())
    assert parsed is not None and parsed.minor == "31"


def test_api_versions() -> None:
    assert discovery.api_versions("10.0.0.2:6443") == {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": "10.0.0.2:6443"}]}


# --- /apis and /apis/<g> --------------------------------------------------------

def test_api_group_list_lists_each_group_version_once() -> None:
    document = discovery.api_group_list()
    assert (document["kind"], document["apiVersion"]) == ("APIGroupList", "v1")
    names = [g["name"] for g in document["groups"]]
    assert sorted(names) == NAMED_GROUPS
    assert len(names) == len(set(names))
    group_versions = [v["groupVersion"] for g in document["groups"] for v in g["versions"]]
    assert Counter(group_versions) == Counter(f"{g}/{v}" for g, v in GROUP_VERSIONS if g)
    for g in document["groups"]:
        assert g["preferredVersion"] == g["versions"][0]
    client.V1APIGroupList.from_dict(document)


@pytest.mark.parametrize("group", NAMED_GROUPS)
def test_api_group(group: str) -> None:
    document = discovery.api_group(group)
    assert document is not None
    assert (document["kind"], document["name"]) == ("APIGroup", group)
    assert document["preferredVersion"]["groupVersion"].startswith(group + "/")
    client.V1APIGroup.from_dict(document)


@pytest.mark.parametrize("group", ["", "nope.example.com", "autoscaling"])
def test_api_group_unknown_is_none(group: str) -> None:
    assert discovery.api_group(group) is None


def test_served_group_versions() -> None:
    served = discovery.served_group_versions()
    assert len(served) == len(set(served))
    assert "v1" in served and "apps/v1" in served


# --- /api/v1 and /apis/<g>/<v> --------------------------------------------------

@pytest.mark.parametrize(("group", "version"), GROUP_VERSIONS)
def test_resource_list_document(group: str, version: str) -> None:
    document = discovery.api_resource_list(group, version)
    assert document is not None
    assert document["kind"] == "APIResourceList"
    assert document["groupVersion"] == (f"{group}/{version}" if group else version)
    names = [e["name"] for e in document["resources"]]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    client.V1APIResourceList.from_dict(document)


@pytest.mark.parametrize("info", resources.RESOURCES, ids=lambda i: i.group_resource)
def test_every_registry_resource_appears_once_with_its_facts(info: resources.ResourceInfo) -> None:
    document = discovery.api_resource_list(info.group, info.version)
    assert document is not None
    matches = [e for e in document["resources"] if e["name"] == info.resource]
    assert len(matches) == 1
    entry = matches[0]
    assert entry["kind"] == info.kind
    assert entry["singularName"] == info.singular
    assert entry["namespaced"] is info.namespaced
    assert entry.get("shortNames", []) == list(info.short_names)
    assert entry.get("categories", []) == list(info.categories)
    assert "shortNames" in entry or not info.short_names  # omitted, never []
    assert "categories" in entry or not info.categories
    assert {"get", "list", "watch", "create", "update", "patch", "delete"} <= set(entry["verbs"])
    for sub in info.subresources:
        assert f"{info.resource}/{sub}" in entries(info.group, info.version)


def test_namespaces_have_no_deletecollection() -> None:
    assert "deletecollection" not in entries("", "v1")["namespaces"]["verbs"]
    assert "deletecollection" in entries("", "v1")["pods"]["verbs"]


@pytest.mark.parametrize(("group", "version"), [("", "v2"), ("apps", "v1beta1"),
                                                ("autoscaling", "v1"), ("nope", "v1")])
def test_resource_list_unknown_group_version_is_none(group: str, version: str) -> None:
    assert discovery.api_resource_list(group, version) is None


SUBRESOURCES = [
    ("", "v1", "pods/status", "Pod", ["get", "patch", "update"], None),
    ("", "v1", "pods/binding", "Binding", ["create"], None),
    ("", "v1", "pods/log", "Pod", ["get"], None),
    ("", "v1", "pods/exec", "PodExecOptions", ["create", "get"], None),
    ("", "v1", "namespaces/finalize", "Namespace", ["update"], None),
    ("", "v1", "namespaces/status", "Namespace", ["get", "patch", "update"], None),
    ("", "v1", "nodes/status", "Node", ["get", "patch", "update"], None),
    ("", "v1", "replicationcontrollers/scale", "Scale", ["get", "patch", "update"],
     ("autoscaling", "v1")),
    ("apps", "v1", "deployments/scale", "Scale", ["get", "patch", "update"], ("autoscaling", "v1")),
    ("apps", "v1", "replicasets/scale", "Scale", ["get", "patch", "update"], ("autoscaling", "v1")),
    ("apps", "v1", "statefulsets/scale", "Scale", ["get", "patch", "update"],
     ("autoscaling", "v1")),
    ("apps", "v1", "deployments/status", "Deployment", ["get", "patch", "update"], None),
    ("batch", "v1", "jobs/status", "Job", ["get", "patch", "update"], None),
]


@pytest.mark.parametrize(("group", "version", "name", "kind", "verbs", "group_version"),
                         SUBRESOURCES)
def test_subresource_entries(group: str, version: str, name: str, kind: str, verbs: list[str],
                             group_version: tuple[str, str] | None) -> None:
    entry = entries(group, version)[name]
    parent = entries(group, version)[name.split("/")[0]]
    assert entry["kind"] == kind
    assert entry["verbs"] == verbs
    assert entry["namespaced"] is parent["namespaced"]
    assert "shortNames" not in entry and "categories" not in entry
    if group_version is None:
        assert "group" not in entry and "version" not in entry
    else:
        assert (entry["group"], entry["version"]) == group_version


def test_every_registry_subresource_is_listed() -> None:
    for info in resources.RESOURCES:
        listed = entries(info.group, info.version)
        for sub in info.subresources:
            assert f"{info.resource}/{sub}" in listed


def test_all_category_members() -> None:
    in_all = {(e["name"], g) for g, v in GROUP_VERSIONS for e in entries(g, v).values()
              if "all" in e.get("categories", [])}
    assert in_all == {("pods", ""), ("services", ""), ("replicationcontrollers", ""),
                      ("deployments", "apps"), ("replicasets", "apps"), ("daemonsets", "apps"),
                      ("statefulsets", "apps"), ("jobs", "batch"), ("cronjobs", "batch")}


@pytest.mark.parametrize(("short", "resource"), [("po", "pods"), ("svc", "services"),
                                                 ("deploy", "deployments"), ("ns", "namespaces"),
                                                 ("no", "nodes"), ("cm", "configmaps"),
                                                 ("rs", "replicasets"), ("ev", "events")])
def test_short_names_kubectl_relies_on(short: str, resource: str) -> None:
    found = [e["name"] for g, v in GROUP_VERSIONS for e in entries(g, v).values()
             if short in e.get("shortNames", [])]
    assert found == [resource]


def test_documents_are_fresh_copies() -> None:
    first = discovery.api_resource_list("apps", "v1")
    assert first is not None
    first["resources"][0]["verbs"].append("mangled")
    second = discovery.api_resource_list("apps", "v1")
    assert second is not None
    assert "mangled" not in second["resources"][0]["verbs"]


# --- aggregated discovery -------------------------------------------------------

@pytest.mark.parametrize("version", discovery.AGGREGATED_VERSIONS)
def test_aggregated_core(version: str) -> None:
    document = discovery.aggregated_discovery(core=True, version=version)
    assert document["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    assert document["kind"] == "APIGroupDiscoveryList"
    [item] = document["items"]
    assert "name" not in item["metadata"]
    [v1] = item["versions"]
    pods = {r["resource"]: r for r in v1["resources"]}["pods"]
    assert pods["scope"] == "Namespaced"
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert {s["subresource"] for s in pods["subresources"]} == {"status", "binding", "log", "exec"}
    model = client.V2APIGroupDiscoveryList if version == "v2" else \
        client.V2beta1APIGroupDiscoveryList
    model.from_dict(document)


def test_aggregated_groups_match_group_list() -> None:
    document = discovery.aggregated_discovery(core=False)
    names = [i["metadata"]["name"] for i in document["items"]]
    assert names == [g["name"] for g in discovery.api_group_list()["groups"]]
    apps = next(i for i in document["items"] if i["metadata"]["name"] == "apps")
    deployments = {r["resource"]: r for r in apps["versions"][0]["resources"]}["deployments"]
    scale = {s["subresource"]: s for s in deployments["subresources"]}["scale"]
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    nodes = {r["resource"]: r for r in discovery.aggregated_discovery(core=True)["items"][0]
             ["versions"][0]["resources"]}["nodes"]
    assert nodes["scope"] == "Cluster"
    client.V2APIGroupDiscoveryList.from_dict(document)


def test_aggregated_rejects_unknown_version() -> None:
    with pytest.raises(ValueError):
        discovery.aggregated_discovery(core=True, version="v3")
