"""Real kubectl against a real `flotilla-master` on the session's etcd cluster.

Every test runs kubectl as a subprocess with a timeout and checks its exit
code and output, the way a person at a shell would see them. /usr/bin/kubectl
is a dispatcher that picks kubectl 1.<minor> from the server's /version; one
test runs it, the others call the binary it picks (see matching_kubectl). One master serves the whole module; each
test works in a namespace of its own so the tests do not depend on their
order. What kubectl sends is described in /work/shared/KUBECTL.md.

Out of scope here (nothing in the master does them yet): scheduling, the
controllers behind Deployments (no ReplicaSets or running pods appear) and
node agents (logs, exec).
"""

from __future__ import annotations

import base64
import json
import queue
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.etcd_cluster import EtcdCluster
from tests.integration.harness import MasterProcess, master_process
from tests.integration.lifecycle import controllers_in_thread

DISPATCHER = Path("/usr/bin/kubectl")
TIMEOUT_S = 30


def matching_kubectl(master: MasterProcess) -> str:
    """The kubectl binary the dispatcher would pick for this server.

    The dispatcher execs kubectl.1.<server minor> beside itself; calling that
    binary directly halves the cost of every invocation (two large Go
    binaries start otherwise), which keeps this module inside its time
    budget. test_dispatcher_picks_the_server_minor runs the dispatcher itself.
    """
    with urllib.request.urlopen(master.url + "/version", timeout=5) as resp:
        minor = json.load(resp)["minor"].rstrip("+")
    candidate = DISPATCHER.resolve().parent / f"kubectl.1.{minor}"
    return str(candidate) if candidate.exists() else str(DISPATCHER)


@dataclass
class Kube:
    """kubectl bound to one master, with a scratch directory for manifests."""

    master: MasterProcess
    workdir: Path
    binary: str

    def run(self, *args: str, stdin: str | None = None, timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], input=stdin, capture_output=True, text=True,
            env=self.master.env(), timeout=timeout_s, check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl, insist on exit 0, return stdout."""
        res = self.run(*args, stdin=stdin)
        assert res.returncode == 0, self.explain(args, res)
        return res.stdout

    def fails(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = self.run(*args, stdin=stdin)
        assert res.returncode != 0, self.explain(args, res)
        return res

    def jsonpath(self, *args: str, path: str) -> str:
        return self.ok("get", *args, "-o", f"jsonpath={path}")

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def explain(self, args: tuple[str, ...], res: subprocess.CompletedProcess[str]) -> str:
        # The master's log tail saves a re-run when a test fails.
        log = self.master.log_path.read_text(errors="replace")[-2000:]
        return (f"kubectl {' '.join(args)} -> exit {res.returncode}\n"
                f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}\nmaster log tail:\n{log}")


@pytest.fixture(scope="module")
def kube(etcd_cluster: EtcdCluster) -> Iterator[Kube]:
    # TemporaryDirectory rather than tmp_path_factory: nothing is left behind.
    with tempfile.TemporaryDirectory(prefix="flotilla-kubectl-") as tmp, \
            master_process(etcd_cluster.endpoints, Path(tmp),
                           # What this module checks is the API alone (see the docstring).
                           extra_args=("--disable-controllers", "--disable-scheduler")) as m:
        yield Kube(m, Path(tmp), matching_kubectl(m))


# --- manifests ---------------------------------------------------------------

def app_manifest(ns: str, *, replicas: int = 2, image: str = "nginx:1.25") -> str:
    """A Namespace, a ConfigMap, a Deployment and a Service, as one YAML stream."""
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: {ns}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
"""


def pod_manifest(ns: str, name: str, *, labels: str = "app: solo") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
  labels:
    {labels}
spec:
  containers:
  - name: main
    image: busybox:stable
    command: ["sleep", "3600"]
