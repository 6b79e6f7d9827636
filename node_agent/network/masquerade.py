"""Masquerade for pod traffic leaving the cluster CIDR (DESIGN 8).

Owns: the agent's nat chain FLOTAGENT-POD-MASQ (name configurable) and the one
jump to it from nat POSTROUTING. `render_masquerade` is pure (the rule text
for one `iptables-restore --noflush`, which re-declares and so flushes only
our chain); `apply_masquerade` / `remove_masquerade` run the commands.

Backend: iptables-legacy, the one the service proxy uses too (LAB-NOTES:
nft grows superlinearly with chains; one backend per host, DESIGN 9). Mixing
backends on a host would split the rules across two tables nobody sees
together, so the binary is one setting (`iptables`), not a guess.

The chain name deliberately does not start with "FLOTILLA-": that prefix is
the service proxy's, whose cleanup and stale-chain removal take every chain
carrying it.

Must not: touch other chains' rules, or the filter table.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from node_agent.network.errors import IptablesError

DEFAULT_CHAIN = "FLOTAGENT-POD-MASQ"
COMMENT = "flotilla: masquerade pod traffic leaving the cluster CIDR"


def render_masquerade(*, pod_cidr: str, cluster_cidr: str, chain: str = DEFAULT_CHAIN) -> str:
    """iptables-restore input: our chain with the one masquerade rule.
    Traffic from this node's pods to another pod keeps its source (host-gw routes
    carry it); anything else leaving the host is masqueraded behind the host."""
    return (
        "*nat\n"
        f":{chain} - [0:0]\n"
        f'-A {chain} -s {pod_cidr} ! -d {cluster_cidr} -m comment --comment "{COMMENT}" -j MASQUERADE\n'
        "COMMIT\n"
    )


def _jump_rule(chain: str) -> list[str]:
    return ["POSTROUTING", "-m", "comment", "--comment", f"flotilla: {chain}", "-j", chain]


def _run(cmd: Sequence[str], *, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(list(cmd), input=input_text, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IptablesError(f"{cmd[0]}: {exc}") from exc
    if check and res.returncode != 0:
        raise IptablesError(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}")
    return res


def apply_masquerade(*, pod_cidr: str, cluster_cidr: str, chain: str = DEFAULT_CHAIN,
                     iptables: str = "iptables-legacy", prefix: Sequence[str] = ()) -> None:
    """Declare our chain with its rule, then make sure POSTROUTING jumps to it once.
    `prefix` runs the commands elsewhere (e.g. `nsenter --net=PATH` in tests)."""
    pre = list(prefix)
    _run([*pre, f"{iptables}-restore", "-w", "--noflush"],
         input_text=render_masquerade(pod_cidr=pod_cidr, cluster_cidr=cluster_cidr, chain=chain))
    jump = _jump_rule(chain)
    if _run([*pre, iptables, "-w", "-t", "nat", "-C", *jump], check=False).returncode != 0:
        _run([*pre, iptables, "-w", "-t", "nat", "-A", *jump])


def remove_masquerade(*, chain: str = DEFAULT_CHAIN, iptables: str = "iptables-legacy",
                      prefix: Sequence[str] = ()) -> bool:
    """Remove the jump and our chain (idempotent). True if anything was removed."""
    pre = list(prefix)
    removed = False
    while _run([*pre, iptables, "-w", "-t", "nat", "-D", *_jump_rule(chain)], check=False).returncode == 0:
        removed = True
    if _run([*pre, iptables, "-w", "-t", "nat", "-F", chain], check=False).returncode == 0:
        _run([*pre, iptables, "-w", "-t", "nat", "-X", chain], check=False)
        removed = True
    return removed
