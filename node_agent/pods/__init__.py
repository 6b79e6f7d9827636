"""Pods on this node: one serialized worker per pod, pure planning, an executor, probes, status."""
