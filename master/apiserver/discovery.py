"""Discovery documents: /version, /api, /apis, /apis/<g>, /api/v1, /apis/<g>/<v>.

Owns the shape of the legacy discovery documents (APIVersions, APIGroupList,
APIGroup, APIResourceList), the optional aggregated discovery document
(apidiscovery.k8s.io v2 / v2beta1 APIGroupDiscoveryList) and /version.
Everything is derived from the resource registry (`resources.RESOURCES`); the
only facts kept here are those the registry does not hold: the verbs each kind
of subresource answers and the kind it returns.

Pure: no I/O. Each call builds a fresh dict, so a caller may cache or encode it
freely. Routing, content negotiation and caching of the encoded bytes belong to
the REST layer.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from protos.resources import GROUP_VERSIONS, ResourceInfo, in_group_version

# The Kubernetes version Flotilla speaks. kubectl's dispatcher on this project's
# machines picks the client from `minor`; 31 keeps kubectl on JSON request bodies
# and WebSocket exec. "+flotilla" is semver build metadata (the k3s convention,
# "v1.31.0+k3s1"): it marks the distribution without ordering below v1.31.0 the
# way a "-flotilla" pre-release tag would.
KUBE_MAJOR = "1"
KUBE_MINOR = "31"
GIT_VERSION = f"v{KUBE_MAJOR}.{KUBE_MINOR}.0+flotilla"

_VERBS_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# The real apiserver offers no deletecollection on namespaces (deleting a
# namespace is a long, finalizer-driven affair; nobody wants them in bulk).
_VERBS_OVERRIDE: dict[tuple[str, str], list[str]] = {
    ("", "namespaces"): ["create", "delete", "get", "list", "patch", "update", "watch"],
}


# subresource -> (verbs, its kind or None for the parent's, (group, version, kind) when
# it answers with another group's type, as /scale answers autoscaling/v1 Scale).
_SUBRESOURCES: dict[str, tuple[list[str], str | None, tuple[str, str, str] | None]] = {
    "status": (["get", "patch", "update"], None, None),
    "scale": (["get", "patch", "update"], None, ("autoscaling", "v1", "Scale")),
    "binding": (["create"], "Binding", None),
    "log": (["get"], None, None),
    "exec": (["create", "get"], "PodExecOptions", None),
    "finalize": (["update"], None, None),
}


def version_info(*, git_commit: str = "", git_tree_state: str = "",
                 build_date: str = "1970-01-01T00:00:00Z") -> dict[str, str]:
    """The /version document. Unknown build facts keep Kubernetes' own defaults
    (empty commit and tree state, the epoch as build date); goVersion honestly
    names the Python that runs the server, compiler its implementation."""
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "major": KUBE_MAJOR, "minor": KUBE_MINOR, "gitVersion": GIT_VERSION,
        "gitCommit": git_commit, "gitTreeState": git_tree_state, "buildDate": build_date,
        "goVersion": "python" + ".".join(str(n) for n in sys.version_info[:3]),
        "compiler": platform.python_implementation().lower(), "platform": f"{sys.platform}/{machine}",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """GET /api: the core group's versions."""
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": server_address}],
    }


def _group_versions(group: str) -> list[dict[str, str]]:
    return [{"groupVersion": f"{g}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group]


def _group_entry(group: str) -> dict[str, Any]:
    versions = _group_versions(group)
    # The registry lists the preferred (newest served) version first.
    return {"name": group, "versions": versions, "preferredVersion": dict(versions[0])}


def _named_groups() -> list[str]:
    return list(dict.fromkeys(g for g, _ in GROUP_VERSIONS if g))


def api_group_list() -> dict[str, Any]:
    """GET /apis: every non-core group once, in registry order."""
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_entry(g) for g in _named_groups()]}


def api_group(group: str) -> dict[str, Any] | None:
    """GET /apis/<group>; None when the group is not served (the caller answers 404)."""
    if not group or group not in _named_groups():
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group)}


def _verbs(info: ResourceInfo) -> list[str]:
    return list(_VERBS_OVERRIDE.get((info.group, info.resource), _VERBS_ALL))


def _resource_entry(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": info.resource, "singularName": info.singular,
                             "namespaced": info.namespaced, "kind": info.kind,
                             "verbs": _verbs(info)}
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    return entry


def _subresource_entry(info: ResourceInfo, sub: str) -> dict[str, Any]:
    verbs, kind, gvk = _SUBRESOURCES[sub]  # KeyError: a new subresource needs a line above
    entry: dict[str, Any] = {"name": f"{info.resource}/{sub}", "singularName": "",
                             "namespaced": info.namespaced, "kind": kind or info.kind,
                             "verbs": list(verbs)}
    if gvk is not None:
        entry["group"], entry["version"], entry["kind"] = gvk
    return entry


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """GET /api/v1 or /apis/<g>/<v>; None when that group version is not served.

    Resources and their subresources, sorted by name as the real apiserver lists them.
    """
    infos = in_group_version(group, version)
    if not infos:
        return None
    entries = [_resource_entry(i) for i in infos]
    entries += [_subresource_entry(i, s) for i in infos for s in i.subresources]
    entries.sort(key=lambda e: e["name"])
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": entries}


# --- aggregated discovery (optional) ---------------------------------------------

AGGREGATED_VERSIONS = ("v2", "v2beta1")


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": info.resource,
        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular, "verbs": _verbs(info),
    }
    if info.short_names:
        entry["shortNames"] = list(info.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    subresources = []
    for sub in info.subresources:
        verbs, kind, gvk = _SUBRESOURCES[sub]
        group, version, kind = gvk or (info.group, info.version, kind or info.kind)
        subresources.append({"subresource": sub, "verbs": list(verbs),
                             "responseKind": {"group": group, "version": version, "kind": kind}})
    if subresources:
        entry["subresources"] = subresources
    return entry


def _aggregated_group(group: str) -> dict[str, Any]:
    versions = []
    for g, v in GROUP_VERSIONS:
        if g == group:
            resources = sorted((_aggregated_resource(i) for i in in_group_version(g, v)),
                               key=lambda r: r["resource"])
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
    metadata = {"name": group} if group else {}
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(*, core: bool, version: str = "v2") -> dict[str, Any]:
    """APIGroupDiscoveryList for GET /api (core=True) or /apis (core=False).

    Served as `application/json;g=apidiscovery.k8s.io;v=<version>;as=APIGroupDiscoveryList`
    when the client's Accept asks for it; `version` is "v2" (kubectl >= 1.30) or
    "v2beta1" (kubectl 1.27-1.29). Legacy documents work for every client, so
    serving this is an optimisation (2 requests instead of 2 + one per group version).
    """
    if version not in AGGREGATED_VERSIONS:
        raise ValueError(f"aggregated discovery version must be one of {AGGREGATED_VERSIONS}")
    groups = [""] if core else _named_groups()
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": [_aggregated_group(g) for g in groups]}


def served_group_versions() -> list[str]:
    """Every served group version as "v1" / "apps/v1", once each."""
    return [f"{g}/{v}" if g else v for g, v in GROUP_VERSIONS]