"""


def make_app(kube: Kube, ns: str) -> Path:
    """Apply the app manifest into a fresh namespace; return the file."""
    path = kube.write(f"{ns}.yaml", app_manifest(ns))
    kube.ok("apply", "-f", str(path))
    return path


def columns(line: str) -> list[str]:
    """Split a kubectl table line into cells (cells are 2+ spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def header_lines(out: str) -> list[list[str]]:
    return [columns(line) for line in out.splitlines() if line.startswith("NAME") or line.startswith("EVENT")]


def test_dispatcher_picks_the_server_minor(kube: Kube) -> None:
    res = subprocess.run([str(DISPATCHER), "version", "-o", "json"], capture_output=True, text=True,
                         env=kube.master.env(), timeout=TIMEOUT_S, check=False)
    assert res.returncode == 0, kube.explain(("version",), res)
    versions = json.loads(res.stdout)
    assert versions["serverVersion"]["minor"] == versions["clientVersion"]["minor"] == "31"


# --- apply ---------------------------------------------------------------------

def test_apply_creates_then_configures(kube: Kube) -> None:
    ns = "kt-apply"
    path = kube.write("apply.yaml", app_manifest(ns))
    out = kube.ok("apply", "-f", str(path))
    for line in (f"namespace/{ns} created", "configmap/web-config created",
                 "deployment.apps/web created", "service/web created"):
        assert line in out
    gen_before = int(kube.jsonpath("deploy", "web", "-n", ns, path="{.metadata.generation}"))

    edited = kube.write("apply-edited.yaml", app_manifest(ns, replicas=3, image="nginx:1.26"))
    out = kube.ok("apply", "-f", str(edited))
    assert "deployment.apps/web configured" in out
    assert f"namespace/{ns} unchanged" in out and "service/web unchanged" in out
    got = kube.jsonpath("deploy", "web", "-n", ns,
                        path="{.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}")
    replicas, image, gen_after = got.split()
    assert (replicas, image) == ("3", "nginx:1.26")
    assert int(gen_after) > gen_before

    # Nothing differs now: kubectl sends no PATCH and says so.
    assert "deployment.apps/web unchanged" in kube.ok("apply", "-f", str(edited))


def test_apply_server_side(kube: Kube) -> None:
    ns = "kt-ssa"
    kube.ok("create", "namespace", ns)
    doc = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa-cm
  namespace: {ns}
data:
  level: "{level}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ssa-web
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: ssa-web
  template:
    metadata:
      labels:
        app: ssa-web
    spec:
      containers:
      - name: web
        image: nginx:1.25
"""
    first = kube.write("ssa.yaml", doc.format(ns=ns, level="1", replicas=1))
    out = kube.ok("apply", "--server-side", "-f", str(first))
    assert "configmap/ssa-cm serverside-applied" in out
    assert "deployment.apps/ssa-web serverside-applied" in out
    assert kube.jsonpath("cm", "ssa-cm", "-n", ns, path="{.data.level}") == "1"

    second = kube.write("ssa2.yaml", doc.format(ns=ns, level="2", replicas=3))
    out = kube.ok("apply", "--server-side", "-f", str(second))
    assert "configmap/ssa-cm serverside-applied" in out
    assert kube.jsonpath("cm", "ssa-cm", "-n", ns, path="{.data.level}") == "2"
    assert kube.jsonpath("deploy", "ssa-web", "-n", ns, path="{.spec.replicas}") == "3"


def test_diff_exit_codes(kube: Kube) -> None:
    ns = "kt-diff"
    path = make_app(kube, ns)
    assert kube.run("diff", "-f", str(path)).returncode == 0
    changed = kube.write("diff-changed.yaml", app_manifest(ns, replicas=5))
    res = kube.run("diff", "-f", str(changed))
    assert res.returncode == 1, kube.explain(("diff", "-f", str(changed)), res)
    assert "+  replicas: 5" in res.stdout
    # diff is a dry run: nothing was persisted.
    assert kube.jsonpath("deploy", "web", "-n", ns, path="{.spec.replicas}") == "2"


# --- get -------------------------------------------------------------------------

EXPECTED_WIDE_HEADERS = [
    ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
    ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"],
    ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
    ["NAME", "DATA", "AGE"],
    ["NAME", "STATUS", "AGE"],
]


def test_get_wide_shows_server_side_columns(kube: Kube) -> None:
    ns = "kt-wide"
    make_app(kube, ns)
    kube.ok("create", "-f", "-", stdin=pod_manifest(ns, "solo"))
    out = kube.ok("get", "pods,deploy,svc,cm,ns", "-o", "wide", "-n", ns)
    assert header_lines(out) == EXPECTED_WIDE_HEADERS
    rows = {cells[0]: cells for cells in map(columns, out.splitlines()) if "/" in cells[0]}
    assert rows["deployment.apps/web"][5:8] == ["web", "nginx:1.25", "app=web"]
    assert rows["service/web"][-1] == "app=web" and "80/TCP" in rows["service/web"]
    assert rows["configmap/web-config"][1] == "1"
    assert rows[f"namespace/{ns}"][1] == "Active"
    # Unscheduled, so Pending with its one container not ready; no node, no IP.
    assert rows["pod/solo"][1:4] == ["0/1", "Pending", "0"], out


def test_get_all_lists_the_category(kube: Kube) -> None:
    ns = "kt-all"
    make_app(kube, ns)
    kube.ok("create", "-f", "-", stdin=pod_manifest(ns, "solo"))
    out = kube.ok("get", "all", "-n", ns)
    names = {columns(line)[0] for line in out.splitlines() if line.strip()}
    assert {"pod/solo", "service/web", "deployment.apps/web"} <= names
    assert "configmap/web-config" not in names  # configmaps are not in "all"


def test_get_json_is_the_plain_object(kube: Kube) -> None:
    ns = "kt-json"
    make_app(kube, ns)
    one = json.loads(kube.ok("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert (one["apiVersion"], one["kind"]) == ("apps/v1", "Deployment")
    assert one["metadata"]["name"] == "web" and one["metadata"]["uid"]
    many = json.loads(kube.ok("get", "deploy", "-n", ns, "-o", "json"))
    assert many["kind"] == "List"
    assert [(d["apiVersion"], d["kind"], d["metadata"]["name"]) for d in many["items"]] == [
        ("apps/v1", "Deployment", "web")
    ]


def test_api_resources_lists_shortnames(kube: Kube) -> None:
    out = kube.ok("api-resources")
    rows = {cells[0]: cells for cells in map(columns, out.splitlines()[1:])}
    expected = {
        "pods": ["pods", "po", "v1", "true", "Pod"],
        "services": ["services", "svc", "v1", "true", "Service"],
        "configmaps": ["configmaps", "cm", "v1", "true", "ConfigMap"],
        "namespaces": ["namespaces", "ns", "v1", "false", "Namespace"],
        "deployments": ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        "replicasets": ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
    }
    for name, cells in expected.items():
        assert rows.get(name) == cells, out


def test_get_events_empty(kube: Kube) -> None:
    ns = "kt-events"
    kube.ok("create", "namespace", ns)
    res = kube.run("get", "events", "-n", ns)
    assert res.returncode == 0, kube.explain(("get", "events"), res)
    assert res.stdout == ""
    assert f"No resources found in {ns} namespace." in res.stderr


# --- watch -----------------------------------------------------------------------

class LineReader:
    """Collects a subprocess's stdout lines on a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def join(self) -> None:
        """Wait for the pump to reach EOF (call after the process has exited)."""
        self._thread.join(timeout=10)

    def wait_for(self, pred: Callable[[list[str]], bool], *, timeout_s: float = 15) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while not pred(columns(self.lines[-1]) if self.lines else []):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("watch output never matched; got:\n" + "\n".join(self.lines))
            try:
                self.lines.append(self._queue.get(timeout=left))
            except queue.Empty:
                continue
        return columns(self.lines[-1])


def test_get_pods_watch_sees_live_changes(kube: Kube) -> None:
    ns = "kt-watch"
    kube.ok("create", "namespace", ns)
    kube.ok("create", "-f", "-", stdin=pod_manifest(ns, "before"))
    proc = subprocess.Popen(
        [kube.binary, "get", "pods", "-w", "--output-watch-events", "--show-labels", "-n", ns],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=kube.master.env(),
    )
    reader = LineReader(proc)
    try:
        # The listed pod arrives first; kubectl then watches from the list's
        # resourceVersion, so every change below reaches it.
        reader.wait_for(lambda c: c[:2] == ["ADDED", "before"])
        kube.ok("create", "-f", "-", stdin=pod_manifest(ns, "live"))
        reader.wait_for(lambda c: c[:2] == ["ADDED", "live"])
        kube.ok("label", "pod", "live", "-n", ns, "stage=two")
        reader.wait_for(lambda c: c[:2] == ["MODIFIED", "live"] and "stage=two" in c[-1])
        kube.ok("delete", "pod", "live", "-n", ns)
        reader.wait_for(lambda c: c[:2] == ["DELETED", "live"])
        assert reader.lines[0].split()[:2] == ["EVENT", "NAME"]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join()
        assert proc.stdout is not None
        proc.stdout.close()


# --- describe ----------------------------------------------------------------------

def test_describe_deployment_and_pod(kube: Kube) -> None:
    ns = "kt-describe"
    make_app(kube, ns)
    kube.ok("create", "-f", "-", stdin=pod_manifest(ns, "solo", labels="app: solo"))
    for kind, name, label in (("deploy", "web", "app=web"), ("pod", "solo", "app=solo")):
        out = kube.ok("describe", kind, name, "-n", ns)
        fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()
                                                       if line and not line.startswith(" "))}
        assert fields["Name"] == name
        assert fields["Namespace"] == ns
        assert fields["Labels"] == label
        assert fields["Events"] == "<none>"


