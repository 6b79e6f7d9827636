"""Probe loops of a pod's running containers: started per container id and
kind, stopped when the container goes, results kept for the plan (liveness /
startup failures) and the status (readiness, started), a flip wakes the worker.

A mixin of PodWorker (node_agent.pods.worker), split out to keep each module
readable. The probing itself is node_agent.pods.prober; thresholds are
node_agent.pods.probes (pure).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from node_agent.pods.actions import ObservedPod
from node_agent.pods.prober import probe_loop
from node_agent.pods.probes import (
    LIVENESS,
    READINESS,
    STARTUP,
    ProbeState,
    initial_probe_state,
    probe_spec,
)
from node_agent.runtime.interface import LABEL_CONTAINER_TYPE, ContainerState
from protos.core.v1 import core_pb2

if TYPE_CHECKING:
    from node_agent.pods.manager import PodManager


class ProbeMixin:
    m: PodManager
    pod: core_pb2.Pod
    pod_ip: str
    wake: asyncio.Event
    probe_states: dict[tuple[str, str], ProbeState]
    probe_tasks: dict[tuple[str, str], asyncio.Task[None]]
    _startup_thresholds: dict[str, int]

    def _event(self, type_: str, reason: str, message: str) -> None:
        raise NotImplementedError

    def _failed(self, cid: str, kind: str, st: ProbeState) -> bool:
        if kind == LIVENESS:
            return not st.result
        if kind == STARTUP:
            return not st.result and st.failures > 0 and st.failures >= self._startup_thresholds.get(cid, 3)
        return False

    def _forget_probes(self, cid: str) -> None:
        for key in [k for k in self.probe_tasks if k[0] == cid]:
            self.probe_tasks.pop(key).cancel()
        for key in [k for k in self.probe_states if k[0] == cid]:
            self.probe_states.pop(key)

    def _sync_probes(self, observed: ObservedPod) -> None:
        running = {c.id: c for c in observed.containers if c.state == ContainerState.RUNNING}
        for cid in {k[0] for k in self.probe_tasks} - set(running):
            self._forget_probes(cid)
        specs = {c.name: c for c in self.pod.spec.containers}
        for cid, c in running.items():
            spec = specs.get(c.name)
            if spec is None or c.labels.get(LABEL_CONTAINER_TYPE) == "init":
                continue
            has_startup = spec.HasField("startup_probe")
            for kind, probe in ((STARTUP, spec.startup_probe), (LIVENESS, spec.liveness_probe),
                                (READINESS, spec.readiness_probe)):
                if not spec.HasField(f"{kind}_probe") or (cid, kind) in self.probe_tasks:
                    continue
                self._start_probe(cid, kind, probe, spec, c, has_startup)

    def _start_probe(self, cid: str, kind: str, probe: Any, spec: Any, c: Any, has_startup: bool) -> None:
        pspec = probe_spec(kind, probe)
        key = (cid, kind)
        self.probe_states[key] = initial_probe_state(kind)
        if kind == STARTUP:
            self.probe_states[key] = ProbeState(result=False)
            self._startup_thresholds[cid] = pspec.failure_threshold

        def gate() -> bool:
            if kind == STARTUP or not has_startup:
                return True
            st = self.probe_states.get((cid, STARTUP))
            return st is not None and st.result

        def on_change(state: ProbeState) -> None:
            if key not in self.probe_states:
                return
            self.probe_states[key] = state
            if not state.result:
                detail = f": {state.last_message}" if state.last_message else ""
                self._event("Warning", "Unhealthy", f"{kind.capitalize()} probe failed{detail}")
            self.wake.set()

        elapsed = 0.0
        if c.started_at is not None:
            elapsed = max(0.0, self.m.clock.wall().timestamp() - c.started_at.timestamp())
        self.probe_tasks[key] = asyncio.create_task(probe_loop(
            pspec, probe, clock=self.m.clock, runtime=self.m.runtime, container_id=cid, container=spec,
            pod_ip=lambda: self.pod_ip, gate=gate, on_change=on_change,
            initial_delay_s=max(0.0, pspec.initial_delay_s - elapsed)))
