"""The iptables adapter: iptables-legacy's restore and save, and the built-in jumps.

Flotilla uses the legacy backend on purpose (LAB-NOTES: iptables-restore of
5,000 services took 0.53 s there and 15.3 s on nf_tables) and refuses to run
on a host whose other backend already holds Flotilla chains (`check_backend`),
so one host never mixes them. Every command can be given a prefix
(`["ip", "netns", "exec", NS]`) so benchmarks and tests program a namespace
of their own.

Owns: running the commands, translating failures into `errors.IptablesError`,
reading which jumps from built-in chains an iptables-save lacks (a full sync
inserts those in its restore text: a --noflush restore cannot do it
idempotently) and removing them all for --cleanup. Does not decide rules
(render.py does).
A fake with the same surface is in fake.py.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Protocol

from netproxy.errors import BackendConflict, IptablesError
from netproxy.render import JUMPS, PREFIX, Jump

BACKENDS = {
    "legacy": ("iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore"),
    "nft": ("iptables-nft", "iptables-nft-save", "iptables-nft-restore"),
}


class Iptables(Protocol):
    def restore(self, text: str) -> None: ...

    def save(self, table: str = "") -> str: ...

    def remove_jumps(self) -> list[str]: ...


def flotilla_chains(save_text: str) -> dict[str, set[str]]:
    """table -> our chains, read from iptables-save output."""
    out: dict[str, set[str]] = {}
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(f":{PREFIX}"):
            out.setdefault(table, set()).add(line[1:].split()[0])
    return out


def missing_jumps(save_text: str) -> list[Jump]:
    """The JUMPS iptables-save output lacks (a rule of that built-in chain jumping to that target)."""
    present = {(table, line.split()[1], line.rsplit("-j ", 1)[1].strip()) for table, line in jump_lines(save_text)}
    return [j for j in JUMPS if (j[0], j[1], j[2]) not in present]


def jump_lines(save_text: str) -> list[tuple[str, str]]:
    """(table, "-A CHAIN ...") for every rule of a built-in chain that jumps to ours."""
    out = []
    table = ""
    for line in save_text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith("-A ") and not line.split()[1].startswith(PREFIX) and f"-j {PREFIX}" in line:
            out.append((table, line))
    return out


class LegacyIptables:
    def __init__(self, *, backend: str = "legacy", prefix: Sequence[str] = (), timeout_s: float = 60.0) -> None:
        self.backend = backend
        self.iptables, self.save_cmd, self.restore_cmd = BACKENDS[backend]
        self.prefix = list(prefix)
        self.timeout_s = timeout_s

    def _run(self, args: list[str], *, stdin: str | None = None) -> str:
        try:
            proc = subprocess.run(self.prefix + args, input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise IptablesError(f"{args[0]} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise IptablesError(f"{' '.join(args[:3])} exited {proc.returncode}", stderr=proc.stderr)
        return proc.stdout

    def restore(self, text: str) -> None:
        self._run([self.restore_cmd, "--noflush", "-w", "5"], stdin=text)

    def save(self, table: str = "") -> str:
        return self._run([self.save_cmd] + (["-t", table] if table else []))

    def remove_jumps(self) -> list[str]:
        removed = []
        for table, line in jump_lines(self.save()):
            words = shlex.split(line)
            self._run([self.iptables, "-w", "5", "-t", table, "-D", *words[1:]])
            removed.append(f"{table}: {line}")
        return removed


def check_backend(chosen: str = "legacy", *, prefix: Sequence[str] = ()) -> None:
    """Raise BackendConflict when the other backend holds Flotilla chains on this host."""
    for name in BACKENDS:
        if name == chosen:
            continue
        try:
            text = LegacyIptables(backend=name, prefix=prefix).save()
        except IptablesError:
            continue  # that backend is not usable here, so it holds nothing of ours
        if flotilla_chains(text):
            raise BackendConflict(
                f"this host already has Flotilla rules on the iptables-{name} backend; flotilla-proxy uses "
                f"iptables-{chosen} and never mixes backends. Remove them first "
                f"(flotilla-proxy --cleanup --iptables-backend {name})")
