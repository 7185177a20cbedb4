#!/bin/sh
# Instructor solution for scenarios/break-fix-vxlan-mtu.yaml: tell both
# nodes the underlay's real MTU (1450). The VXLAN packets that no longer fit
# are then fragmented by the sending node and put together again by the
# receiving one. (flannel would also give flannel.1 and the pods 1400, so
# nothing needs fragmenting: ip link set flannel.1 mtu 1400 on each node, and
# eth0 mtu 1400 in every pod with its veth on the bridge.)
#
#   sh scenarios/solutions/break-fix-vxlan-mtu.sh [LAB]          (default lab: two-node-vxlan)
set -eu
LAB=${1:-two-node-vxlan}
LABCTL=${LABCTL:-labctl}
$LABCTL exec --lab "$LAB" node1 -- ip link set eth0 mtu 1450
$LABCTL exec --lab "$LAB" node2 -- ip link set eth0 mtu 1450
