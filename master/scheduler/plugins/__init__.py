"""One module per scheduling plugin; `default_profile()` is the order they run in.

The filter order follows Kubernetes' default profile (the first filter a node
fails names its reason in the aggregate message); NodeReady is Flotilla's
own and sits after TaintToleration so that a node the lifecycle controller
has already tainted is reported by its taint, as Kubernetes reports it.
Score weights are Kubernetes' defaults.
"""

from __future__ import annotations

from master.scheduler.framework import Profile
from master.scheduler.plugins.balanced_allocation import BalancedAllocation
from master.scheduler.plugins.inter_pod_affinity import InterPodAffinity, InterPodAffinityScore
from master.scheduler.plugins.least_allocated import LeastAllocated
from master.scheduler.plugins.node_affinity import NodeAffinity, NodeAffinityScore
from master.scheduler.plugins.node_name import NodeName
from master.scheduler.plugins.node_ports import NodePorts
from master.scheduler.plugins.node_ready import NodeReady
from master.scheduler.plugins.node_resources_fit import NodeResourcesFit
from master.scheduler.plugins.node_unschedulable import NodeUnschedulable
from master.scheduler.plugins.pod_topology_spread import PodTopologySpread, PodTopologySpreadScore
from master.scheduler.plugins.selector_spread import SelectorSpread
from master.scheduler.plugins.taint_toleration import TaintToleration, TaintTolerationScore


def default_profile() -> Profile:
    return Profile(
        filters=(
            NodeUnschedulable(), NodeName(), TaintToleration(), NodeReady(), NodeAffinity(),
            NodePorts(), NodeResourcesFit(), PodTopologySpread(), InterPodAffinity(),
        ),
        scorers=(
            LeastAllocated(), BalancedAllocation(), SelectorSpread(), NodeAffinityScore(),
            InterPodAffinityScore(), TaintTolerationScore(), PodTopologySpreadScore(),
        ),
    )