# --- label, annotate, create ----------------------------------------------------------

def test_label_and_annotate(kube: Kube) -> None:
    ns = "kt-label"
    make_app(kube, ns)
    where = ("deploy", "web", "-n", ns)
    assert "deployment.apps/web labeled" in kube.ok("label", *where, "tier=front")
    res = kube.fails("label", *where, "tier=back")
    assert "already has a value (front)" in res.stderr and "--overwrite is false" in res.stderr
    kube.ok("label", *where, "tier=back", "--overwrite")
    assert kube.jsonpath(*where, path="{.metadata.labels.tier}") == "back"
    assert "deployment.apps/web unlabeled" in kube.ok("label", *where, "tier-")
    assert json.loads(kube.jsonpath(*where, path="{.metadata.labels}")) == {"app": "web"}

    assert "deployment.apps/web annotated" in kube.ok("annotate", *where, "note=first")
    kube.fails("annotate", *where, "note=second")
    kube.ok("annotate", *where, "note=second", "--overwrite")
    assert kube.jsonpath(*where, path="{.metadata.annotations.note}") == "second"
    kube.ok("annotate", *where, "note-")
    annotations = kube.ok("get", *where, "-o", "json")
    assert "note" not in json.loads(annotations)["metadata"].get("annotations", {})


