"""The container runtime boundary: a CRI-shaped protocol, Docker behind it, a fake beside it."""
