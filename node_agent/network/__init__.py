"""The pod network boundary: what the pod workers ask of it (interface.py), a fake beside it."""
