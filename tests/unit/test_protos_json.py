"""The API schema's protobuf JSON mapping is Kubernetes' JSON (DESIGN 1).

Covers protos/{core,apps,batch,coordination}/v1 only: realistic manifests parse
strictly (every field name exists) and print back unchanged; what is printed
is accepted by the Python kubernetes client's own models; every field name and
type agrees with that client's (OpenAPI-generated) schema; no 64-bit integers;
strategic-merge and quantity options are where Kubernetes has them.

It does not test defaults, validation or the codec (protos/codec.py): raw
json_format prints IntOrString numbers as floats (8080.0), so these tests
compare numbers numerically and leave the fix to the codec.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterator
from typing import Any

import kubernetes.client.models as k8s_models
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from protos.apps.v1 import apps_pb2
from protos.batch.v1 import batch_pb2
from protos.coordination.v1 import coordination_pb2
from protos.core.v1 import core_pb2
from protos.flotilla import options_pb2
from protos.resources import RESOURCES

SCHEMA_MODULES = (core_pb2, apps_pb2, batch_pb2, coordination_pb2)

# ---------------------------------------------------------------------------
# Helpers


def _messages() -> Iterator[Descriptor]:
    """Every message of the four packages, nested ones (map entries) included."""
    pending = [d for m in SCHEMA_MODULES for d in m.DESCRIPTOR.message_types_by_name.values()]
    while pending:
        desc = pending.pop()
        pending.extend(desc.nested_types)
        yield desc


def _numbers_as_ints(value: Any) -> Any:
    """Turn integral floats back into ints (google.protobuf.Value prints 8080.0)."""
    if isinstance(value, dict):
        return {k: _numbers_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_ints(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _round_trip(cls: type[Message], manifest: dict[str, Any]) -> dict[str, Any]:
    msg = json_format.ParseDict(copy.deepcopy(manifest), cls(), ignore_unknown_fields=False)
    printed = json_format.MessageToDict(msg, preserving_proto_field_name=False)
    return _numbers_as_ints(printed)  # type: ignore[no-any-return]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------------------
# Manifests, written the way Kubernetes prints them

_LABELS = {"app": "web"}
_T0 = "2024-05-01T10:00:00Z"
_T1 = "2024-05-01T10:05:00Z"

_WEB_CONTAINER: dict[str, Any] = {
    "name": "web",
    "image": "nginx:1.25",
    "imagePullPolicy": "IfNotPresent",
    "command": ["nginx"],
    "args": ["-g", "daemon off;"],
    "workingDir": "/srv",
    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP",
               "hostPort": 18080, "hostIP": "127.0.0.1"}],
    "env": [
        {"name": "MODE", "value": "production"},
        {"name": "POD_NAME",
         "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {
            "containerName": "web", "resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {
            "name": "web-config", "key": "log-level", "optional": True}}},
        {"name": "DB_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "web-secret", "key": "password"}}},
    ],
    "envFrom": [{"configMapRef": {"name": "web-env"}},
                {"prefix": "S_", "secretRef": {"name": "web-env-secret", "optional": False}}],
    "resources": {"requests": {"cpu": "500m", "memory": "128Mi"},
                  "limits": {"cpu": "1", "memory": "256Mi"}},
    "volumeMounts": [
        {"name": "config", "mountPath": "/etc/web", "readOnly": True},
        {"name": "secret", "mountPath": "/etc/secret", "readOnly": True},
        {"name": "cache", "mountPath": "/cache", "subPath": "web"},
    ],
    "livenessProbe": {
        "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP",
                    "httpHeaders": [{"name": "X-Probe", "value": "liveness"}]},
        "initialDelaySeconds": 10, "timeoutSeconds": 1, "periodSeconds": 10,
        "successThreshold": 1, "failureThreshold": 3,
    },
    "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 5},
    "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "failureThreshold": 30,
                     "periodSeconds": 2, "terminationGracePeriodSeconds": 5},
    "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo started"]}},
                  "preStop": {"httpGet": {"path": "/drain", "port": "http"}}},
    "securityContext": {
        "runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
}

_POD_SPEC: dict[str, Any] = {
    "initContainers": [
        {"name": "migrate", "image": "busybox:1.36", "command": ["sh", "-c", "echo migrate"]},
        {"name": "log-shipper", "image": "busybox:1.36", "restartPolicy": "Always",
         "args": ["tail", "-F", "/var/log/app.log"]},
    ],
    "containers": [
        _WEB_CONTAINER,
        {"name": "grpc", "image": "grpc:1.0", "stdin": False, "tty": False,
         "livenessProbe": {"grpc": {"port": 9090, "service": "health"}}},
    ],
    "volumes": [
        {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420,
                                         "items": [{"key": "nginx.conf", "path": "nginx.conf"}]}},
        {"name": "secret", "secret": {"secretName": "web-secret", "defaultMode": 256,
                                      "optional": False}},
        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "web-data", "readOnly": True}},
        {"name": "podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]}},
        {"name": "shared", "nfs": {"server": "10.0.0.2", "path": "/exports", "readOnly": True}},
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "preference": {"matchExpressions": [
                    {"key": "disktype", "operator": "In", "values": ["ssd"]}]}}],
        },
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "cache"}},
             "topologyKey": "kubernetes.io/hostname"}]},
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": _LABELS},
                 "topologyKey": "kubernetes.io/hostname"}],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [
                        {"key": "app", "operator": "In", "values": ["web"]}]},
                    "namespaces": ["default"],
                    "namespaceSelector": {"matchLabels": {"team": "web"}},
                    "topologyKey": "topology.kubernetes.io/zone"}}],
        },
    },
    "tolerations": [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"},
    ],
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
         "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": _LABELS},
         "minDomains": 2, "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Ignore",
         "matchLabelKeys": ["pod-template-hash"]},
    ],
    "securityContext": {
        "fsGroup": 2000, "runAsNonRoot": True, "supplementalGroups": [4000],
        "fsGroupChangePolicy": "OnRootMismatch",
        "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "activeDeadlineSeconds": 3600,
    "dnsPolicy": "ClusterFirst",
    "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["svc.cluster.local"],
                  "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]},
    "serviceAccountName": "web",
    "serviceAccount": "web",
    "automountServiceAccountToken": False,
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "imagePullSecrets": [{"name": "regcred"}],
    "hostAliases": [{"ip": "10.0.0.5", "hostnames": ["db.local"]}],
    "hostname": "web-0",
    "subdomain": "web",
    "schedulerName": "default-scheduler",
    "priorityClassName": "high",
    "priority": 1000,
    "readinessGates": [{"conditionType": "example.com/ready"}],
    "runtimeClassName": "runc",
    "enableServiceLinks": False,
    "preemptionPolicy": "PreemptLowerPriority",
    "overhead": {"cpu": "250m"},
    "shareProcessNamespace": True,
    "setHostnameAsFQDN": False,
    "os": {"name": "linux"},
}

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web", "namespace": "default", "labels": _LABELS,
        "annotations": {"deployment.kubernetes.io/revision": "3"},
        "uid": "0b7e6d4c-6a1f-4c1e-9e5e-2f1b8c3d4e5f", "resourceVersion": "1234",
        "generation": 4, "creationTimestamp": _T0,
    },
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": _LABELS},
        "template": {"metadata": {"labels": _LABELS}, "spec": _POD_SPEC},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "minReadySeconds": 5,
        "revisionHistoryLimit": 10,
        "paused": False,
        "progressDeadlineSeconds": 600,
    },
    "status": {
        "observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
        "availableReplicas": 2, "unavailableReplicas": 1, "collisionCount": 0,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability.",
             "lastUpdateTime": _T1, "lastTransitionTime": _T1},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": 'ReplicaSet "web-5d4f" has successfully progressed.',
             "lastUpdateTime": _T1, "lastTransitionTime": _T0},
        ],
    },
}

SERVICE_LOAD_BALANCER: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "type": "LoadBalancer",
        "selector": _LABELS,
        "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080,
             "nodePort": 30080, "appProtocol": "http"},
            {"name": "metrics", "protocol": "TCP", "port": 9100, "targetPort": "metrics",
             "nodePort": 30091},
        ],
        "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
        "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        "externalIPs": ["192.0.2.10"], "loadBalancerIP": "192.0.2.20",
        "loadBalancerSourceRanges": ["192.0.2.0/24"],
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
        "healthCheckNodePort": 31999, "publishNotReadyAddresses": True,
        "allocateLoadBalancerNodePorts": True,
    },
    "status": {
        "loadBalancer": {"ingress": [{"ip": "192.0.2.20", "ipMode": "VIP",
                                      "ports": [{"port": 80, "protocol": "TCP"}]}]},
        "conditions": [{"type": "LoadBalancerReady", "status": "True", "reason": "Ready",
                        "message": "ready", "lastTransitionTime": _T0}],
    },
}

# What `kubectl expose deploy web --port=80 --target-port=8080` sends.
SERVICE_EXPOSE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"labels": _LABELS, "name": "web"},
    "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
             "selector": _LABELS},
    "status": {"loadBalancer": {}},
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-5d4f-abcde", "generateName": "web-5d4f-", "namespace": "default",
        "labels": {"app": "web", "pod-template-hash": "5d4f"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                             "uid": "6f2c", "controller": True, "blockOwnerDeletion": True}],
        "finalizers": ["example.com/cleanup"],
    },
    "spec": {
        "nodeName": "node-1",
        "hostNetwork": True, "hostPID": True, "hostIPC": True,
        "containers": [{"name": "web", "image": "nginx:1.25", "restartPolicy": "Always"}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": _T0},
            {"type": "Ready", "status": "False", "lastTransitionTime": _T1,
             "reason": "ContainersNotReady", "message": "containers with unready status: [db]"},
            {"type": "PodScheduled", "status": "True", "lastProbeTime": _T0,
             "lastTransitionTime": _T0},
        ],
        "hostIP": "10.0.0.11", "hostIPs": [{"ip": "10.0.0.11"}],
        "podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}],
        "startTime": _T0,
        "qosClass": "Burstable",
        "initContainerStatuses": [{
            "name": "migrate", "ready": False, "restartCount": 0, "started": False,
            "image": "busybox:1.36", "imageID": "docker-pullable://busybox@sha256:abc",
            "containerID": "docker://111",
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": _T0,
                                     "finishedAt": _T0, "containerID": "docker://111"}},
        }],
        "containerStatuses": [
            {"name": "web", "ready": True, "restartCount": 2, "started": True,
             "image": "nginx:1.25", "imageID": "docker-pullable://nginx@sha256:def",
             "containerID": "docker://222",
             "state": {"running": {"startedAt": _T1}},
             "lastState": {"terminated": {"exitCode": 137, "signal": 9, "reason": "OOMKilled",
                                          "message": "out of memory", "startedAt": _T0,
                                          "finishedAt": _T1}}},
            {"name": "db", "ready": False, "restartCount": 5, "started": False,
             "image": "postgres:16", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": "back-off 5m0s restarting failed container"}}},
        ],
    },
}

NODE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
    "spec": {
        "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
        "providerID": "flotilla://node-1", "unschedulable": True,
        "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                    "timeAdded": _T1},
                   {"key": "dedicated", "value": "web", "effect": "NoExecute"}],
    },
    "status": {
        "capacity": {"cpu": "4", "memory": "8029412Ki", "pods": "110",
                     "ephemeral-storage": "41152736Ki"},
        "allocatable": {"cpu": "3800m", "memory": "7927012Ki", "pods": "110"},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": _T1,
             "lastTransitionTime": _T0},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": _T1, "lastTransitionTime": _T0},
        ],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.11"},
                      {"type": "Hostname", "address": "node-1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": "m1", "systemUUID": "u1", "bootID": "b1",
            "kernelVersion": "6.1.0-18-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "docker://24.0.7", "kubeletVersion": "v1.32.0",
            "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": [{"names": ["nginx@sha256:def", "nginx:1.25"], "sizeBytes": 187000000}],
    },
}

JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "pi", "namespace": "default"},
    "spec": {
        "parallelism": 2, "completions": 4, "backoffLimit": 0, "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 100, "completionMode": "Indexed", "suspend": False,
        "manualSelector": True,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "c0ffee"}},
        "podFailurePolicy": {"rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "pi", "operator": "In",
                                                  "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                      "status": "True"}]},
        ]},
        "template": {
            "metadata": {"labels": {"batch.kubernetes.io/controller-uid": "c0ffee"}},
            "spec": {"restartPolicy": "Never", "containers": [
                {"name": "pi", "image": "perl:5.34",
                 "command": ["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"]}]},
        },
    },
    "status": {
        "startTime": _T0, "completionTime": _T1, "active": 1, "succeeded": 3, "failed": 1,
        "ready": 1, "terminating": 0, "completedIndexes": "0-2",
        "uncountedTerminatedPods": {"succeeded": ["uid-3"]},
        "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": _T1,
                        "lastTransitionTime": _T1, "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods"}],
    },
}

CRONJOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "hello", "namespace": "default"},
    "spec": {
        "schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "startingDeadlineSeconds": 200,
        "concurrencyPolicy": "Forbid", "suspend": False,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {"labels": {"cron": "hello"}},
            "spec": {"backoffLimit": 2, "template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "hello", "image": "busybox:1.36",
                                "command": ["date"]}]}}},
        },
    },
    "status": {
        "active": [{"kind": "Job", "namespace": "default", "name": "hello-28571234",
                    "uid": "j1", "apiVersion": "batch/v1", "resourceVersion": "77"}],
        "lastScheduleTime": _T1, "lastSuccessfulTime": _T0,
    },
}

CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "web-config", "namespace": "default"},
    "data": {"log-level": "info", "nginx.conf": "events {}\nhttp {}\n"},
    "binaryData": {"logo.png": base64.b64encode(b"\x89PNG\r\n\x1a\n\x00").decode()},
    "immutable": True,
}

SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "web-secret", "namespace": "default"},
    "type": "Opaque",
    "data": {"username": _b64("admin"), "password": _b64("s3cr3t!")},
    "immutable": False,
}

EVENT: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Event",
    "metadata": {"name": "web-5d4f-abcde.17c1", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-5d4f-abcde",
                       "uid": "p1", "apiVersion": "v1", "resourceVersion": "1240",
                       "fieldPath": "spec.containers{web}"},
    "reason": "Pulled",
    "message": 'Container image "nginx:1.25" already present on machine',
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": _T0, "lastTimestamp": _T1, "count": 2, "type": "Normal",
    # MicroTime: six fractional digits survive the protobuf printer as they are.
    "eventTime": "2024-05-01T10:00:00.123456Z",
    "series": {"count": 2, "lastObservedTime": "2024-05-01T10:05:00.654321Z"},
    "action": "Pulling",
    "related": {"kind": "Node", "name": "node-1", "apiVersion": "v1"},
    "reportingComponent": "kubelet",
    "reportingInstance": "node-1",
}

LEASE: dict[str, Any] = {
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
    "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
             "acquireTime": "2024-05-01T10:00:00.123456Z",
             "renewTime": "2024-05-01T10:05:00.654321Z", "leaseTransitions": 0},
}

STATEFULSET: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "metadata": {"name": "db", "namespace": "default"},
    "spec": {
        "replicas": 0, "serviceName": "db", "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}},
                     "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
        "updateStrategy": {"type": "RollingUpdate",
                           "rollingUpdate": {"partition": 0, "maxUnavailable": 1}},
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "volumeMode": "Filesystem",
                     "resources": {"requests": {"storage": "1Gi"}, "limits": {"storage": "2Gi"}},
                     "selector": {"matchLabels": {"tier": "db"}}},
            "status": {"phase": "Pending"},
        }],
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
        "ordinals": {"start": 1}, "minReadySeconds": 3, "revisionHistoryLimit": 5,
    },
    "status": {"replicas": 0, "observedGeneration": 2, "currentRevision": "db-1",
               "updateRevision": "db-2", "collisionCount": 0},
}

DAEMONSET: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "proxy", "namespace": "kube-system"},
    "spec": {
        "selector": {"matchLabels": {"app": "proxy"}},
        "template": {"metadata": {"labels": {"app": "proxy"}},
                     "spec": {"containers": [{"name": "proxy", "image": "proxy:1"}]}},
        "updateStrategy": {"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "revisionHistoryLimit": 10,
    },
    "status": {"currentNumberScheduled": 0, "numberMisscheduled": 0,
               "desiredNumberScheduled": 0, "numberReady": 0},
}

REPLICATION_CONTROLLER: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ReplicationController",
    "metadata": {"name": "old", "namespace": "default"},
    "spec": {"replicas": 2, "minReadySeconds": 1, "selector": {"app": "old"},
             "template": {"metadata": {"labels": {"app": "old"}},
                          "spec": {"containers": [{"name": "old", "image": "old:1"}]}}},
    "status": {"replicas": 0, "observedGeneration": 1, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "lastTransitionTime": _T0}]},
}

RESOURCE_QUOTA: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ResourceQuota",
    "metadata": {"name": "compute", "namespace": "default"},
    "spec": {"hard": {"requests.cpu": "4", "requests.memory": "8Gi", "pods": "20"},
             "scopes": ["NotTerminating"],
             "scopeSelector": {"matchExpressions": [
                 {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}},
    "status": {"hard": {"pods": "20"}, "used": {"pods": "3"}},
}

NAMESPACE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "team-a"},
    "spec": {"finalizers": ["kubernetes"]},
    "status": {"phase": "Terminating", "conditions": [
        {"type": "NamespaceDeletionContentFailure", "status": "False",
         "reason": "ContentDeleted", "message": "All content successfully deleted",
         "lastTransitionTime": _T1}]},
}

ENDPOINTS: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "web", "namespace": "default"},
    "subsets": [{
        "addresses": [{"ip": "10.244.1.7", "hostname": "web-0", "nodeName": "node-1",
                       "targetRef": {"kind": "Pod", "namespace": "default",
                                     "name": "web-5d4f-abcde", "uid": "p1"}}],
        "notReadyAddresses": [{"ip": "10.244.2.9", "nodeName": "node-2"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
    }],
}

BINDING: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Binding",
    "metadata": {"name": "web-5d4f-abcde", "namespace": "default"},
    "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
}

# (manifest, message, the Python client's model for it)
MANIFESTS: dict[str, tuple[dict[str, Any], type[Message], Any]] = {
    "deployment": (DEPLOYMENT, apps_pb2.Deployment, k8s_models.V1Deployment),
    "statefulset": (STATEFULSET, apps_pb2.StatefulSet, k8s_models.V1StatefulSet),
    "daemonset": (DAEMONSET, apps_pb2.DaemonSet, k8s_models.V1DaemonSet),
    "service-lb": (SERVICE_LOAD_BALANCER, core_pb2.Service, k8s_models.V1Service),
    "service-expose": (SERVICE_EXPOSE, core_pb2.Service, k8s_models.V1Service),
    "pod": (POD, core_pb2.Pod, k8s_models.V1Pod),
    "node": (NODE, core_pb2.Node, k8s_models.V1Node),
    "namespace": (NAMESPACE, core_pb2.Namespace, k8s_models.V1Namespace),
    "endpoints": (ENDPOINTS, core_pb2.Endpoints, k8s_models.V1Endpoints),
    "job": (JOB, batch_pb2.Job, k8s_models.V1Job),
    "cronjob": (CRONJOB, batch_pb2.CronJob, k8s_models.V1CronJob),
    "configmap": (CONFIGMAP, core_pb2.ConfigMap, k8s_models.V1ConfigMap),
    "secret": (SECRET, core_pb2.Secret, k8s_models.V1Secret),
    "event": (EVENT, core_pb2.Event, k8s_models.CoreV1Event),
    "lease": (LEASE, coordination_pb2.Lease, k8s_models.V1Lease),
    "replicationcontroller": (REPLICATION_CONTROLLER, core_pb2.ReplicationController,
                              k8s_models.V1ReplicationController),
    "resourcequota": (RESOURCE_QUOTA, core_pb2.ResourceQuota, k8s_models.V1ResourceQuota),
    "binding": (BINDING, core_pb2.Binding, k8s_models.V1Binding),
}


# ---------------------------------------------------------------------------
# Manifests: strict parse, identical print, accepted by the Python client


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_parses_strictly_and_prints_back_unchanged(name: str) -> None:
    manifest, cls, _ = MANIFESTS[name]
    assert _round_trip(cls, manifest) == manifest


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_printed_json_is_accepted_by_the_kubernetes_python_client(name: str) -> None:
    manifest, cls, model = MANIFESTS[name]
    # pydantic raises on a missing required field or a wrongly typed value.
    assert model.from_dict(_round_trip(cls, manifest)) is not None


def test_secret_data_is_base64_on_the_wire_and_bytes_inside() -> None:
    secret = json_format.ParseDict(SECRET, core_pb2.Secret())
    assert secret.data["password"] == b"s3cr3t!"
    printed = json_format.MessageToDict(secret)
    assert printed["data"]["password"] == _b64("s3cr3t!")


def test_an_unknown_field_is_rejected_by_a_strict_parse() -> None:
    manifest = copy.deepcopy(SERVICE_EXPOSE)
    manifest["spec"]["ports"][0]["targetPorts"] = 8080
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(manifest, core_pb2.Service())


# ---------------------------------------------------------------------------
# Zero values Kubernetes prints, and IntOrString


ZERO_VALUES: list[tuple[type[Message], dict[str, Any]]] = [
    (core_pb2.ContainerStatus,
     {"name": "a", "ready": False, "restartCount": 0, "image": "", "imageID": ""}),
    (core_pb2.ContainerStateTerminated, {"exitCode": 0}),
    (core_pb2.PodSpec, {"containers": [{"name": "a", "stdin": False, "tty": False}],
                        "terminationGracePeriodSeconds": 0, "activeDeadlineSeconds": 0,
                        "automountServiceAccountToken": False, "priority": 0,
                        "enableServiceLinks": False}),
    (core_pb2.SecurityContext, {"privileged": False, "runAsUser": 0, "runAsGroup": 0,
                                "runAsNonRoot": False, "readOnlyRootFilesystem": False,
                                "allowPrivilegeEscalation": False}),
    (core_pb2.PodSecurityContext, {"fsGroup": 0, "runAsUser": 0}),
    (core_pb2.Toleration, {"key": "k", "operator": "Exists", "tolerationSeconds": 0}),
    (core_pb2.ServicePort, {"port": 80, "nodePort": 0}),
    (core_pb2.NodeSpec, {"unschedulable": False}),
    (core_pb2.ConfigMap, {"immutable": False}),
    (core_pb2.Event, {"count": 0}),
    (core_pb2.ReplicationControllerSpec, {"replicas": 0}),
    (core_pb2.ReplicationControllerStatus, {"replicas": 0}),
    (apps_pb2.DeploymentSpec, {"replicas": 0, "paused": False, "revisionHistoryLimit": 0,
                               "progressDeadlineSeconds": 0}),
    (apps_pb2.ReplicaSetSpec, {"replicas": 0}),
    (apps_pb2.ReplicaSetStatus, {"replicas": 0}),
    (apps_pb2.RollingUpdateStatefulSetStrategy, {"partition": 0}),
    (batch_pb2.JobSpec, {"parallelism": 0, "completions": 0, "backoffLimit": 0,
                         "suspend": False}),
    (batch_pb2.JobStatus, {"ready": 0}),
    (coordination_pb2.LeaseSpec, {"holderIdentity": "", "leaseDurationSeconds": 0,
                                  "leaseTransitions": 0}),
]


@pytest.mark.parametrize(("cls", "value"), ZERO_VALUES,
                         ids=[c.DESCRIPTOR.name for c, _ in ZERO_VALUES])
def test_set_zero_values_are_printed(cls: type[Message], value: dict[str, Any]) -> None:
    assert _round_trip(cls, value) == value


INT_OR_STRING: list[tuple[type[Message], str, Any]] = [
    (core_pb2.ServicePort, "targetPort", 8080),
    (core_pb2.ServicePort, "targetPort", "http"),
    (core_pb2.HTTPGetAction, "port", 8080),
    (core_pb2.HTTPGetAction, "port", "http"),
    (core_pb2.TCPSocketAction, "port", "metrics"),
    (apps_pb2.RollingUpdateDeployment, "maxSurge", "25%"),
    (apps_pb2.RollingUpdateDeployment, "maxUnavailable", 0),
    (apps_pb2.RollingUpdateDaemonSet, "maxUnavailable", "10%"),
    (apps_pb2.RollingUpdateStatefulSetStrategy, "maxUnavailable", 2),
]


@pytest.mark.parametrize(("cls", "field", "value"), INT_OR_STRING)
def test_int_or_string_keeps_its_kind(cls: type[Message], field: str, value: Any) -> None:
    msg = json_format.ParseDict({field: value}, cls())
    printed = json_format.MessageToDict(msg)[field]
    # Numbers come back as floats from google.protobuf.Value; the codec fixes that.
    assert type(printed) is (str if isinstance(value, str) else float)
    assert printed == value


@given(st.one_of(st.integers(min_value=1, max_value=65535),
                 st.from_regex(r"[a-z]([a-z0-9-]{0,13}[a-z0-9])?", fullmatch=True)))
def test_any_target_port_round_trips(port: int | str) -> None:
    printed = _round_trip(core_pb2.ServicePort, {"port": 80, "targetPort": port})
    assert printed["targetPort"] == port
    assert isinstance(printed["targetPort"], type(port))


# ---------------------------------------------------------------------------
# The schema itself


_SIXTY_FOUR_BIT = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}


def test_no_field_is_a_64_bit_integer() -> None:
    # protobuf's JSON prints 64-bit integers as strings; Kubernetes prints numbers.
    bad = [f.full_name for d in _messages() for f in d.fields if f.type in _SIXTY_FOUR_BIT]
    assert bad == []


def test_every_json_name_is_lower_camel_without_underscores() -> None:
    bad = [f.full_name for d in _messages() for f in d.fields if "_" in f.json_name]
    assert bad == []


@pytest.mark.parametrize("resource", RESOURCES, ids=[r.resource for r in RESOURCES])
def test_every_served_resource_opens_with_type_and_object_meta(resource: Any) -> None:
    fields = resource.message_class().DESCRIPTOR.fields_by_number
    assert (fields[1].name, fields[1].json_name) == ("api_version", "apiVersion")
    assert fields[2].name == "kind"
    assert (fields[3].name, fields[3].message_type.full_name) == (
        "metadata", "flotilla.meta.v1.ObjectMeta")


# The Python client names a few core/v1 types with a CoreV1 prefix because
# another group has a type of the same name.
_CLIENT_PREFIX = {"Event": "CoreV1", "EventSeries": "CoreV1", "EndpointPort": "CoreV1",
                  "ResourceClaim": "CoreV1"}

# Required int fields that validation never lets be 0, so omitting a zero
# cannot drop a valid value; everything else required must have presence.
_NEVER_ZERO = {
    "ContainerPort.containerPort", "ServicePort.port", "EndpointPort.port", "PortStatus.port",
    "GRPCAction.port", "DaemonEndpoint.Port", "PreferredSchedulingTerm.weight",
    "WeightedPodAffinityTerm.weight", "TopologySpreadConstraint.maxSkew",
}


def _client_model(desc: Descriptor) -> Any:
    name = f"{_CLIENT_PREFIX.get(desc.name, 'V1')}{desc.name}"
    return getattr(k8s_models, name)


def _client_type(field: FieldDescriptor) -> str:
    """The field's type spelled as the Python client's openapi_types spell it."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return f"Dict[str, {_scalar_name(value)}]"
    if field.is_repeated:
        return f"List[{_scalar_name(field)}]"
    return _scalar_name(field)


