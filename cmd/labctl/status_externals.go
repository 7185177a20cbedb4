package main

import (
	"fmt"
	"strings"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// What status shows of the lab's outside: its masquerade setting, the
// router and the external hosts.

// outsideLine says, under the lab's networks, how pod traffic leaves the
// cluster and which networks the router joins; "" for a lab with no
// external hosts that masquerades as usual.
func outsideLine(t *spec.Topology) string {
	if len(t.Externals) == 0 && t.Network.Masquerade {
		return ""
	}
	masq := "masquerade on (pod traffic leaving the cluster takes its node's address)"
	if !t.Network.Masquerade {
		masq = "masquerade off (pod traffic leaves the cluster with the pod's address)"
	}
	parts := []string{masq}
	if r := t.Router; r != nil {
		var nets []string
		for _, n := range r.Networks {
			nets = append(nets, fmt.Sprintf("%s (%s)", n.CIDR, n.Gateway))
		}
		parts = append(parts, fmt.Sprintf("router %s joins %s", r.IP, strings.Join(nets, ", ")))
	}
	if n := len(t.Externals); n > 0 {
		parts = append(parts, fmt.Sprintf("%d external %s", n, plural(n, "host")))
	}
	return strings.Join(parts, "; ")
}

// topologyContainers counts the containers the topology gives a pod or an
// external host.
func topologyContainers(t *spec.Topology, ns lab.NamespaceStatus) int {
	switch ns.Role {
	case plan.RolePod:
		p, _ := t.Pod(ns.Name)
		return len(p.Containers)
	case plan.RoleExternal:
		e, _ := t.External(ns.Name)
		return len(e.Containers)
	}
	return 0
}

// externalFacts are what the object view says of an external host (its
// network and default gateway) or the router (the networks it joins).
func externalFacts(ns lab.NamespaceStatus) []string {
	var facts []string
	if ns.Network != "" {
		facts = append(facts, "network "+ns.Network)
	}
	if ns.Gateway != "" {
		facts = append(facts, "default gateway "+ns.Gateway+" (the router)")
	}
	if len(ns.Networks) > 0 {
		facts = append(facts, "joins "+strings.Join(ns.Networks, ", "))
	}
	return facts
}

// externalsPhrase counts a lab's external hosts for the one-line summaries
// of up and validate: ", 1 external host", or nothing.
func externalsPhrase(t *spec.Topology) string {
	if n := len(t.Externals); n > 0 {
		return fmt.Sprintf(", %d external %s", n, plural(n, "host"))
	}
	return ""
}
