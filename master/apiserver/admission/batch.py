"""batch/v1: Job and CronJob.

A Job's selector and its pods' identifying labels are generated, as the
Job registry does: the template gets controller-uid,
batch.kubernetes.io/controller-uid (the Job's uid, assigned by
`admit_create` before `default` runs), job-name and
batch.kubernetes.io/job-name, and the selector matches
batch.kubernetes.io/controller-uid, unless spec.manualSelector is true.
Defaults and validation follow Kubernetes' batch/v1 SetDefaults_Job /
ValidateJob; a CronJob's schedule and time zone are checked in `cron.py`.

Pure: no I/O (time zones are read from the system's zoneinfo).
"""

from __future__ import annotations

from typing import Any

from master.apiserver.admission import common as c
from master.apiserver.admission.base import Strategy
from master.apiserver.admission.cron import schedule_errors, time_zone_errors
from master.apiserver.admission.pod import default_template, template_matches, validate_template
from master.apiserver.admission.workloads import set_default
from master.apiserver.errors import Cause, forbidden, immutable, invalid, not_supported, required

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
_JOB_RESTART = ["OnFailure", "Never"]
_COMPLETION_MODES = ["Indexed", "NonIndexed"]
_REPLACEMENT = ["Failed", "TerminatingOrFailed"]
_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
_CONCURRENCY = ["Allow", "Forbid", "Replace"]
_MAX_INDEXED = 100000
_MAX_INT32 = 2**31 - 1
CRONJOB_NAME_MAX = 52  # Job names get an 11-character suffix; the result must stay a label


# --- Job ------------------------------------------------------------------------------------

