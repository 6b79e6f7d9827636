"""The pod network's exception tree (one per boundary, STYLE "Errors").

    NetworkError                 anything the pod network could not do
    ├── NetlinkError             a pyroute2 / netlink call failed (translated once, in bridge.py)
    ├── IptablesError            iptables-restore / iptables failed (masquerade.py)
    └── IPAMError                no free address, unusable state dir (ipam.py)

All are retryable from the caller's point of view (the pod worker retries the
sandbox); a pod whose network cannot be set up fails alone.
"""

from __future__ import annotations


class NetworkError(Exception):
    pass


class NetlinkError(NetworkError):
    pass


class IptablesError(NetworkError):
    pass


class IPAMError(NetworkError):
    pass
