"""Probe results and thresholds, pure (kubelet's prober results manager).

Owns: a probe's defaults (period 10 s, timeout 1 s, success 1, failure 3), its
state (the current result and the run of consecutive outcomes) and when a run
crosses a threshold. Readiness starts as failure, liveness and startup as
success-until-proven (liveness only counts after startup succeeded).
Must not: run a probe; node_agent.pods.prober does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


def probe_spec(kind: str, probe: Any) -> ProbeSpec:
    """A ProbeSpec from a core/v1 Probe message, zeros replaced by Kubernetes' defaults."""
    success = probe.success_threshold or 1
    if kind != READINESS:
        success = 1  # Kubernetes requires 1 for liveness and startup
    return ProbeSpec(
        kind=kind,
        initial_delay_s=float(max(0, probe.initial_delay_seconds)),
        period_s=float(probe.period_seconds or 10),
        timeout_s=float(probe.timeout_seconds or 1),
        success_threshold=success,
        failure_threshold=probe.failure_threshold or 3,
    )


@dataclass(frozen=True)
class ProbeState:
    result: bool
    successes: int = 0
    failures: int = 0
    last_message: str = ""


def initial_probe_state(kind: str) -> ProbeState:
    return ProbeState(result=kind != READINESS)


def record_probe(state: ProbeState, ok: bool, spec: ProbeSpec, *, message: str = "") -> ProbeState:
    """Fold one probe outcome in; the result flips only when a threshold is reached."""
    if ok:
        successes = state.successes + 1
        result = True if successes >= spec.success_threshold else state.result
        return ProbeState(result=result, successes=successes, failures=0, last_message=message)
    failures = state.failures + 1
    result = False if failures >= spec.failure_threshold else state.result
    return ProbeState(result=result, successes=0, failures=failures, last_message=message)