def _scalar_name(field: FieldDescriptor) -> str:
    if field.message_type is None:
        return {FieldDescriptor.TYPE_INT32: "int", FieldDescriptor.TYPE_BOOL: "bool",
                FieldDescriptor.TYPE_STRING: "str", FieldDescriptor.TYPE_BYTES: "bytes",
                FieldDescriptor.TYPE_DOUBLE: "float"}.get(field.type, f"proto type {field.type}")
    full = field.message_type.full_name
    if full == "google.protobuf.Timestamp":
        return "datetime"
    if full in ("google.protobuf.Value", "google.protobuf.Struct"):
        return "object"
    return _client_model(field.message_type).__name__  # type: ignore[no-any-return]


def _required(model: Any) -> set[str]:
    """JSON names of the fields the client's pydantic model insists on."""
    return {
        f.serialization_alias or f.alias or attr
        for attr, f in model.model_fields.items()
        if f.is_required()
    }


def _schema_mismatches(desc: Descriptor) -> Iterator[str]:
    model = _client_model(desc)
    by_json = {json: attr for attr, json in model.attribute_map.items()}
    for field in desc.fields:
        attr = by_json.get(field.json_name)
        if attr is None:
            yield f"{desc.name}.{field.json_name}: not a Kubernetes field"
            continue
        expected = re.sub(r"Optional\[(.*)\]", r"\1", model.openapi_types[attr])
        if _client_type(field) != expected:
            yield f"{desc.name}.{field.json_name}: {_client_type(field)} != {expected}"
        key = f"{desc.name}.{field.json_name}"
        if field.json_name in _required(model) and expected in ("int", "bool") and not field.has_presence \
                and key not in _NEVER_ZERO:
            yield f"{key}: required by Kubernetes but 0/false would not be printed"


