#!/bin/sh
# Instructor solution for scenarios/break-fix-ip-forward.yaml: turn IP
# forwarding back on in both nodes (writing 1 where it is already 1 changes
# nothing, so it works whichever node the seed broke).
#
#   sh scenarios/solutions/break-fix-ip-forward.sh [LAB]         (default lab: two-node)
set -eu
LAB=${1:-two-node}
LABCTL=${LABCTL:-labctl}
$LABCTL exec --lab "$LAB" node1 -- sysctl -w net.ipv4.ip_forward=1
$LABCTL exec --lab "$LAB" node2 -- sysctl -w net.ipv4.ip_forward=1
