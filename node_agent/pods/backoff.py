"""Crash-loop and image-pull backoff, as pure values (kubelet's flowcontrol.Backoff).

Owns: the per-key delay (10 s doubling to 5 min by default) and when a key is
"in backoff". A key is `<pod uid>/<container name>` (or `.../image` for pulls).
The first failure of a key restarts at once and starts the clock; each further
failure inside the window doubles the delay. An entry expires (delay resets to
the initial one) once the container ran for `reset_s` (10 min) or nothing
happened to the key for `reset_s`.
Must not: sleep or read a clock; callers pass `now` (wall seconds).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 10.0
    max_s: float = 300.0
    reset_s: float = 600.0


@dataclass(frozen=True)
class BackoffEntry:
    delay_s: float
    last_update: float  # wall seconds of the failure that set this delay


def backoff_remaining(entry: BackoffEntry | None, *, event_time: float, now: float,
                      policy: BackoffPolicy) -> float:
    """Seconds still to wait before acting on a failure seen at `event_time`; 0 = act now."""
    if entry is None or now - entry.last_update > policy.reset_s:
        return 0.0
    return max(0.0, entry.delay_s - (now - event_time))


def next_backoff(entry: BackoffEntry | None, *, now: float, policy: BackoffPolicy,
                 ran_s: float = 0.0) -> BackoffEntry:
    """The entry after one more failure (call when acting on it: restarting or pulling)."""
    if entry is None or now - entry.last_update > policy.reset_s or ran_s >= policy.reset_s:
        return BackoffEntry(delay_s=policy.initial_s, last_update=now)
    return BackoffEntry(delay_s=min(entry.delay_s * 2, policy.max_s), last_update=now)
