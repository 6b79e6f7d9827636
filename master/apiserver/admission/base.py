"""The `Strategy` base class: the four hooks admission calls for every kind.

`master.apiserver.admission` calls them in this order: on create
`reset_status_on_create` (only for kinds with a status subresource),
`default`, `validate`; on update `default`, `validate`, `validate_update`
(skipped for pods/binding). `prepare_for_update` is meant to run first on
update, before `default` and the generation check. Hooks work in place on protobuf messages the
registry owns. The base clears status on create (a client does not get to
create status, as in Kubernetes) and validates nothing beyond metadata.

It lives apart from `strategies.py` so that the per-kind modules can
subclass it while `strategies.py` imports them all to fill its table.
"""

from __future__ import annotations

from typing import Any

from master.apiserver.errors import Cause


class Strategy:
    def reset_status_on_create(self, msg: Any) -> None:
        msg.ClearField("status")

    def default(self, msg: Any) -> None:
        """Fill server-side defaults in place. Must not raise on invalid input:
        validation runs after it and reports the problems."""

    def validate(self, msg: Any) -> list[Cause]:
        return []

    def prepare_for_update(self, new: Any, old: Any) -> None:
        """Carry over from the stored object what a client may leave out of a PUT
        (Kubernetes' PrepareForUpdate). Not yet called by `admit_update`;
        strategies that need it also call it from `validate_update`, so it must
        be idempotent."""

    def validate_update(self, new: Any, old: Any) -> list[Cause]:
        """Rules comparing the new object with the stored one (immutable fields)."""
        return []
