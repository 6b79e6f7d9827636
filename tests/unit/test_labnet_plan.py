"""The lab's names and addresses (pure): unique per lab id, within interface
name limits, host i at .10+i, the root leg at .254."""

from __future__ import annotations

import pytest

from deploy.labnet import plan_lab_hosts


def test_plan_names_and_addresses() -> None:
    plan = plan_lab_hosts("flot", ["node1", "node2", "node3"])
    assert plan.switch_netns == "flot-sw" and plan.root_leg == "flotr" and plan.root_address == "172.28.0.254"
    assert [(h.netns, h.address) for h in plan.hosts] == [
        ("flot-node1", "172.28.0.10"), ("flot-node2", "172.28.0.11"), ("flot-node3", "172.28.0.12")]
    assert all(len(h.switch_port) <= 15 for h in plan.hosts)
    assert plan.host("node2").address == "172.28.0.11"


def test_two_labs_share_no_name() -> None:
    a = plan_lab_hosts("abcdefgh", ["n1", "n2"], subnet="172.29.1.0/24")
    b = plan_lab_hosts("zz", ["n1", "n2"], subnet="172.29.2.0/24")
    names_a = {a.switch_netns, a.root_leg, *(h.netns for h in a.hosts), *(h.switch_port for h in a.hosts)}
    names_b = {b.switch_netns, b.root_leg, *(h.netns for h in b.hosts), *(h.switch_port for h in b.hosts)}
    assert not names_a & names_b
    assert len(a.root_leg) <= 15


@pytest.mark.parametrize(("lab_id", "subnet"), [("", "172.28.0.0/24"), ("toolongid", "172.28.0.0/24"),
                                                ("bad id", "172.28.0.0/24"), ("ok", "172.28.0.0/25")])
def test_plan_refuses_bad_input(lab_id: str, subnet: str) -> None:
    with pytest.raises(ValueError):
        plan_lab_hosts(lab_id, ["n1"], subnet=subnet)