def test_create_namespace_is_active(kube: Kube) -> None:
    assert "namespace/kt-created created" in kube.ok("create", "namespace", "kt-created")
    out = kube.ok("get", "ns")
    rows = {cells[0]: cells for cells in map(columns, out.splitlines()[1:])}
    for ns in ("kt-created", "default", "kube-system", "kube-public", "kube-node-lease"):
        assert rows[ns][1] == "Active", out
    res = kube.fails("create", "namespace", "kt-created")
    assert "AlreadyExists" in res.stderr


def test_create_configmap_and_secret_from_literal(kube: Kube) -> None:
    ns = "kt-literal"
    kube.ok("create", "namespace", ns)
    kube.ok("create", "configmap", "lit", "-n", ns, "--from-literal=k1=v1", "--from-literal=k2=v2")
    assert json.loads(kube.jsonpath("cm", "lit", "-n", ns, path="{.data}")) == {"k1": "v1", "k2": "v2"}
    assert "secret/creds created" in kube.ok(
        "create", "secret", "generic", "creds", "-n", ns, "--from-literal=password=s3cret"
    )
    encoded = kube.jsonpath("secret", "creds", "-n", ns, path="{.data.password}")
    assert encoded == base64.b64encode(b"s3cret").decode()
    assert kube.jsonpath("secret", "creds", "-n", ns, path="{.type}") == "Opaque"


def test_expose_deployment_creates_a_service(kube: Kube) -> None:
    ns = "kt-expose"
    make_app(kube, ns)
    out = kube.ok("expose", "deployment", "web", "-n", ns, "--name=web-ext", "--port=8080", "--target-port=80")
    assert "service/web-ext exposed" in out
    svc = json.loads(kube.ok("get", "svc", "web-ext", "-n", ns, "-o", "json"))
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"][0]["port"] == 8080 and svc["spec"]["ports"][0]["targetPort"] == 80
    # Kubernetes' default type. (ClusterIP and NodePort allocation arrive with
    # the services issue; until then no address is assigned.)
    assert svc["spec"].get("type") == "ClusterIP", svc


