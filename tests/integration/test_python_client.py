"""The Python `kubernetes` client 37 against a real `flotilla-master` on etcd.

Client 37 validates every response body with pydantic, so each call here is
also a check that the objects, lists, Scales and watch events the master
sends carry every field the OpenAPI spec marks required (KUBECTL.md §1.3):
a missing one raises, and the test fails. One master serves the module; each
test works in a namespace of its own. The typed APIs, `watch.Watch`,
`utils.create_from_yaml` and the dynamic client all share one ApiClient built
from the master's kubeconfig (no global configuration is touched).

Out of scope (not built yet): scheduling, controllers, node agents.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, utils, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from deploy.etcd_cluster import EtcdCluster
from tests.integration.harness import master_process

APPLY_PATCH = "application/apply-patch+yaml"


@dataclass
class Clients:
    api: client.ApiClient
    core: client.CoreV1Api
    apps: client.AppsV1Api
    workdir: Path

    def namespace(self, name: str) -> str:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name


@pytest.fixture(scope="module")
def k8s(etcd_cluster: EtcdCluster) -> Iterator[Clients]:
    with tempfile.TemporaryDirectory(prefix="flotilla-pyclient-") as tmp, \
            master_process(etcd_cluster.endpoints, Path(tmp),
                           # The API alone: a live deployment controller would move resourceVersions.
                           extra_args=("--disable-controllers", "--disable-scheduler")) as m:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(m.kubeconfig), client_configuration=cfg)
        with client.ApiClient(cfg) as api:
            yield Clients(api, client.CoreV1Api(api), client.AppsV1Api(api), Path(tmp))


# --- bodies --------------------------------------------------------------------

def pod(name: str, *, labels: dict[str, str] | None = None) -> client.V1Pod:
    # A model body: serialised without apiVersion/kind, which the server
    # must take from the URL.
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:stable",
                                                             command=["sleep", "3600"])]),
    )


def deployment(name: str, *, replicas: int = 1, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def status_of(exc: ApiException) -> tuple[int, str]:
    """(HTTP code, Status.reason) of a failed call."""
    return exc.status, json.loads(exc.body)["reason"]


# --- discovery and namespaces -------------------------------------------------------

def test_version(k8s: Clients) -> None:
    info = client.VersionApi(k8s.api).get_code()
    assert (info.major, info.minor) == ("1", "31")
    assert info.git_version.startswith("v1.31.")


def test_initial_namespaces_are_active(k8s: Clients) -> None:
    listed = k8s.core.list_namespace()
    phases = {ns.metadata.name: ns.status.phase for ns in listed.items}
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert phases.get(name) == "Active", phases
    assert listed.metadata.resource_version


# --- pods: CRUD, selectors, patches, conflicts ---------------------------------------

def test_pod_create_read_list_patch_replace_delete(k8s: Clients) -> None:
    ns = k8s.namespace("py-pods")
    core = k8s.core
    created, code, _ = core.create_namespaced_pod_with_http_info(ns, pod("alpha", labels={"app": "a", "tier": "web"}))
    assert code == 201
    assert created.metadata.uid and created.metadata.resource_version
    assert (created.api_version, created.kind) == ("v1", "Pod")
    core.create_namespaced_pod(ns, pod("beta", labels={"app": "b"}))

    got = core.read_namespaced_pod("alpha", ns)
    assert got.metadata.uid == created.metadata.uid
    assert got.spec.containers[0].image == "busybox:stable"
    assert got.status.phase == "Pending"  # no scheduler yet: it stays there

    def names(**kw: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, **kw).items)

    assert names() == ["alpha", "beta"]
    assert names(label_selector="app=a") == ["alpha"]
    assert names(label_selector="app in (a,b),tier!=web") == ["beta"]
    assert names(label_selector="tier") == ["alpha"]
    assert names(field_selector="metadata.name=beta") == ["beta"]
    assert names(field_selector="metadata.name!=beta", label_selector="app") == ["alpha"]
    assert names(label_selector="app=none") == []

    smp = core.patch_namespaced_pod("alpha", ns, {"metadata": {"labels": {"patched": "smp"}}})
    assert smp.metadata.labels == {"app": "a", "tier": "web", "patched": "smp"}
    jp = core.patch_namespaced_pod("alpha", ns, [
        {"op": "replace", "path": "/metadata/labels/patched", "value": "json"},
        {"op": "remove", "path": "/metadata/labels/tier"},
    ])
    assert jp.metadata.labels == {"app": "a", "patched": "json"}

    stale = got  # read before the two patches
    stale.metadata.labels = {"app": "a", "replaced": "yes"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_pod("alpha", ns, stale)
    assert status_of(err.value) == (409, "Conflict")
    fresh = core.read_namespaced_pod("alpha", ns)
    fresh.metadata.labels = {"app": "a", "replaced": "yes"}
    assert core.replace_namespaced_pod("alpha", ns, fresh).metadata.labels == {"app": "a", "replaced": "yes"}

    core.delete_namespaced_pod("alpha", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("alpha", ns)
    assert status_of(err.value) == (404, "NotFound")
    assert names() == ["beta"]


def test_create_conflicts_and_validation_errors(k8s: Clients) -> None:
    ns = k8s.namespace("py-errors")
    k8s.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm"),
                                                                 data={"k": "v"}))
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm")))
    assert status_of(err.value) == (409, "AlreadyExists")
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Not_Valid")))
    assert status_of(err.value) == (422, "Invalid")
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespaced_config_map("missing", ns)
    assert status_of(err.value) == (404, "NotFound")


# --- watches ------------------------------------------------------------------------------

def collect(stream: Iterator[dict[str, Any]], *, then: Callable[[], None], until: set[tuple[str, str]],
            after: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(type, name) of each event; run `then` on a thread once `after` were all seen.

    Stops as soon as every event in `until` arrived, or when the server
    closes the stream at its timeoutSeconds.
    """
    seen: list[tuple[str, str]] = []
    worker: threading.Thread | None = None
    errors: list[BaseException] = []

    def run() -> None:
        try:
            then()
        except BaseException as exc:  # surfaced in the test's thread below
            errors.append(exc)

    for event in stream:
        seen.append((event["type"], event["object"].metadata.name))
        if worker is None and after <= set(seen):
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
        if until <= set(seen):
            break
    if worker is not None:
        worker.join(timeout=30)
    assert not errors, errors
    return seen


