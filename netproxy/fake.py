"""Fakes of the iptables and conntrack adapters for unit tests.

`FakeIptables` keeps tables of chains of rule strings and applies
iptables-restore --noflush text with the real semantics that matter here:
a declared user chain is created or flushed, `-A` needs its chain and a
user-chain target to exist, `-X` refuses a chain something still jumps to,
and each table's changes land at COMMIT or not at all. So a test can apply
an incremental sync on top of a full one and compare with a fresh full sync.
"""

from __future__ import annotations

import copy
import shlex

from netproxy.errors import IptablesError

BUILTIN = {
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
}
TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "MARK"}


class FakeIptables:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, list[str]]] = {t: {c: [] for c in cs} for t, cs in BUILTIN.items()}
        self.restores: list[str] = []
        self.fail_next: str = ""  # set to make the next restore fail with this stderr

    def restore(self, text: str) -> None:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, ""
            raise IptablesError("iptables-restore exited 1", stderr=msg)
        self.restores.append(text)
        table, work = "", None
        for n, line in enumerate(text.splitlines(), 1):
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                work = copy.deepcopy(self.tables.setdefault(table, {}))
            elif line == "COMMIT":
                assert work is not None
                self.tables[table] = work
                work = None
            elif "'" in line:  # iptables-restore splits on spaces and honours only double quotes
                raise IptablesError("iptables-restore exited 2", stderr=f"line {n}: Bad argument (single quote)")
            elif work is None:
                raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: outside a table")
            elif line.startswith(":"):
                chain = line[1:].split()[0]
                if chain not in BUILTIN.get(table, []):
                    work[chain] = []
            else:
                self._command(work, line, n)

    def _command(self, work: dict[str, list[str]], line: str, n: int) -> None:
        words = shlex.split(line)
        if words[0] == "-A":
            chain = words[1]
            if chain not in work:
                raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: no chain {chain}")
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if target and target not in TARGETS and target not in work:
                raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: no target {target}")
            work[chain].append(line)
        elif words[0] in ("-D", "-I"):
            chain = words[1]
            if chain not in work:
                raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: no chain {chain}")
            if words[0] == "-D":
                rule = "-A " + line[3:]
                if rule not in work[chain]:
                    raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: no such rule")
                work[chain].remove(rule)
            else:
                pos = int(words[2])
                spec = line[3:].split(" ", 2)[2]
                work[chain].insert(pos - 1, f"-A {chain} {spec}")
        elif words[0] == "-X":
            chain = words[1]
            refs = [r for rules in work.values() for r in rules if r.endswith(f"-j {chain}") or f"-j {chain} " in r]
            if chain not in work or refs or work[chain]:
                raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: cannot delete {chain}")
            del work[chain]
        else:
            raise IptablesError("iptables-restore exited 1", stderr=f"line {n}: unknown command")

    def save(self, table: str = "") -> str:
        out = []
        for t in sorted(self.tables):
            if table and t != table:
                continue
            chains = self.tables[t]
            out.append(f"*{t}")
            out += [f":{c} {'ACCEPT' if c in BUILTIN.get(t, []) else '-'} [0:0]" for c in chains]
            for rules in chains.values():
                out += rules
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def remove_jumps(self) -> list[str]:
        removed = []
        for table, chains in self.tables.items():
            for chain in BUILTIN.get(table, []):
                keep = [r for r in chains[chain] if "-j FLOTILLA-" not in r]
                removed += [f"{table}: {r}" for r in chains[chain] if r not in keep]
                chains[chain] = keep
        return removed

    def user_chains(self, table: str) -> dict[str, list[str]]:
        return {c: r for c, r in self.tables[table].items() if c not in BUILTIN.get(table, [])}


class FakeConntrack:
    def __init__(self) -> None:
        self.flushed: list[tuple[str, int, str]] = []

    def flush_udp(self, *, vip: str = "", node_port: int = 0, endpoint_ip: str) -> None:
        self.flushed.append((vip, node_port, endpoint_ip))