class JobStrategy(Strategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec
        if not (spec.HasField("manual_selector") and spec.manual_selector):
            generate_selector(msg)
        default_job_spec(spec)
        labels = spec.template.metadata.labels
        if not msg.metadata.labels and labels:
            msg.metadata.labels.update(labels)
        default_template(spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes = validate_job_spec(spec, "spec")
        if not spec.HasField("selector"):
            causes.append(required("spec.selector"))
        elif not (sel_causes := c.label_selector("spec.selector", spec.selector)):
            labels = spec.template.metadata.labels
            causes += template_matches("spec.template", labels, c.selector_matches(spec.selector, labels))
        else:
            causes += sel_causes
        if not (spec.HasField("manual_selector") and spec.manual_selector):
            causes += _generated_selector(msg)
        return causes

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        causes = [] if c.same(new.spec.selector, old.spec.selector) else [immutable("spec.selector")]
        if not c.same(new.spec.template, old.spec.template):
            causes.append(immutable("spec.template"))
        return causes


def generate_selector(job: Any) -> None:
    """Label the template with the job's identity and select on its uid."""
    labels = job.spec.template.metadata.labels
    for key, value in ((LEGACY_JOB_NAME, job.metadata.name), (JOB_NAME, job.metadata.name),
                       (LEGACY_CONTROLLER_UID, job.metadata.uid), (CONTROLLER_UID, job.metadata.uid)):
        if key not in labels:  # a conflicting value is rejected by validation
            labels[key] = value
    if CONTROLLER_UID not in job.spec.selector.match_labels:
        job.spec.selector.match_labels[CONTROLLER_UID] = job.metadata.uid


def _generated_selector(job: Any) -> list[Cause]:
    causes: list[Cause] = []
    if not job.metadata.uid:
        causes.append(required("metadata.uid"))
    labels = job.spec.template.metadata.labels
    for key, want in ((CONTROLLER_UID, job.metadata.uid), (JOB_NAME, job.metadata.name)):
        path = f"spec.template.metadata.labels[{key}]"
        if key not in labels:
            causes.append(c.required_because(path, f"must be '{want}'"))
        elif labels[key] != want:
            causes.append(invalid(path, labels[key], f"must be '{want}'"))
    sel = job.spec.selector
    if dict(sel.match_labels) != {CONTROLLER_UID: job.metadata.uid} or sel.match_expressions:
        causes.append(c.invalid_shown("spec.selector", c.go_map(sel.match_labels),
                                      "`selector` not auto-generated"))
    return causes


def default_job_spec(spec: Any) -> None:
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
        spec.parallelism = 1
    set_default(spec, "parallelism", 1)
    set_default(spec, "backoff_limit", _MAX_INT32 if spec.HasField("backoff_limit_per_index") else 6)
    spec.completion_mode = spec.completion_mode or "NonIndexed"
    set_default(spec, "suspend", False)
    if not spec.pod_replacement_policy:
        failed = spec.HasField("pod_failure_policy")
        spec.pod_replacement_policy = "Failed" if failed else "TerminatingOrFailed"
    for rule in spec.pod_failure_policy.rules if spec.HasField("pod_failure_policy") else ():
        for pattern in rule.on_pod_conditions:
            pattern.status = pattern.status or "True"


def validate_job_spec(spec: Any, path: str) -> list[Cause]:
    """ValidateJobSpec without the selector rules (a CronJob's job template has none)."""
    causes: list[Cause] = []
    for name, json_name in (("parallelism", "parallelism"), ("completions", "completions"),
                            ("active_deadline_seconds", "activeDeadlineSeconds"),
                            ("backoff_limit", "backoffLimit"),
                            ("ttl_seconds_after_finished", "ttlSecondsAfterFinished"),
                            ("backoff_limit_per_index", "backoffLimitPerIndex"),
                            ("max_failed_indexes", "maxFailedIndexes")):
        causes += c.optional_non_negative(spec, name, f"{path}.{json_name}")
    causes += _completion_mode(spec, path)
    if spec.pod_replacement_policy and spec.pod_replacement_policy not in _REPLACEMENT:
        causes.append(not_supported(f"{path}.podReplacementPolicy", spec.pod_replacement_policy, _REPLACEMENT))
    for i, rule in enumerate(spec.pod_failure_policy.rules):
        if rule.action not in _ACTIONS:
            causes.append(not_supported(f"{path}.podFailurePolicy.rules[{i}].action", rule.action, _ACTIONS))
    causes += validate_template(spec.template, f"{path}.template", restart_policies=_JOB_RESTART)
    return causes


def _completion_mode(spec: Any, path: str) -> list[Cause]:
    mode = spec.completion_mode
    if mode and mode not in _COMPLETION_MODES:
        return [not_supported(f"{path}.completionMode", mode, _COMPLETION_MODES)]
    causes: list[Cause] = []
    if mode == "Indexed":
        if not spec.HasField("completions"):
            causes.append(c.required_because(f"{path}.completions", "when completion mode is Indexed"))
        elif spec.completions > _MAX_INDEXED:
            causes.append(invalid(f"{path}.completions", spec.completions,
                                  f"must be less than or equal to {_MAX_INDEXED} when completion mode is Indexed"))
    elif spec.HasField("backoff_limit_per_index"):
        causes.append(forbidden(f"{path}.backoffLimitPerIndex", "requires indexed completion mode"))
    if spec.HasField("max_failed_indexes") and not spec.HasField("backoff_limit_per_index"):
        causes.append(c.required_because(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    return causes


# --- CronJob -----------------------------------------------------------------------------------

class CronJobStrategy(Strategy):
    def default(self, msg: Any) -> None:
        spec = msg.spec
        spec.concurrency_policy = spec.concurrency_policy or "Allow"
        set_default(spec, "suspend", False)
        set_default(spec, "successful_jobs_history_limit", 3)
        set_default(spec, "failed_jobs_history_limit", 1)
        default_template(spec.job_template.spec.template)

    def validate(self, msg: Any) -> list[Cause]:
        spec = msg.spec
        causes: list[Cause] = []
        if len(msg.metadata.name) > CRONJOB_NAME_MAX:
            causes.append(invalid("metadata.name", msg.metadata.name,
                                  f"must be no more than {CRONJOB_NAME_MAX} characters"))
        if not spec.schedule:
            causes.append(required("spec.schedule"))
        causes += [invalid("spec.schedule", spec.schedule, e) for e in schedule_errors(spec.schedule)
                   if spec.schedule]
        if spec.HasField("time_zone"):
            causes += [invalid("spec.timeZone", spec.time_zone, e) for e in time_zone_errors(spec.time_zone)]
        if spec.concurrency_policy not in _CONCURRENCY:
            causes.append(not_supported("spec.concurrencyPolicy", spec.concurrency_policy, _CONCURRENCY))
        for name, json_name in (("starting_deadline_seconds", "startingDeadlineSeconds"),
                                ("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
                                ("failed_jobs_history_limit", "failedJobsHistoryLimit")):
            causes += c.optional_non_negative(spec, name, f"spec.{json_name}")
        return causes + _job_template(spec.job_template, "spec.jobTemplate")


def _job_template(template: Any, path: str) -> list[Cause]:
    spec = template.spec
    causes = c.label_map(f"{path}.metadata.labels", template.metadata.labels)
    causes += validate_job_spec(spec, f"{path}.spec")
    if spec.HasField("manual_selector") and spec.manual_selector:
        causes.append(not_supported(f"{path}.spec.manualSelector", True, ["nil", "false"]))
    if spec.HasField("selector"):
        sel_causes = c.label_selector(f"{path}.spec.selector", spec.selector)
        labels = spec.template.metadata.labels
        causes += sel_causes or template_matches(f"{path}.spec.template", labels,
                                                 c.selector_matches(spec.selector, labels))
    return causes
