#!/bin/sh
# Instructor solution for scenarios/break-fix-missing-route.yaml: put back
# flannel host-gw's route to the other node's pod subnet on both nodes.
# `ip route replace` adds a missing route and leaves a present one as it is,
# so the script works whichever node the seed broke.
#
#   sh scenarios/solutions/break-fix-missing-route.sh [LAB]      (default lab: two-node)
#
# LABCTL may name another labctl command line, e.g. "labctl --state-dir /tmp/s".
set -eu
LAB=${1:-two-node}
LABCTL=${LABCTL:-labctl}
$LABCTL exec --lab "$LAB" node1 -- ip route replace 192.168.2.0/24 via 10.30.45.200 dev eth0
$LABCTL exec --lab "$LAB" node2 -- ip route replace 192.168.1.0/24 via 10.30.45.100 dev eth0