def test_watch_pods_replays_then_streams_changes(k8s: Clients) -> None:
    ns = k8s.namespace("py-watch-pods")
    core = k8s.core
    for name in ("w1", "w2"):
        core.create_namespaced_pod(ns, pod(name, labels={"app": "w"}))

    def change() -> None:
        core.patch_namespaced_pod("w1", ns, {"metadata": {"labels": {"stage": "two"}}})
        core.delete_namespaced_pod("w2", ns)

    w = watch.Watch()
    # No `until`: this stream runs to the server's 3 s timeout, proving that
    # the server closes it (the loop would otherwise never end).
    seen = collect(w.stream(core.list_namespaced_pod, namespace=ns, timeout_seconds=3),
                   then=change, until={("never", "")}, after={("ADDED", "w1"), ("ADDED", "w2")})
    assert seen[:2] == [("ADDED", "w1"), ("ADDED", "w2")]
    assert ("MODIFIED", "w1") in seen
    assert ("DELETED", "w2") in seen


def test_watch_deployments(k8s: Clients) -> None:
    ns = k8s.namespace("py-watch-deploy")
    apps = k8s.apps
    apps.create_namespaced_deployment(ns, deployment("d1"))

    def change() -> None:
        apps.create_namespaced_deployment(ns, deployment("d2"))
        apps.patch_namespaced_deployment_scale("d1", ns, {"spec": {"replicas": 4}})
        apps.delete_namespaced_deployment("d2", ns)

    want = {("ADDED", "d1"), ("ADDED", "d2"), ("MODIFIED", "d1"), ("DELETED", "d2")}
    seen = collect(watch.Watch().stream(apps.list_namespaced_deployment, namespace=ns, timeout_seconds=10),
                   then=change, until=want, after={("ADDED", "d1")})
    assert want <= set(seen), seen
    assert seen[0] == ("ADDED", "d1")


