package lab

import (
	"fmt"
	"os"
	"sort"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
)

// Health is whether a recorded lab is whole: every namespace there and
// proven the lab's, every supervisor and helper process running.
type Health struct {
	// Phase is the record's phase, or PhaseDegraded when something is
	// missing from a lab that is up.
	Phase string
	// Problems say what is wrong, one sentence each.
	Problems []string
	// Namespaces maps each of the lab's namespace names to its state.
	Namespaces map[string]netns.NamespaceState
	// Missing and Foreign list namespaces that are gone, and names now
	// held by a namespace labctl did not create for this lab.
	Missing, Foreign []string
	// DeadPods lists pods whose supervisor is not running; DeadDatapaths
	// nodes whose userspace IPIP datapath is not running, DeadHostnames
	// nodes whose hostname holder is not.
	DeadPods, DeadDatapaths, DeadHostnames []string
	// Unverified is set when the namespaces could only be checked by
	// name, not proven (reading a namespace's identity needs root).
	Unverified bool
}

// Degraded reports whether something of the lab is missing.
func (h Health) Degraded() bool { return h.Phase == PhaseDegraded }

// Health checks a recorded lab against the kernel's state. It changes
// nothing.
func (m Manager) Health(rec *Record) Health {
	h := Health{Phase: rec.Phase, Namespaces: map[string]netns.NamespaceState{}}
	root := os.Geteuid() == 0
	h.Unverified = !root
	for _, ns := range rec.Namespaces {
		st := m.namespaceState(rec, ns.Name, root)
		h.Namespaces[ns.Name] = st
		switch st {
		case netns.Gone, netns.Unmounted:
			h.Missing = append(h.Missing, ns.Name)
			h.Problems = append(h.Problems, fmt.Sprintf("%s namespace %q is missing", describeNS(ns), ns.Name))
		case netns.Foreign:
			h.Foreign = append(h.Foreign, ns.Name)
			h.Problems = append(h.Problems, fmt.Sprintf("%s namespace %q now belongs to a namespace labctl did not create for this lab", describeNS(ns), ns.Name))
		}
	}
	pods := make([]string, 0, len(rec.Pods))
	for pod := range rec.Pods {
		pods = append(pods, pod)
	}
	sort.Strings(pods)
	for _, pod := range pods {
		s := rec.Pods[pod]
		if !s.Process().Alive() {
			h.DeadPods = append(h.DeadPods, pod)
			h.Problems = append(h.Problems, fmt.Sprintf("the supervisor of %s %q (process %d) is not running", supervisedKind(rec, pod), pod, s.PID))
		}
	}
	nodes := make([]string, 0, len(rec.Datapaths))
	for node := range rec.Datapaths {
		nodes = append(nodes, node)
	}
	sort.Strings(nodes)
	for _, node := range nodes {
		d := rec.Datapaths[node]
		if d.Process != nil && !d.Process.Alive() {
			h.DeadDatapaths = append(h.DeadDatapaths, node)
			h.Problems = append(h.Problems, fmt.Sprintf("the userspace IPIP datapath of node %q (process %d) is not running", node, d.Process.PID))
		}
	}
	for _, node := range deadNodes(rec) {
		h.DeadHostnames = append(h.DeadHostnames, node)
		h.Problems = append(h.Problems, fmt.Sprintf("the hostname holder of node %q (process %d) is not running", node, rec.Hostnames[node].PID))
	}
	if rec.Phase == PhaseUp && len(h.Problems) > 0 {
		h.Phase = PhaseDegraded
	}
	return h
}

// namespaceState proves one namespace of a recorded lab: by its ownership
// record (the cookie) or, when that record is lost, by its marker (the
// lab id and this state directory). Without root only presence is known.
func (m Manager) namespaceState(rec *Record, name string, root bool) netns.NamespaceState {
	path := netns.Path(name)
	if !root {
		if _, err := os.Lstat(path); err != nil {
			return netns.Gone
		}
		return netns.Ours
	}
	own := m.Ownership()
	if o, err := own.Get(name); err == nil && o.LabID == rec.ID {
		return o.State()
	}
	id, err := netns.IdentifyPath(path)
	switch {
	case os.IsNotExist(err):
		return netns.Gone
	case err != nil:
		return netns.Foreign
	case id.Marked && id.Marker.LabID == rec.ID && id.Marker.State == own.Tag:
		return netns.Ours
	}
	return netns.Foreign
}

func describeNS(ns plan.Namespace) string {
	switch ns.Role {
	case plan.RoleUnderlay:
		return "the underlay"
	case plan.RoleRouter:
		return "the router"
	case plan.RoleExternal:
		return fmt.Sprintf("external host %q:", ns.Object)
	}
	return fmt.Sprintf("%s %q:", ns.Role, ns.Object)
}