@pytest.mark.parametrize(
    "desc",
    [d for d in _messages() if not d.GetOptions().map_entry],
    ids=lambda d: d.full_name,
)
def test_fields_match_the_kubernetes_schema(desc: Descriptor) -> None:
    assert list(_schema_mismatches(desc)) == []


_PATCH_TAGS: list[tuple[type[Message], str, str, str]] = [
    (core_pb2.PodSpec, "containers", "name", "merge"),
    (core_pb2.PodSpec, "init_containers", "name", "merge"),
    (core_pb2.PodSpec, "volumes", "name", "merge,retainKeys"),
    (core_pb2.PodSpec, "image_pull_secrets", "name", "merge"),
    (core_pb2.PodSpec, "host_aliases", "ip", "merge"),
    (core_pb2.PodSpec, "topology_spread_constraints", "topologyKey", "merge"),
    (core_pb2.PodSpec, "tolerations", "", ""),
    (core_pb2.Container, "ports", "containerPort", "merge"),
    (core_pb2.Container, "env", "name", "merge"),
    (core_pb2.Container, "volume_mounts", "mountPath", "merge"),
    (core_pb2.Container, "env_from", "", ""),
    (core_pb2.PodStatus, "conditions", "type", "merge"),
    (core_pb2.PodStatus, "pod_ips", "ip", "merge"),
    (core_pb2.NodeSpec, "taints", "", ""),
    (core_pb2.NodeSpec, "pod_cidrs", "", "merge"),
    (core_pb2.NodeStatus, "conditions", "type", "merge"),
    (core_pb2.NodeStatus, "addresses", "type", "merge"),
    (core_pb2.ServiceSpec, "ports", "port", "merge"),
    (apps_pb2.DeploymentSpec, "strategy", "", "retainKeys"),
    (apps_pb2.DeploymentStatus, "conditions", "type", "merge"),
    (batch_pb2.JobStatus, "conditions", "type", "merge"),
]


