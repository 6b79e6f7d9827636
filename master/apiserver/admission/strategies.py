"""Per-kind admission strategies: defaults, validation, immutable fields.

`strategy_for(kind)` returns the kind's `Strategy`. The base strategy
clears status on create (a client does not get to create status, as in
Kubernetes) and validates nothing beyond metadata. Kinds register their
own subclass in `STRATEGIES`.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.errors import Cause


class Strategy:
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")

    def default(self, msg: Any) -> None:
        """Fill server-side defaults in place."""

    def validate(self, msg: Any) -> list[Cause]:
        return []

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        return []


STRATEGIES: dict[str, Strategy] = {}
_BASE = Strategy()


def strategy_for(kind: str) -> Strategy:
    return STRATEGIES.get(kind, _BASE)
