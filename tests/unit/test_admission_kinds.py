"""Admission for Service, Endpoints, Namespace, Node, ConfigMap, Secret, Event,
ResourceQuota and Lease: defaults, validation causes and update rules."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from master.apiserver.admission.strategies import strategy_for
from tests.unit.admission_cases import (
    DELETE,
    admitted,
    assert_cause,
    create,
    create_error,
    decode,
    edit,
    meta,
    update,
    update_error,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def service(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": {"selector": {"app": "web"},
                                              "ports": [{"port": 80}], **spec}}


def node(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "node1"}, "spec": spec}


def configmap(**extra: Any) -> dict[str, Any]:
    return {"metadata": meta("cfg"), "data": {"app.conf": "x=1"}, **extra}


def secret(**extra: Any) -> dict[str, Any]:
    return {"metadata": meta("creds"), "data": {"password": b64("hunter2")}, **extra}


def event(**extra: Any) -> dict[str, Any]:
    return {"metadata": meta("web.1"), "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Started", "message": "Started container", "type": "Normal", **extra}


# --- defaults ------------------------------------------------------------------------------

def test_service_defaults() -> None:
    spec = create("Service", service())["spec"]
    assert spec == {
        "ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}], "selector": {"app": "web"},
        "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
    }


def test_nodeport_service_defaults() -> None:
    body = service(type="NodePort", sessionAffinity="ClientIP",
                   ports=[{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080},
                          {"name": "dns", "port": 53, "protocol": "UDP"}])
    spec = create("Service", body)["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert spec["ports"][0]["targetPort"] == "web" and spec["ports"][1]["targetPort"] == 53
    assert "clusterIP" not in spec  # allocation is not admission's job


def test_external_name_and_headless_services() -> None:
    spec = create("Service", {"metadata": meta("db"), "spec": {"type": "ExternalName",
                                                               "externalName": "db.example.com"}})["spec"]
    assert spec == {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"}
    headless = create("Service", {"metadata": meta("db"), "spec": {"clusterIP": "None", "selector": {"a": "b"}}})
    assert headless["spec"]["clusterIPs"] == ["None"]


def test_other_kind_defaults() -> None:
    eps = create("Endpoints", {"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}]})
    assert eps["subsets"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert create("Secret", secret())["type"] == "Opaque"
    assert create("Node", node(podCIDR="10.244.1.0/24"))["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    assert create("Namespace", {"metadata": {"name": "team-a"}})["metadata"]["name"] == "team-a"
    assert create("Lease", {"metadata": meta("node1"), "spec": {"leaseDurationSeconds": 40}})


def test_secret_string_data_is_folded_into_data() -> None:
    out = create("Secret", secret(stringData={"user": "admin", "password": "s3cret"}))
    assert out["data"] == {"password": b64("s3cret"), "user": b64("admin")}
    assert "stringData" not in out


# --- validation -----------------------------------------------------------------------------------

INVALID: list[tuple[str, str, dict[str, Any], str, Any, str, str]] = [
    ("svc no ports", "Service", service(), "spec.ports", [], "spec.ports", "Required value"),
    ("svc port 0", "Service", service(), "spec.ports", [{"port": 0}], "spec.ports[0].port",
     "must be between 1 and 65535, inclusive"),
    ("svc names required", "Service", service(), "spec.ports", [{"port": 80}, {"port": 81}],
     "spec.ports[1].name", "Required value"),
    ("svc names unique", "Service", service(), "spec.ports", [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}],
     "spec.ports[1].name", "Duplicate value"),
    ("svc duplicate port", "Service", service(), "spec.ports", [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}],
     "spec.ports[1]", "Duplicate value"),
    ("svc protocol", "Service", service(), "spec.ports", [{"port": 80, "protocol": "ICMP"}],
     "spec.ports[0].protocol", 'supported values: "SCTP", "TCP", "UDP"'),
    ("svc target port", "Service", service(), "spec.ports", [{"port": 80, "targetPort": 70000}],
     "spec.ports[0].targetPort", "must be between 1 and 65535"),
    ("svc target port name", "Service", service(), "spec.ports", [{"port": 80, "targetPort": "HTTP_PORT"}],
     "spec.ports[0].targetPort", "alpha-numeric"),
    ("svc node port on ClusterIP", "Service", service(), "spec.ports", [{"port": 80, "nodePort": 30001}],
     "spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'"),
    ("svc node port range", "Service", service(type="NodePort"), "spec.ports", [{"port": 80, "nodePort": 70000}],
     "spec.ports[0].nodePort", "must be between 1 and 65535"),
    ("svc type", "Service", service(), "spec.type", "Internal", "spec.type", "Unsupported value"),
    ("svc affinity", "Service", service(), "spec.sessionAffinity", "Sticky", "spec.sessionAffinity",
     'supported values: "ClientIP", "None"'),
    ("svc selector", "Service", service(), "spec.selector", {"app": "a b"}, "spec.selector", "a valid label"),
    ("svc cluster ip", "Service", service(), "spec.clusterIP", "10.96.0.300", "spec.clusterIPs[0]",
     "must be a valid IP address"),
    ("svc external name", "Service", service(), "spec", {"type": "ExternalName"}, "spec.externalName",
     "Required value"),
    ("svc etp on ClusterIP", "Service", service(), "spec.externalTrafficPolicy", "Local",
     "spec.externalTrafficPolicy", "may only be set when `type` is 'NodePort' or 'LoadBalancer'"),
    ("svc headless NodePort", "Service", service(type="NodePort"), "spec.clusterIP", "None", "spec.clusterIPs[0]",
     "may not be set to 'None' for NodePort services"),
    ("ep bad ip", "Endpoints", {"metadata": meta("web"), "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]},
     "subsets.0.addresses.0.ip", "ten", "subsets[0].addresses[0].ip", "must be a valid IP address"),
    ("ep bad port", "Endpoints", {"metadata": meta("web"), "subsets": [{"ports": [{"port": 80}]}]},
     "subsets.0.ports.0.port", 0, "subsets[0].ports[0].port", "must be between 1 and 65535"),
    ("node taint effect", "Node", node(taints=[{"key": "k", "effect": "NoSchedule"}]), "spec.taints.0.effect",
     DELETE, "spec.taints[0].effect", "Required value"),
    ("node taint bad effect", "Node", node(taints=[{"key": "k", "effect": "NoSchedule"}]), "spec.taints.0.effect",
     "Evict", "spec.taints[0].effect", "Unsupported value"),
    ("node taint key", "Node", node(taints=[{"key": "k", "effect": "NoSchedule"}]), "spec.taints.0.key",
     "bad key", "spec.taints[0].key", "name part must consist"),
    ("node taint duplicate", "Node", node(), "spec.taints", [{"key": "k", "effect": "NoSchedule"},
                                                             {"key": "k", "value": "v", "effect": "NoSchedule"}],
     "spec.taints[1]", "taints must be unique by key and effect pair"),
    ("node pod cidr", "Node", node(), "spec.podCIDR", "10.244.1.0", "spec.podCIDRs[0]", "must be a valid CIDR"),
    ("cm key", "ConfigMap", configmap(), "data", {"bad key": "x"}, "data[bad key]", "a valid config key"),
    ("cm dot key", "ConfigMap", configmap(), "data", {"..": "x"}, "data[..]", "must not be '..'"),
    ("cm key in both", "ConfigMap", configmap(), "binaryData", {"app.conf": b64("x")}, "binaryData[app.conf]",
     "duplicate of key present in data"),
    ("cm too big", "ConfigMap", configmap(), "data", {"big": "x" * (1024 * 1024)}, "", "Too long"),
    ("secret key", "Secret", secret(), "data", {"a/b": b64("x")}, "data[a/b]", "a valid config key"),
    ("secret string key", "Secret", secret(), "stringData", {"a b": "x"}, "data[a b]", "a valid config key"),
    ("secret tls", "Secret", secret(type="kubernetes.io/tls", data={"tls.crt": b64("c"), "tls.key": b64("k")}),
     "data", {"tls.crt": b64("c")}, "data[tls.key]",
     "Required value"),
    ("secret docker json", "Secret", secret(type="kubernetes.io/dockerconfigjson",
                                            data={".dockerconfigjson": b64("{}")}),
     "data", {".dockerconfigjson": b64("{nope")}, "data[.dockerconfigjson]", "<secret contents redacted>"),
    ("secret docker missing", "Secret", secret(type="kubernetes.io/dockerconfigjson",
                                               data={".dockerconfigjson": b64("{}")}),
     "data", {}, "data[.dockerconfigjson]", "Required value"),
    ("secret sa token", "Secret", secret(type="kubernetes.io/service-account-token", metadata=meta(
        "t", annotations={"kubernetes.io/service-account.name": "default"})),
     "metadata.annotations", {}, "metadata.annotations[kubernetes.io/service-account.name]", "Required value"),
    ("event namespace", "Event", event(), "involvedObject.namespace", "other", "involvedObject.namespace",
     "does not match event.namespace"),
    ("event cluster object", "Event", event(involvedObject={"kind": "Node", "name": "node1"}), "metadata.namespace",
     "kube-system", "involvedObject.namespace", "does not match event.namespace"),
    ("event no object", "Event", event(), "involvedObject", DELETE, "involvedObject", "Required value"),
    ("event type", "Event", event(), "type", "Critical", "type", 'supported values: "Normal", "Warning"'),
    ("event reason", "Event", event(), "reason", "r" * 200, "reason", "can have at most 128 characters"),
    ("quota quantity", "ResourceQuota", {"metadata": meta("q"), "spec": {"hard": {"pods": "10"}}},
     "spec.hard", {"pods": "ten"}, "spec.hard[pods]", "quantities must match the regular expression"),
    ("quota scope", "ResourceQuota", {"metadata": meta("q"), "spec": {"hard": {"pods": "10"}}},
     "spec.scopes", ["Everything"], "spec.scopes[0]", "Unsupported value"),
    ("lease duration", "Lease", {"metadata": meta("l"), "spec": {"leaseDurationSeconds": 10}},
     "spec.leaseDurationSeconds", 0, "spec.leaseDurationSeconds", "must be greater than 0"),
]


@pytest.mark.parametrize(("kind", "body", "path", "value", "field", "text"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_object(kind: str, body: dict[str, Any], path: str, value: Any, field: str, text: str) -> None:
    assert create(kind, body)  # the base manifest is valid
    err = create_error(kind, edit(body, path, value))
    assert_cause(err, field, text)


# --- updates ------------------------------------------------------------------------------------------

def test_service_keeps_allocated_values_and_cluster_ip_is_immutable() -> None:
    old = service(type="NodePort", clusterIP="10.96.0.20", ports=[{"port": 80, "nodePort": 30080}])
    out = update("Service", old, service(type="NodePort"))
    assert out["spec"]["clusterIP"] == "10.96.0.20" and out["spec"]["clusterIPs"] == ["10.96.0.20"]
    assert out["spec"]["ports"][0]["nodePort"] == 30080
    err = update_error("Service", old, service(type="NodePort", clusterIP="10.96.0.21"))
    assert_cause(err, "spec.clusterIPs[0]", "may not change once set")
    external = {"metadata": meta("web"), "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert update("Service", old, external)["spec"]["type"] == "ExternalName"


def test_node_pod_cidr_may_not_change_once_set() -> None:
    assert update("Node", node(), node(podCIDR="10.244.1.0/24"))["spec"]["podCIDR"] == "10.244.1.0/24"
    err = update_error("Node", node(podCIDR="10.244.1.0/24"), node(podCIDR="10.244.2.0/24"))
    assert_cause(err, "spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')


def test_immutable_configmaps_and_secrets() -> None:
    old = configmap(immutable=True)
    err = update_error("ConfigMap", old, configmap(immutable=True, data={"app.conf": "x=2"}))
    assert_cause(err, "data", "field is immutable when `immutable` is set")
    err = update_error("ConfigMap", old, configmap(immutable=False))
    assert_cause(err, "immutable", "field is immutable when `immutable` is set")
    assert update("ConfigMap", configmap(), configmap(data={"a": "b"}))["data"] == {"a": "b"}
    err = update_error("Secret", secret(immutable=True), secret(immutable=True, data={}))
    assert_cause(err, "data", "field is immutable when `immutable` is set")
    err = update_error("Secret", secret(), secret(type="kubernetes.io/basic-auth"))
    assert_cause(err, "type", "field is immutable")


def test_service_prepare_for_update_runs_before_defaults() -> None:
    old = admitted("Service", service(type="NodePort", clusterIP="10.96.0.20",
                                      ports=[{"port": 80, "nodePort": 30080}]))
    new = decode("Service", service(type="NodePort"))  # protocol not defaulted yet
    strategy_for("Service").prepare_for_update(new, old)
    assert new.spec.cluster_ip == "10.96.0.20" and new.spec.ports[0].node_port == 30080
