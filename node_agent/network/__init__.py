"""The pod network (DESIGN 8): bridge.py (the real PodNetwork), ipam.py,
routes.py (pure route plan), masquerade.py (iptables). interface.py and
fake.py belong to the pods side."""
