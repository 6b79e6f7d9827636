"""Admission for Pods: defaults, validation causes, update rules; quantities and cron schedules."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from master.apiserver.admission.cron import schedule_errors, time_zone_errors
from master.apiserver.admission.quantity import (
    FORMAT_MSG,
    SUFFIX_MSG,
    QuantityError,
    parse_quantity,
)
from master.apiserver.admission.strategies import STRATEGIES
from protos.resources import RESOURCES
from tests.unit.admission_cases import (
    DELETE,
    assert_cause,
    container,
    create,
    create_error,
    edit,
    pod,
    update,
    update_error,
)

# --- quantities -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("100m", Fraction(1, 10)), ("1.5Gi", Fraction(3 * 2**29)), ("1e3", Fraction(1000)),
    ("2Ki", Fraction(2048)), ("1", Fraction(1)), ("0", Fraction(0)), ("250M", Fraction(250 * 10**6)),
    ("1E3", Fraction(1000)), ("5e-3", Fraction(5, 1000)), ("1k", Fraction(1000)),
    ("3n", Fraction(3, 10**9)), ("7u", Fraction(7, 10**6)), ("2Ti", Fraction(2 * 2**40)),
    ("1Ei", Fraction(2**60)), ("1E", Fraction(10**18)), (".5", Fraction(1, 2)), ("5.", Fraction(5)),
    ("+1", Fraction(1)), ("-1", Fraction(-1)), ("0.1Mi", Fraction(2**20, 10)), ("1e+2", Fraction(100)),
])
def test_parse_quantity(text: str, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("garbage", FORMAT_MSG), ("", FORMAT_MSG), ("1 Gi", FORMAT_MSG), ("Gi", FORMAT_MSG),
    (".", FORMAT_MSG), ("1.5.5", FORMAT_MSG), ("1mm", SUFFIX_MSG), ("1K", SUFFIX_MSG),
    ("1Ki2", SUFFIX_MSG), ("1e", SUFFIX_MSG), ("1i", SUFFIX_MSG), ("1Zi", FORMAT_MSG),
    ("1" * 100, "at most 64 digits"), ("1e999999999999", "at most 64 digits"),
    ("1e1001", "at most 64 digits"),
])
def test_parse_quantity_rejects(text: str, message: str) -> None:
    with pytest.raises(QuantityError, match=".*") as exc:
        parse_quantity(text)
    assert message in str(exc.value)


# --- cron schedules --------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule", [
    "*/5 * * * *", "0 0 * * *", "@hourly", "@daily", "@midnight", "@weekly", "@monthly",
    "@yearly", "@annually", "0 9-17 * * MON-FRI", "15,45 */2 1 jan,jul ?", "0 0 1-31/2 * sun",
    "5/10 * * * *",
])
def test_valid_schedules(schedule: str) -> None:
    assert schedule_errors(schedule) == []


@pytest.mark.parametrize(("schedule", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("@every 5m", "unrecognized descriptor: @every 5m"),
    ("@often", "unrecognized descriptor: @often"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("x * * * *", "failed to parse int from x"),
    ("TZ=UTC * * * * *", "cannot use TZ or CRON_TZ in schedule"),
])
def test_invalid_schedules(schedule: str, message: str) -> None:
    errs = schedule_errors(schedule)
    assert errs and message in errs[0]


def test_schedule_values_come_from_the_controller_s_parser() -> None:
    from master.reconcile.cron import parse

    s = parse("*/20 9-10 1 * MON-FRI")
    assert s.minutes == {0, 20, 40} and s.hours == {9, 10} and s.days_of_month == {1}
    assert s.months == set(range(1, 13)) and s.days_of_week == {1, 2, 3, 4, 5}


@pytest.mark.parametrize(("tz", "ok"), [
    ("Europe/Paris", True), ("UTC", True), ("America/New_York", True), ("Local", False),
    ("Foo/Bar", False), ("", False), ("../etc/passwd", False), ("/etc/passwd", False),
    ("Europe", False), ("a" * 300, False),
])
def test_time_zones(tz: str, ok: bool) -> None:
    assert (time_zone_errors(tz) == []) is ok


# --- registration ----------------------------------------------------------------------------------

def test_every_served_kind_has_a_strategy() -> None:
    assert {r.kind for r in RESOURCES} <= set(STRATEGIES)


# --- Pod defaults ----------------------------------------------------------------------------------

def test_pod_defaults() -> None:
    out = create("Pod", pod())
    assert out["spec"] == {
        "containers": [{
            "name": "app", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        }],
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default", "serviceAccount": "default", "securityContext": {},
        "schedulerName": "default-scheduler", "enableServiceLinks": True,
    }
    assert out["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert out["metadata"]["uid"] and out["metadata"]["creationTimestamp"] == "2024-05-02T12:00:00Z"


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/team/app", "Always"), ("registry:5000/team/app:v2", "IfNotPresent"),
    ("app@sha256:abcd", "IfNotPresent"),
])
def test_image_pull_policy_default(image: str, policy: str) -> None:
    out = create("Pod", pod(containers=[container(image=image)]))
    assert out["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_container_and_volume_defaults() -> None:
    probe = {"httpGet": {"port": "http"}}
    ctr = container(ports=[{"name": "http", "containerPort": 8080}], livenessProbe=probe,
                    readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 5},
                    env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}])
    out = create("Pod", pod(containers=[ctr], volumes=[
        {"name": "cfg", "configMap": {"name": "settings"}},
        {"name": "tok", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "scratch", "emptyDir": {}},
    ]))
    c = out["spec"]["containers"][0]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"path": "/", "port": "http", "scheme": "HTTP"},
                                  "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"apiVersion": "v1", "fieldPath": "spec.nodeName"}
    vols = out["spec"]["volumes"]
    assert vols[0]["configMap"] == {"name": "settings", "defaultMode": 420}
    assert vols[1]["secret"] == {"secretName": "s", "defaultMode": 256}
    assert vols[2] == {"name": "scratch", "emptyDir": {}}


def test_host_network_host_ports() -> None:
    out = create("Pod", pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 53}])]))
    assert out["spec"]["containers"][0]["ports"][0]["hostPort"] == 53


@pytest.mark.parametrize(("resources", "qos"), [
    ([{}], "BestEffort"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed"),
    ([{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}}], "Guaranteed"),
    ([{"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "1Gi"}}], "Burstable"),
    ([{"requests": {"cpu": "100m"}}], "Burstable"),
    ([{"limits": {"cpu": "1"}}], "Burstable"),
    ([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable"),
    ([{"requests": {"cpu": "0"}}], "BestEffort"),
    ([{"limits": {"example.com/gpu": "1"}}], "BestEffort"),
])
def test_qos_class(resources: list[dict[str, Any]], qos: str) -> None:
    ctrs = [container(name=f"c{i}", resources=r) for i, r in enumerate(resources)]
    assert create("Pod", pod(containers=ctrs))["status"]["qosClass"] == qos


def test_requests_default_to_limits_for_pods_only() -> None:
    out = create("Pod", pod(containers=[container(resources={"limits": {"cpu": "2"}, "requests": {}})]))
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "2"}


def test_client_status_is_replaced_on_create() -> None:
    body = pod()
    body["status"] = {"phase": "Running", "podIP": "10.0.0.1"}
    assert create("Pod", body)["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


# --- Pod validation ----------------------------------------------------------------------------------

C0 = "spec.containers.0"
INVALID_PODS: list[tuple[str, str, Any, str, str]] = [
    # (id, path to edit, value, expected cause field, text in its message)
    ("no containers", "spec.containers", [], "spec.containers", "Required value"),
    ("no image", f"{C0}.image", "", "spec.containers[0].image", "Required value"),
    ("bad container name", f"{C0}.name", "Web_1", "spec.containers[0].name", "RFC 1123"),
    ("missing container name", f"{C0}.name", "", "spec.containers[0].name", "Required value"),
    ("port 0", f"{C0}.ports", [{"containerPort": 0}], "spec.containers[0].ports[0].containerPort", "Required"),
    ("port too big", f"{C0}.ports", [{"containerPort": 70000}],
     "spec.containers[0].ports[0].containerPort", "must be between 1 and 65535, inclusive"),
    ("bad protocol", f"{C0}.ports", [{"containerPort": 80, "protocol": "HTTP"}],
     "spec.containers[0].ports[0].protocol", 'Unsupported value: "HTTP"'),
    ("port name too long", f"{C0}.ports", [{"containerPort": 80, "name": "a-very-long-port-name"}],
     "spec.containers[0].ports[0].name", "must be no more than 15 characters"),
    ("port name digits", f"{C0}.ports", [{"containerPort": 80, "name": "8080"}],
     "spec.containers[0].ports[0].name", "must contain at least one letter"),
    ("duplicate port names", f"{C0}.ports", [{"containerPort": 80, "name": "web"},
                                             {"containerPort": 81, "name": "web"}],
     "spec.containers[0].ports[1].name", "Duplicate value"),
    ("env name", f"{C0}.env", [{"name": "1BAD", "value": "x"}], "spec.containers[0].env[0].name",
     "a valid environment variable name"),
    ("env no name", f"{C0}.env", [{"value": "x"}], "spec.containers[0].env[0].name", "Required"),
    ("env two sources", f"{C0}.env", [{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}, "secretKeyRef": {"name": "s", "key": "k"}}}],
     "spec.containers[0].env[0].valueFrom", "may not have more than one field specified"),
    ("env no source", f"{C0}.env", [{"name": "A", "valueFrom": {}}],
     "spec.containers[0].env[0].valueFrom", "must specify one of"),
    ("env bad field path", f"{C0}.env", [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}],
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "Unsupported value"),
    ("env secret key", f"{C0}.env", [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a b"}}}],
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key", "a valid config key"),
    ("bad quantity", f"{C0}.resources", {"limits": {"cpu": "lots"}},
     "spec.containers[0].resources.limits[cpu]", "quantities must match the regular expression"),
    ("negative quantity", f"{C0}.resources", {"requests": {"memory": "-1Gi"}},
     "spec.containers[0].resources.requests[memory]", "must be greater than or equal to 0"),
    ("requests above limits", f"{C0}.resources", {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}},
     "spec.containers[0].resources.requests[cpu]", "must be less than or equal to cpu limit of 1500m"),
    ("unknown resource", f"{C0}.resources", {"limits": {"gpu": "1"}},
     "spec.containers[0].resources.limits[gpu]", "must be a standard resource for containers"),
    ("restart policy", "spec.restartPolicy", "Sometimes", "spec.restartPolicy", 'Unsupported value: "Sometimes"'),
    ("dns policy", "spec.dnsPolicy", "Google", "spec.dnsPolicy", "Unsupported value"),
    ("dns None needs config", "spec.dnsPolicy", "None", "spec.dnsConfig", "must provide `dnsConfig`"),
    ("volume no source", "spec.volumes", [{"name": "v"}], "spec.volumes[0]", "must specify a volume type"),
    ("volume two sources", "spec.volumes", [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}],
     "spec.volumes[0].emptyDir", "may not specify more than 1 volume type"),
    ("volume bad name", "spec.volumes", [{"name": "V", "emptyDir": {}}], "spec.volumes[0].name", "RFC 1123"),
    ("volume duplicate", "spec.volumes", [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
     "spec.volumes[1].name", "Duplicate value"),
    ("secret volume name", "spec.volumes", [{"name": "v", "secret": {}}],
     "spec.volumes[0].secret.secretName", "Required value"),
    ("volume mode", "spec.volumes", [{"name": "v", "configMap": {"name": "c", "defaultMode": 4095}}],
     "spec.volumes[0].configMap.defaultMode", "0777"),
    ("mount unknown volume", f"{C0}.volumeMounts", [{"name": "nope", "mountPath": "/x"}],
     "spec.containers[0].volumeMounts[0].name", 'Not found: "nope"'),
    ("mount no path", f"{C0}.volumeMounts", [{"name": "nope"}],
     "spec.containers[0].volumeMounts[0].mountPath", "Required value"),
    ("probe no handler", f"{C0}.livenessProbe", {"periodSeconds": 3},
     "spec.containers[0].livenessProbe", "must specify a handler type"),
    ("probe two handlers", f"{C0}.readinessProbe", {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}},
     "spec.containers[0].readinessProbe.tcpSocket", "may not specify more than 1 handler type"),
    ("probe bad port", f"{C0}.livenessProbe", {"httpGet": {"port": 0}},
     "spec.containers[0].livenessProbe.httpGet.port", "must be between 1 and 65535"),
    ("probe bad port name", f"{C0}.livenessProbe", {"tcpSocket": {"port": "Web!"}},
     "spec.containers[0].livenessProbe.tcpSocket.port", "alpha-numeric"),
    ("probe negative threshold", f"{C0}.livenessProbe", {"exec": {"command": ["x"]}, "failureThreshold": -1},
     "spec.containers[0].livenessProbe.failureThreshold", "must be greater than or equal to 0"),
    ("liveness success threshold", f"{C0}.livenessProbe", {"exec": {"command": ["x"]}, "successThreshold": 2},
     "spec.containers[0].livenessProbe.successThreshold", "must be 1"),
    ("toleration Exists with value", "spec.tolerations", [{"key": "k", "operator": "Exists", "value": "v"}],
     "spec.tolerations[0].operator", "value must be empty when `operator` is 'Exists'"),
    ("toleration bad operator", "spec.tolerations", [{"key": "k", "operator": "Is"}],
     "spec.tolerations[0].operator", "Unsupported value"),
    ("toleration bad effect", "spec.tolerations", [{"key": "k", "value": "v", "effect": "Evict"}],
     "spec.tolerations[0].effect", "Unsupported value"),
    ("toleration empty key", "spec.tolerations", [{"operator": "Equal", "value": "v"}],
     "spec.tolerations[0].operator", "operator must be Exists when `key` is empty"),
    ("node selector", "spec.nodeSelector", {"disk": "fast ssd"}, "spec.nodeSelector", "a valid label"),
    ("affinity operator", "spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near"}]}]}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].operator", "not a valid selector operator"),
    ("affinity In without values", "spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].values", "must be specified when `operator` is 'In'"),
    ("affinity Gt two values", "spec.affinity", {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["1", "2"]}]}]}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
     ".nodeSelectorTerms[0].matchExpressions[0].values", "single value"),
    ("affinity Exists with values", "spec.affinity", {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "z", "operator": "Exists", "values": ["a"]}]}}]}},
     "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
     ".preference.matchExpressions[0].values", "may not be specified"),
    ("affinity weight", "spec.affinity", {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "podAffinityTerm": {"topologyKey": "zone"}}]}},
     "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", "1-100"),
    ("pod affinity topology key", "spec.affinity", {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"a": "b"}}}]}},
     "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey", "can not be empty"),
    ("spread max skew", "spec.topologySpreadConstraints", [
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
     "spec.topologySpreadConstraints[0].maxSkew", "must be greater than zero"),
    ("spread unsatisfiable", "spec.topologySpreadConstraints", [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}],
     "spec.topologySpreadConstraints[0].whenUnsatisfiable", "Unsupported value"),
    ("spread topology key", "spec.topologySpreadConstraints", [
        {"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}],
     "spec.topologySpreadConstraints[0].topologyKey", "can not be empty"),
    ("grace period", "spec.terminationGracePeriodSeconds", -5, "spec.terminationGracePeriodSeconds",
     "must be greater than or equal to 0"),
    ("active deadline", "spec.activeDeadlineSeconds", 0, "spec.activeDeadlineSeconds",
     "must be between 1 and 2147483647, inclusive"),
    ("init container duplicate", "spec.initContainers", [container()], "spec.containers[0].name",
     'Duplicate value: "app"'),
    ("init container probe", "spec.initContainers", [container(name="init", livenessProbe={"exec": {"command": ["x"]}})],
     "spec.initContainers[0].livenessProbe", "may not be set for init containers"),
    ("container restartPolicy", f"{C0}.restartPolicy", "Always", "spec.containers[0].restartPolicy",
     "may not be set for non-init containers"),
    ("service account", "spec.serviceAccountName", "Bad_Name", "spec.serviceAccountName", "RFC 1123"),
]


@pytest.mark.parametrize(("path", "value", "field", "text"), [c[1:] for c in INVALID_PODS],
                         ids=[c[0] for c in INVALID_PODS])
def test_invalid_pod(path: str, value: Any, field: str, text: str) -> None:
    err = create_error("Pod", edit(pod(), path, value))
    assert_cause(err, field, text)
    assert err.reason == "Invalid" and err.message.startswith('Pod "web" is invalid: ')


def test_every_problem_is_reported_at_once() -> None:
    body = pod(restartPolicy="Sometimes", containers=[container(image="", ports=[{"containerPort": 0}])])
    err = create_error("Pod", body)
    assert {c.field for c in err.causes} >= {
        "spec.restartPolicy", "spec.containers[0].image", "spec.containers[0].ports[0].containerPort"}


def test_host_network_requires_matching_host_port() -> None:
    ports = [{"containerPort": 80, "hostPort": 8080}]
    err = create_error("Pod", pod(hostNetwork=True, containers=[container(ports=ports)]))
    assert_cause(err, "spec.containers[0].ports[0].hostPort", "must match `containerPort`")


def test_a_full_pod_passes() -> None:
    body = pod(
        initContainers=[container(name="init", image="busybox", command=["sh", "-c", "true"])],
        containers=[container(
            ports=[{"name": "http", "containerPort": 80}],
            env=[{"name": "MODE", "value": "prod"},
                 {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                 {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
            envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            resources={"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            livenessProbe={"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3},
            readinessProbe={"grpc": {"port": 9090}, "successThreshold": 2},
            lifecycle={"preStop": {"sleep": {"seconds": 5}}},
            volumeMounts=[{"name": "data", "mountPath": "/data", "subPath": "app"}],
        )],
        volumes=[{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                 {"name": "proj", "projected": {"sources": [{"configMap": {"name": "c"}},
                                                            {"serviceAccountToken": {"path": "token"}}]}}],
        nodeSelector={"kubernetes.io/os": "linux"},
        tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                      "tolerationSeconds": 300}, {"operator": "Exists"}],
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["2"]}],
             "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node1"]}]}]}},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                 "topologyKey": "kubernetes.io/hostname"}]}},
        topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}],
        activeDeadlineSeconds=600, hostname="web-0", subdomain="web",
    )
    out = create("Pod", body)
    assert out["status"]["qosClass"] == "Burstable"
    assert out["spec"]["volumes"][1]["projected"]["sources"][1]["serviceAccountToken"]["expirationSeconds"] == 3600


# --- Pod updates ---------------------------------------------------------------------------------------

def test_pod_update_may_change_images_deadline_and_add_tolerations() -> None:
    old = pod(activeDeadlineSeconds=100, tolerations=[{"key": "a", "operator": "Exists"}])
    new = pod(activeDeadlineSeconds=50, containers=[container(image="nginx:1.26")],
              tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}])
    out = update("Pod", old, new)
    assert out["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert out["spec"]["activeDeadlineSeconds"] == 50


@pytest.mark.parametrize(("old", "new", "field", "text"), [
    (pod(), pod(restartPolicy="Never"), "spec", "pod updates may not change fields other than"),
    (pod(), pod(containers=[container(), container(name="b")]), "spec", "pod updates may not change"),
    (pod(), pod(nodeName="node1"), "spec", "`spec.initContainers[*].image`"),
    (pod(activeDeadlineSeconds=10), pod(activeDeadlineSeconds=20), "spec.activeDeadlineSeconds",
     "must be less than or equal to previous value"),
    (pod(activeDeadlineSeconds=10), pod(), "spec.activeDeadlineSeconds", "must not update from a positive"),
    (pod(tolerations=[{"key": "a", "operator": "Exists"}]), pod(tolerations=[]), "spec.tolerations",
     "existing toleration can not be modified"),
])
def test_pod_update_forbidden(old: dict[str, Any], new: dict[str, Any], field: str, text: str) -> None:
    assert_cause(update_error("Pod", old, new), field, text)


def test_pod_status_and_binding_writes_skip_the_spec_rule() -> None:
    new = edit(pod(), "status", {"phase": "Running"})
    assert update("Pod", pod(), new, subresource="status")["status"]["phase"] == "Running"
    bound = pod(nodeName="node1")
    assert update("Pod", pod(), bound, subresource="binding")["spec"]["nodeName"] == "node1"


def test_pod_update_without_defaults_in_the_body_is_no_change() -> None:
    old = pod(containers=[container(resources={"limits": {"cpu": "1"}})])
    out = update("Pod", old, edit(old, "spec.containers.0.image", "nginx:2"))
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1"}


def test_edit_helper_deletes() -> None:
    assert "image" not in edit(pod(), f"{C0}.image", DELETE)["spec"]["containers"][0]
