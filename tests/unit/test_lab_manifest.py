"""deploy/lab.py's manifest loader: which REST collection each object is POSTed to."""

from __future__ import annotations

import pytest

from deploy.lab import collection_path


@pytest.mark.parametrize(("doc", "path"), [
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}, "/api/v1/namespaces"),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"}},
     "/api/v1/namespaces/demo/services"),
    ({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}}, "/api/v1/namespaces/default/endpoints"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
     "/apis/apps/v1/namespaces/default/deployments"),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "x"}},
     "/apis/batch/v1/namespaces/x/cronjobs"),
    ({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}},
     "/apis/coordination.k8s.io/v1/namespaces/default/leases"),
])
def test_collection_from_the_registry(doc: dict, path: str) -> None:
    assert collection_path(doc) == path


@pytest.mark.parametrize("doc", [
    {"apiVersion": "v1", "kind": "Ingress"},
    {"apiVersion": "apps/v1", "kind": "Pod"},  # a core kind under the wrong group
])
def test_unknown_kind_is_refused(doc: dict) -> None:
    with pytest.raises(ValueError, match="not a kind Flotilla serves"):
        collection_path(doc)
