"""Admission for workloads: Deployment, ReplicaSet, ReplicationController, DaemonSet,
StatefulSet, Job, CronJob — defaults, validation causes and immutable fields."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.admission_cases import (
    DELETE,
    assert_cause,
    create,
    create_error,
    edit,
    meta,
    template,
    update,
    update_error,
)

SELECTOR = {"matchLabels": {"app": "web"}}
TEMPLATE_DEFAULTS = {
    "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
    "securityContext": {}, "schedulerName": "default-scheduler",
}


def deployment(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("web"), "spec": {"selector": SELECTOR, "template": template(), **spec}}


def daemonset(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("agent"), "spec": {"selector": SELECTOR, "template": template(), **spec}}


def statefulset(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("db"), "spec": {"selector": SELECTOR, "template": template(),
                                             "serviceName": "db", **spec}}


def rc(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("old"), "spec": {"template": template(), **spec}}


def job(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("pi"), "spec": {"template": template(restartPolicy="Never"), **spec}}


def cronjob(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("nightly"), "spec": {
        "schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template(restartPolicy="OnFailure")}},
        **spec}}


# --- defaults ----------------------------------------------------------------------------------

def test_deployment_defaults() -> None:
    out = create("Deployment", deployment())
    spec = out["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    tspec = spec["template"]["spec"]
    assert {k: tspec[k] for k in TEMPLATE_DEFAULTS} == TEMPLATE_DEFAULTS
    assert "enableServiceLinks" not in tspec and "serviceAccountName" not in tspec  # Pod-only defaults
    assert tspec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert out["apiVersion"] == "apps/v1" and out["kind"] == "Deployment"
    assert "status" not in out


def test_deployment_keeps_what_the_client_set() -> None:
    out = create("Deployment", deployment(replicas=0, strategy={"rollingUpdate": {"maxSurge": 2}}))
    assert out["spec"]["replicas"] == 0
    assert out["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": "25%"}
    out = create("Deployment", deployment(strategy={"type": "Recreate"}))
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_and_rc_defaults() -> None:
    rs = create("ReplicaSet", {"metadata": meta("web-1"), "spec": {"selector": SELECTOR, "template": template()}})
    assert rs["spec"]["replicas"] == 1 and rs["status"] == {"replicas": 0}
    out = create("ReplicationController", rc())
    assert out["spec"]["selector"] == {"app": "web"} and out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["replicas"] == 1


def test_daemonset_defaults() -> None:
    out = create("DaemonSet", daemonset())
    assert out["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert out["spec"]["revisionHistoryLimit"] == 10
    assert out["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                             "desiredNumberScheduled": 0, "numberReady": 0}


def test_statefulset_defaults() -> None:
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "1Gi"}}}}
    out = create("StatefulSet", statefulset(volumeClaimTemplates=[claim]))
    spec = out["spec"]
    assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert out["status"] == {"replicas": 0}


def test_job_defaults_and_generated_selector() -> None:
    out = create("Job", job())
    uid = out["metadata"]["uid"]
    spec = out["spec"]
    assert spec["completions"] == 1 and spec["parallelism"] == 1 and spec["backoffLimit"] == 6
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert "manualSelector" not in spec
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {"app": "web", "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
              "job-name": "pi", "batch.kubernetes.io/job-name": "pi"}
    assert spec["template"]["metadata"]["labels"] == labels
    assert out["metadata"]["labels"] == labels


def test_job_parallelism_alone() -> None:
    spec = create("Job", job(parallelism=3))["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec


def test_job_manual_selector() -> None:
    body = job(manualSelector=True, selector=SELECTOR)
    spec = create("Job", body)["spec"]
    assert spec["selector"] == SELECTOR and spec["template"]["metadata"]["labels"] == {"app": "web"}


def test_cronjob_defaults() -> None:
    out = create("CronJob", cronjob())
    spec = out["spec"]
    assert spec["concurrencyPolicy"] == "Allow" and spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 1
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


# --- validation --------------------------------------------------------------------------------

INVALID: list[tuple[str, str, dict[str, Any], str, Any, str, str]] = [
    # (id, kind, valid body, path to edit, value, cause field, text)
    ("deploy no selector", "Deployment", deployment(), "spec.selector", DELETE, "spec.selector", "Required value"),
    ("deploy empty selector", "Deployment", deployment(), "spec.selector", {}, "spec.selector",
     "empty selector is invalid for deployment"),
    ("deploy mismatch", "Deployment", deployment(), "spec.template.metadata.labels", {"app": "api"},
     "spec.template.metadata.labels",
     'Invalid value: map[string]string{"app":"api"}: `selector` does not match template `labels`'),
    ("deploy bad selector op", "Deployment", deployment(), "spec.selector",
     {"matchExpressions": [{"key": "app", "operator": "Is"}]}, "spec.selector.matchExpressions[0].operator",
     "not a valid selector operator"),
    ("deploy negative replicas", "Deployment", deployment(), "spec.replicas", -1, "spec.replicas",
     "must be greater than or equal to 0"),
    ("deploy restart policy", "Deployment", deployment(), "spec.template.spec.restartPolicy", "Never",
     "spec.template.spec.restartPolicy", 'Unsupported value: "Never": supported values: "Always"'),
    ("deploy both zero", "Deployment", deployment(), "spec.strategy",
     {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ("deploy bad percent", "Deployment", deployment(), "spec.strategy",
     {"rollingUpdate": {"maxSurge": "many"}}, "spec.strategy.rollingUpdate.maxSurge", "a valid percent string"),
    ("deploy negative surge", "Deployment", deployment(), "spec.strategy",
     {"rollingUpdate": {"maxSurge": -1}}, "spec.strategy.rollingUpdate.maxSurge",
     "must be greater than or equal to 0"),
    ("deploy surge not int", "Deployment", deployment(), "spec.strategy",
     {"rollingUpdate": {"maxSurge": 1.5}}, "spec.strategy.rollingUpdate.maxSurge", "must be an integer or percentage"),
    ("deploy over 100%", "Deployment", deployment(), "spec.strategy",
     {"rollingUpdate": {"maxUnavailable": "150%"}}, "spec.strategy.rollingUpdate.maxUnavailable",
     "must not be greater than 100%"),
    ("deploy recreate with rolling", "Deployment", deployment(), "spec.strategy",
     {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}, "spec.strategy.rollingUpdate",
     "may not be specified when strategy `type` is 'Recreate'"),
    ("deploy strategy type", "Deployment", deployment(), "spec.strategy", {"type": "BlueGreen"},
     "spec.strategy.type", "Unsupported value"),
    ("deploy min ready", "Deployment", deployment(), "spec.minReadySeconds", -3, "spec.minReadySeconds",
     "must be greater than or equal to 0"),
    ("deploy deadline", "Deployment", deployment(), "spec.progressDeadlineSeconds", 0,
     "spec.progressDeadlineSeconds", "must be greater than minReadySeconds"),
    ("deploy template container", "Deployment", deployment(), "spec.template.spec.containers.0.image", "",
     "spec.template.spec.containers[0].image", "Required value"),
    ("deploy template label", "Deployment", deployment(), "spec.template.metadata.labels",
     {"app": "web", "bad key!": "x"}, "spec.template.metadata.labels", "name part must consist"),
    ("deploy template deadline", "Deployment", deployment(), "spec.template.spec.activeDeadlineSeconds", 5,
     "spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in Deployment is not Supported"),
    ("rs mismatch", "ReplicaSet", {"metadata": meta("r"), "spec": {"selector": SELECTOR, "template": template()}},
     "spec.selector", {"matchExpressions": [{"key": "tier", "operator": "Exists"}]},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("rc no template", "ReplicationController", rc(selector={"app": "web"}), "spec.template", DELETE,
     "spec.template", "Required value"),
    ("rc mismatch", "ReplicationController", rc(), "spec.selector", {"app": "api"},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("rc no selector", "ReplicationController", rc(), "spec.template.metadata.labels", {},
     "spec.selector", "Required value"),
    ("ds both zero", "DaemonSet", daemonset(), "spec.updateStrategy",
     {"rollingUpdate": {"maxUnavailable": 0}}, "spec.updateStrategy.rollingUpdate.maxUnavailable",
     "cannot be 0 when maxSurge is 0"),
    ("ds both set", "DaemonSet", daemonset(), "spec.updateStrategy",
     {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}}, "spec.updateStrategy.rollingUpdate.maxSurge",
     "may not be set when maxUnavailable is non-zero"),
    ("ds type", "DaemonSet", daemonset(), "spec.updateStrategy", {"type": "Always"},
     "spec.updateStrategy.type", 'supported values: "OnDelete", "RollingUpdate"'),
    ("ds empty selector", "DaemonSet", daemonset(), "spec.selector", {}, "spec.selector",
     "empty selector is invalid for daemonset"),
    ("sts policy", "StatefulSet", statefulset(), "spec.podManagementPolicy", "Random",
     "spec.podManagementPolicy", "Unsupported value"),
    ("sts ondelete rolling", "StatefulSet", statefulset(), "spec.updateStrategy",
     {"type": "OnDelete", "rollingUpdate": {"partition": 1}}, "spec.updateStrategy.rollingUpdate",
     "only allowed for updateStrategy 'RollingUpdate'"),
    ("sts partition", "StatefulSet", statefulset(), "spec.updateStrategy", {"rollingUpdate": {"partition": -1}},
     "spec.updateStrategy.rollingUpdate.partition", "must be greater than or equal to 0"),
    ("sts max unavailable", "StatefulSet", statefulset(), "spec.updateStrategy",
     {"rollingUpdate": {"maxUnavailable": 0}}, "spec.updateStrategy.rollingUpdate.maxUnavailable", "cannot be 0"),
    ("sts retention", "StatefulSet", statefulset(), "spec.persistentVolumeClaimRetentionPolicy",
     {"whenDeleted": "Keep"}, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Unsupported value"),
    ("sts restart policy", "StatefulSet", statefulset(), "spec.template.spec.restartPolicy", "OnFailure",
     "spec.template.spec.restartPolicy", "Unsupported value"),
    ("sts claim name", "StatefulSet", statefulset(), "spec.volumeClaimTemplates", [{"spec": {}}],
     "spec.volumeClaimTemplates[0].metadata.name", "Required value"),
    ("job restart Always", "Job", job(), "spec.template.spec.restartPolicy", DELETE,
     "spec.template.spec.restartPolicy", 'Unsupported value: "Always": supported values: "OnFailure", "Never"'),
    ("job negative backoff", "Job", job(), "spec.backoffLimit", -1, "spec.backoffLimit",
     "must be greater than or equal to 0"),
    ("job negative parallelism", "Job", job(), "spec.parallelism", -2, "spec.parallelism",
     "must be greater than or equal to 0"),
    ("job completion mode", "Job", job(), "spec.completionMode", "Sometimes", "spec.completionMode",
     "Unsupported value"),
    ("job indexed needs completions", "Job", job(parallelism=2), "spec.completionMode", "Indexed",
     "spec.completions", "when completion mode is Indexed"),
    ("job foreign selector", "Job", job(), "spec.selector", {"matchLabels": {"app": "web"}},
     "spec.selector", "`selector` not auto-generated"),
    ("job wrong uid label", "Job", job(), "spec.template.metadata.labels",
     {"batch.kubernetes.io/controller-uid": "nope"},
     "spec.template.metadata.labels[batch.kubernetes.io/controller-uid]", "must be '"),
    ("job manual mismatch", "Job", job(manualSelector=True, selector=SELECTOR), "spec.selector", {"matchLabels": {"app": "x"}},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("job manual no selector", "Job", job(), "spec.manualSelector", True, "spec.selector", "Required value"),
    ("cron no schedule", "CronJob", cronjob(), "spec.schedule", "", "spec.schedule", "Required value"),
    ("cron bad schedule", "CronJob", cronjob(), "spec.schedule", "61 * * * *", "spec.schedule",
     'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61'),
    ("cron @every", "CronJob", cronjob(), "spec.schedule", "@every 1h", "spec.schedule",
     "unrecognized descriptor"),
    ("cron time zone", "CronJob", cronjob(), "spec.timeZone", "Mars/Olympus", "spec.timeZone",
     "unknown time zone Mars/Olympus"),
    ("cron concurrency", "CronJob", cronjob(), "spec.concurrencyPolicy", "Sometimes", "spec.concurrencyPolicy",
     'supported values: "Allow", "Forbid", "Replace"'),
    ("cron history", "CronJob", cronjob(), "spec.failedJobsHistoryLimit", -1, "spec.failedJobsHistoryLimit",
     "must be greater than or equal to 0"),
    ("cron job restart", "CronJob", cronjob(), "spec.jobTemplate.spec.template.spec.restartPolicy", "Always",
     "spec.jobTemplate.spec.template.spec.restartPolicy", 'Unsupported value: "Always"'),
    ("cron manual selector", "CronJob", cronjob(), "spec.jobTemplate.spec.manualSelector", True,
     "spec.jobTemplate.spec.manualSelector", "Unsupported value"),
    ("cron name length", "CronJob", cronjob(), "metadata.name", "n" * 53, "metadata.name",
     "must be no more than 52 characters"),
]


@pytest.mark.parametrize(("kind", "body", "path", "value", "field", "text"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_workload(kind: str, body: dict[str, Any], path: str, value: Any, field: str, text: str) -> None:
    assert create(kind, body)  # the base manifest is valid
    err = create_error(kind, edit(body, path, value))
    assert_cause(err, field, text)


@pytest.mark.parametrize(("kind", "body"), [
    ("Deployment", deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})),
    ("Deployment", deployment(selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]})),
    ("DaemonSet", daemonset(updateStrategy={"type": "OnDelete"})),
    ("DaemonSet", daemonset(updateStrategy={"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})),
    ("StatefulSet", statefulset(serviceName="", podManagementPolicy="Parallel",
                                updateStrategy={"rollingUpdate": {"partition": 2, "maxUnavailable": "50%"}})),
    ("Job", job(completionMode="Indexed", completions=5, parallelism=2, ttlSecondsAfterFinished=60)),
    ("CronJob", cronjob(schedule="@hourly", timeZone="Europe/Paris", concurrencyPolicy="Forbid")),
])
def test_valid_variants(kind: str, body: dict[str, Any]) -> None:
    assert create(kind, body)["kind"] == kind


# --- updates -------------------------------------------------------------------------------------

def test_selector_is_immutable_for_apps_kinds() -> None:
    new_selector = {"matchLabels": {"app": "web", "tier": "front"}}
    new_labels = {"app": "web", "tier": "front"}
    for kind, body in (("Deployment", deployment()), ("DaemonSet", daemonset()), ("StatefulSet", statefulset()),
                       ("ReplicaSet", {"metadata": meta("r"), "spec": {"selector": SELECTOR, "template": template()}})):
        changed = edit(edit(body, "spec.selector", new_selector), "spec.template.metadata.labels", new_labels)
        err = update_error(kind, body, changed)
        assert_cause(err, "spec.selector", "field is immutable")


def test_deployment_update_may_change_the_template_and_bumps_generation() -> None:
    changed = edit(deployment(), "spec.template.spec.containers.0.image", "nginx:2")
    out = update("Deployment", deployment(), changed)
    assert out["metadata"]["generation"] == 2


def test_rc_selector_may_change() -> None:
    body = rc(selector={"app": "web"})
    changed = edit(edit(body, "spec.selector", {"app": "api"}), "spec.template.metadata.labels", {"app": "api"})
    assert update("ReplicationController", body, changed)["spec"]["selector"] == {"app": "api"}


def test_statefulset_update_rules() -> None:
    allowed = edit(statefulset(), "spec.replicas", 5)
    allowed = edit(allowed, "spec.template.spec.containers.0.image", "postgres:17")
    allowed = edit(allowed, "spec.updateStrategy", {"type": "OnDelete"})
    allowed = edit(allowed, "spec.minReadySeconds", 10)
    assert update("StatefulSet", statefulset(), allowed)["spec"]["replicas"] == 5
    err = update_error("StatefulSet", statefulset(), edit(statefulset(), "spec.serviceName", "other"))
    assert_cause(err, "spec", "updates to statefulset spec for fields other than 'replicas'")


def test_job_update_keeps_selector_and_template() -> None:
    old = job()
    assert update("Job", old, edit(old, "spec.parallelism", 1))["spec"]["parallelism"] == 1
    err = update_error("Job", old, edit(old, "spec.template.spec.containers.0.image", "perl:2"))
    assert_cause(err, "spec.template", "field is immutable")
