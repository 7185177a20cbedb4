package plan

import (
	"bufio"
	"fmt"
	"io"

	"github.com/labctl/labctl/emulator/spec"
)

// stageNotes say, for the reader of a --dry-run script, what each stage
// builds in textbook terms.
var stageNotes = map[string]string{
	"underlay": "The underlay: a namespace holding one bridge, the \"physical\" switch\n# every node's eth0 is cabled to.",
	"nodes":    "Nodes: a namespace each, with eth0 on the underlay, the pod bridge holding\n# the pods' gateway address (its MAC pinned, as the bridge CNI plugin does), IP\n# forwarding on, and what carries pod traffic to the other nodes: host-gw routes\n# via their node IPs, a VXLAN device with its neighbour and FDB entries, or an\n# IPIP device with onlink routes.",
	"pods":     "Pods: a namespace each, with eth0 (the pod end of a veth pair whose other\n# end is a port of the node's bridge, hairpin on as flannel asks), its IP, and a\n# default route via the bridge's gateway address.",
	// "externals": externals.go
}

// calicoStageNotes replace stageNotes in a lab of Calico's style.
var calicoStageNotes = map[string]string{
	"nodes": "Nodes, wired as Calico does: a namespace each, with eth0 on the underlay and a\n# default route (Calico's proxy ARP needs one), IP forwarding on, no bridge, the\n# node's block as a blackhole route, and what carries pod traffic to the other\n# nodes' blocks: BIRD's routes via their node IPs (proto bird; through tunl0,\n# onlink, for IPIP), or Felix's vxlan.calico with its neighbour, FDB entries and\n# onlink routes.",
	"pods":  "Pods, wired as Calico's CNI plugin does: a namespace each, with eth0 (the pod\n# end of a veth pair whose node end is cali plus a hash, MAC ee:ee:ee:ee:ee:ee,\n# no address), its IP as a /32, and a default route via 169.254.1.1, which no\n# device has: the node end answers for it by proxy ARP. On the node, a /32 route\n# to the pod through its cali device.",
}

// WriteScript renders the plan as a bash script of the equivalent iproute2
// and sysctl commands. Running it as root builds the same lab labctl builds
// (without labctl's bookkeeping, so `labctl down` does not know about it).
// It streams: a lab's script has a line per route, and holding it whole
// would cost as much memory as the lab has node pairs.
func (p *Plan) WriteScript(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "#!/usr/bin/env bash\n")
	fmt.Fprintf(b, "# Lab %q as iproute2 commands: what `labctl up` does through netlink.\n", p.Lab)
	needs := "iproute2 and procps (sysctl)"
	if p.programsRules() {
		needs = "iproute2, procps (sysctl) and nftables (nft)"
	}
	fmt.Fprintf(b, "# Run as root; needs %s.\n", needs)
	p.writeLeftOut(b)
	fmt.Fprintf(b, "set -euo pipefail\n")
	for _, s := range p.Stages {
		b.WriteString("\n# ")
		note, ok := stageNotes[s.Name]
		if calico, has := calicoStageNotes[s.Name]; has && p.Calico {
			note = calico
		}
		if ok {
			b.WriteString(note)
			if s.Name == "underlay" && p.ExternalNetworks > 0 {
				b.WriteString(externalNetworksNote)
			}
		} else {
			b.WriteString(s.Name)
		}
		b.WriteString("\n")
		for _, u := range s.Units {
			for _, op := range u.Ops {
				if g, ok := op.(Group); ok {
					for sub := range g.Expand() {
						sub.Describe().writeScript(b)
					}
					continue
				}
				op.Describe().writeScript(b)
			}
		}
	}
	b.WriteString("\n# Tear down: deleting the namespaces deletes every device, address and\n# route inside them (veth pairs die with either end):\n# for ns in")
	for _, ns := range p.Namespaces {
		b.WriteString(" ")
		b.WriteString(ns.Name)
	}
	b.WriteString("; do ip netns del \"$ns\"; done\n")
	// bufio keeps the first write error and reports it here.
	return b.Flush()
}

// writeLeftOut says, at the top of the script, what `labctl up` does that
// no command below does: the script is a faithful transcript of the
// network, not of labctl's processes and bookkeeping.
func (p *Plan) writeLeftOut(b *bufio.Writer) {
	b.WriteString("#\n# Left out, because labctl does them itself rather than through commands:\n")
	if p.Containers > 0 {
		fmt.Fprintf(b, "#   - the %d %s of %d %s and the %s supervisors (labctl-shim, the pause\n", p.Containers, plural(p.Containers, "container"),
			p.ContainerPods, plural(p.ContainerPods, "pod"), plural(p.ContainerPods, "pod's"))
		b.WriteString("#     container), which `labctl up` starts once the network is ready;\n")
	}
	if p.ExternalContainers > 0 {
		fmt.Fprintf(b, "#   - the %d %s of %d external %s, on supervisors of the same kind;\n", p.ExternalContainers, plural(p.ExternalContainers, "container"),
			p.ContainerExternals, plural(p.ContainerExternals, "host"))
	}
	kernel, userspace := p.ipipDatapaths()
	if kernel {
		b.WriteString("#   - labctl's userspace IPIP datapath, a helper process per node that serves\n")
		b.WriteString("#     tunl0 where the kernel has no ipip module: this script needs the module;\n")
	}
	if userspace {
		b.WriteString("#   - labctl's userspace IPIP datapath (network.ipip.datapath: userspace), the\n")
		b.WriteString("#     helper process that carries the TUN device's packets: without it, the\n")
		b.WriteString("#     script's TUN device carries nothing;\n")
	}
	b.WriteString("#   - labctl's records: the marker on each namespace's lo (ip link show lo),\n")
	b.WriteString("#     the ownership records and the lab record under the state directory, so\n")
	b.WriteString("#     `labctl status` and `labctl down` do not know a lab built by this script\n")
	b.WriteString("#     (the teardown at the end removes it).\n")
}

// ipipDatapaths reports whether the plan has kernel IPIP devices (datapath
// auto or kernel) and TUN devices for labctl's userspace datapath.
func (p *Plan) ipipDatapaths() (kernel, userspace bool) {
	for _, s := range p.Stages {
		for _, u := range s.Units {
			for _, op := range u.Ops {
				if t, ok := op.(AddIPIPTunnel); ok {
					if t.Datapath == spec.DatapathUserspace {
						userspace = true
					} else {
						kernel = true
					}
				}
			}
		}
	}
	return kernel, userspace
}

func plural(n int, word string) string {
	switch {
	case n == 1:
		return word
	case word == "pod's":
		return "pods'"
	}
	return word + "s"
}