@pytest.mark.parametrize(("cls", "field", "key", "strategy"), _PATCH_TAGS)
def test_strategic_merge_tags_are_kubernetes_own(
    cls: type[Message], field: str, key: str, strategy: str
) -> None:
    options = cls.DESCRIPTOR.fields_by_name[field].GetOptions()
    assert options.Extensions[options_pb2.patch_merge_key] == key
    assert options.Extensions[options_pb2.patch_strategy] == strategy


_QUANTITIES: list[tuple[type[Message], str]] = [
    (core_pb2.ResourceRequirements, "limits"), (core_pb2.ResourceRequirements, "requests"),
    (core_pb2.NodeStatus, "capacity"), (core_pb2.NodeStatus, "allocatable"),
    (core_pb2.ResourceQuotaSpec, "hard"), (core_pb2.ResourceQuotaStatus, "used"),
    (core_pb2.PodSpec, "overhead"), (core_pb2.EmptyDirVolumeSource, "size_limit"),
    (core_pb2.ResourceFieldSelector, "divisor"),
    (core_pb2.VolumeResourceRequirements, "requests"),
]


@pytest.mark.parametrize(("cls", "field"), _QUANTITIES)
def test_quantities_are_marked(cls: type[Message], field: str) -> None:
    options = cls.DESCRIPTOR.fields_by_name[field].GetOptions()
    assert options.Extensions[options_pb2.quantity] is True
