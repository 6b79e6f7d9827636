"""The proxy's exception tree (the iptables / conntrack boundary).

    ProxyError
      IptablesError      an iptables(-restore/-save) command failed; .stderr has why
      BackendConflict    the host has Flotilla rules on the other iptables backend
      ConntrackError     conntrack failed for another reason than "nothing to delete"

Adapters (iptables.py, conntrack.py) translate subprocess failures into these,
once; the syncer decides what is retryable (everything but BackendConflict).
"""

from __future__ import annotations


class ProxyError(Exception):
    pass


class IptablesError(ProxyError):
    def __init__(self, message: str, *, stderr: str = "") -> None:
        super().__init__(f"{message}: {stderr.strip()}" if stderr else message)
        self.stderr = stderr


class BackendConflict(ProxyError):
    pass


class ConntrackError(ProxyError):
    pass
