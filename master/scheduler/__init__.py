"""The scheduler: places pending pods on nodes and keeps every decision (see README.md)."""

from master.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]
