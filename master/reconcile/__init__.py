"""Pure reconcilers: functions of (desired, observed, now) that return a plan. No I/O (import-linter contract)."""