# --- deployments: scale and server-side apply -----------------------------------------------

def test_deployment_scale_subresource(k8s: Clients) -> None:
    ns = k8s.namespace("py-scale")
    apps = k8s.apps
    apps.create_namespaced_deployment(ns, deployment("sc", replicas=2))
    scale = apps.read_namespaced_deployment_scale("sc", ns)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.spec.replicas == 2 and scale.status.selector == "app=sc"

    patched = apps.patch_namespaced_deployment_scale("sc", ns, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert apps.read_namespaced_deployment("sc", ns).spec.replicas == 3

    body = apps.read_namespaced_deployment_scale("sc", ns)
    body.spec.replicas = 5
    assert apps.replace_namespaced_deployment_scale("sc", ns, body).spec.replicas == 5
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment_scale("sc", ns, body)  # its resourceVersion is stale now
    assert status_of(err.value) == (409, "Conflict")


def test_server_side_apply_creates_then_updates(k8s: Clients) -> None:
    ns = k8s.namespace("py-ssa")
    apps = k8s.apps
    # *_with_http_info answers (object, HTTP code, headers).
    first, code, _ = apps.patch_namespaced_deployment_with_http_info(
        "ssa", ns, deployment("ssa", replicas=1), field_manager="py", force=True, _content_type=APPLY_PATCH,
    )
    assert code == 201
    assert first.metadata.uid and first.spec.replicas == 1

    second, code, _ = apps.patch_namespaced_deployment_with_http_info(
        "ssa", ns, deployment("ssa", replicas=2, image="nginx:1.26"),
        field_manager="py", force=True, _content_type=APPLY_PATCH,
    )
    assert code == 200
    assert second.metadata.uid == first.metadata.uid
    assert second.spec.replicas == 2
    assert second.spec.template.spec.containers[0].image == "nginx:1.26"
    assert second.metadata.generation > first.metadata.generation


# --- the other entry points: create_from_yaml, the dynamic client -------------------------------

MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: yaml-config
data:
  k: v
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: yaml-web
  labels:
    app: yaml-web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: yaml-web
  template:
    metadata:
      labels:
        app: yaml-web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: yaml-web
spec:
  selector:
    app: yaml-web
  ports:
  - port: 80
    targetPort: 80
"""


def test_create_from_yaml(k8s: Clients) -> None:
    ns = k8s.namespace("py-yaml")
    path = k8s.workdir / "manifest.yaml"
    path.write_text(MANIFEST)
    created = utils.create_from_yaml(k8s.api, yaml_file=str(path), namespace=ns)
    kinds = sorted(type(o).__name__ for group in created for o in group)
    assert kinds == ["V1ConfigMap", "V1Deployment", "V1Service"]
    assert k8s.core.read_namespaced_config_map("yaml-config", ns).data == {"k": "v"}
    assert k8s.apps.read_namespaced_deployment("yaml-web", ns).spec.replicas == 2
    svc = k8s.core.read_namespaced_service("yaml-web", ns)
    assert svc.spec.selector == {"app": "yaml-web"} and svc.spec.ports[0].port == 80


def test_dynamic_client_get_and_list(k8s: Clients) -> None:
    ns = k8s.namespace("py-dynamic")
    k8s.apps.create_namespaced_deployment(ns, deployment("dyn-a"))
    k8s.apps.create_namespaced_deployment(ns, deployment("dyn-b"))
    # Its discovery cache goes in the module's temporary directory, not /tmp.
    dyn = DynamicClient(k8s.api, cache_file=str(k8s.workdir / "dynamic-discovery.json"))
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    listed = deployments.get(namespace=ns)
    assert listed.kind == "DeploymentList"
    assert sorted(d.metadata.name for d in listed.items) == ["dyn-a", "dyn-b"]
    one = deployments.get(name="dyn-a", namespace=ns)
    assert (one.apiVersion, one.kind, one.metadata.name) == ("apps/v1", "Deployment", "dyn-a")
    assert one.spec.selector.matchLabels.app == "dyn-a"
    selected = deployments.get(namespace=ns, label_selector="app=dyn-b")
    assert [d.metadata.name for d in selected.items] == ["dyn-b"]