# --- changes to an existing deployment ---------------------------------------------------

def test_scale_uses_the_scale_subresource(kube: Kube) -> None:
    ns = "kt-scale"
    make_app(kube, ns)
    assert "deployment.apps/web scaled" in kube.ok("scale", "deploy", "web", "-n", ns, "--replicas=4")
    assert kube.jsonpath("deploy", "web", "-n", ns, path="{.spec.replicas}") == "4"


def test_rollout_pause_and_resume(kube: Kube) -> None:
    ns = "kt-rollout"
    make_app(kube, ns)
    assert "deployment.apps/web paused" in kube.ok("rollout", "pause", "deploy/web", "-n", ns)
    assert kube.jsonpath("deploy", "web", "-n", ns, path="{.spec.paused}") == "true"
    assert "deployment.apps/web resumed" in kube.ok("rollout", "resume", "deploy/web", "-n", ns)
    # paused=false is omitted from the JSON, as Kubernetes does.
    assert kube.jsonpath("deploy", "web", "-n", ns, path="{.spec.paused}") in ("", "false")


def test_patch_json_and_merge(kube: Kube) -> None:
    ns = "kt-patch"
    make_app(kube, ns)
    where = ("deploy", "web", "-n", ns)
    ops = '[{"op":"replace","path":"/spec/replicas","value":5},{"op":"add","path":"/metadata/labels/j","value":"p"}]'
    assert "deployment.apps/web patched" in kube.ok("patch", *where, "--type=json", "-p", ops)
    kube.ok("patch", *where, "--type=merge", "-p", '{"metadata":{"labels":{"m":"y","j":null}}}')
    assert kube.jsonpath(*where, path="{.spec.replicas}") == "5"
    assert json.loads(kube.jsonpath(*where, path="{.metadata.labels}")) == {"app": "web", "m": "y"}
    # A failed "test" operation rejects the whole patch.
    kube.fails("patch", *where, "--type=json", "-p",
               '[{"op":"replace","path":"/spec/replicas","value":9},{"op":"test","path":"/spec/replicas","value":1}]')
    assert kube.jsonpath(*where, path="{.spec.replicas}") == "5"


def test_replace_with_stale_resource_version_conflicts(kube: Kube) -> None:
    ns = "kt-replace"
    make_app(kube, ns)
    stale = kube.write("stale-cm.json", kube.ok("get", "cm", "web-config", "-n", ns, "-o", "json"))
    kube.ok("label", "cm", "web-config", "-n", ns, "bump=1")  # moves resourceVersion on
    res = kube.fails("replace", "-f", str(stale))
    assert "Error from server (Conflict)" in res.stderr
    assert "the object has been modified" in res.stderr

    fresh = json.loads(kube.ok("get", "cm", "web-config", "-n", ns, "-o", "json"))
    fresh["data"]["greeting"] = "replaced"
    assert "configmap/web-config replaced" in kube.ok("replace", "-f", "-", stdin=json.dumps(fresh))
    assert kube.jsonpath("cm", "web-config", "-n", ns, path="{.data.greeting}") == "replaced"


# --- delete --------------------------------------------------------------------------------

def test_delete_manifest_removes_everything(kube: Kube) -> None:
    ns = "kt-delete"
    path = make_app(kube, ns)
    # Not in the manifest: only the namespace's own cleanup removes it.
    kube.ok("create", "configmap", "extra", "-n", ns, "--from-literal=k=v")
    # The namespace controller empties the namespace and lets it go.
    with controllers_in_thread(kube.master.grpc_target, ["namespace"]):
        out = kube.ok("delete", "-f", str(path))
    for line in (f'namespace "{ns}" deleted', 'configmap "web-config" deleted',
                 'deployment.apps "web" deleted', 'service "web" deleted'):
        assert line in out
    for args in (("ns", ns), ("deploy", "web", "-n", ns), ("cm", "web-config", "-n", ns), ("svc", "web", "-n", ns)):
        res = kube.fails("get", *args)
        assert "(NotFound)" in res.stderr, res.stderr
    left = json.loads(kube.ok("get", "deploy,svc,cm", "-A", "-o", "json"))["items"]
    assert [o["metadata"]["name"] for o in left if o["metadata"]["namespace"] == ns] == []
