"""Allocation of Service clusterIPs and nodePorts (issue 5).

`ranges.py` and `plan.py` are pure; `service.py` reserves and releases in the
store and is the hook the registry calls around Service writes.
"""
