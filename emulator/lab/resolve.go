package lab

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/workload"
)

// ErrAmbiguous says a name exists in several labs; the caller must pick one.
var ErrAmbiguous = errors.New("ambiguous")

// Target is a node, pod or container of a lab, resolved to where it runs.
type Target struct {
	Lab  string
	Role string // plan.RoleUnderlay, RoleNode, RolePod, RoleRouter or RoleExternal
	Name string // the node, pod or external host ("underlay", "router")
	// Namespace is the network namespace's name under /run/netns.
	Namespace string
	// Containers lists a pod's (or an external host's) containers in
	// spec order; empty when it runs none (or for a node).
	Containers []string
	// Container is the container asked for, if any.
	Container string
	// PodStateDir is the pod supervisor's state directory when the pod
	// runs containers.
	PodStateDir string
	// Holder is a node's hostname holder, whose UTS namespace commands in
	// the node join (nodes.go); zero when none is recorded.
	Holder process.ID
}

// NamespacePath is where the target's network namespace is mounted.
func (t Target) NamespacePath() string { return netns.Path(t.Namespace) }

// String names the target for messages: pod "pod1a" of lab "two-node".
func (t Target) String() string {
	s := fmt.Sprintf("%s %q", t.Role, t.Name)
	if t.Container != "" {
		s = fmt.Sprintf("container %q of pod %q", t.Container, t.Name)
	}
	return s + fmt.Sprintf(" of lab %q", t.Lab)
}

// Resolve finds a node, pod or external host (or the router or the
// underlay) by name or by its namespace's name, in one lab or, with
// labName "", in whichever lab has it; container, if given, must be one of
// the pod's or external host's.
func (m Manager) Resolve(labName, object, container string) (Target, error) {
	var recs []*Record
	if labName != "" {
		r, err := m.Load(labName)
		if err != nil {
			return Target{}, err
		}
		recs = []*Record{r}
	} else {
		var err error
		if recs, _, err = m.List(); err != nil {
			return Target{}, err
		}
	}
	var found []Target
	for _, r := range recs {
		for _, ns := range r.Namespaces {
			if ns.Object != object && ns.Name != object && !(ns.Role == plan.RoleUnderlay && object == "underlay") {
				continue
			}
			t := Target{Lab: r.Name, Role: ns.Role, Name: ns.Object, Namespace: ns.Name}
			if ns.Role == plan.RoleUnderlay {
				t.Name = "underlay"
			}
			if p := r.Hostnames[ns.Object]; ns.Role == plan.RoleNode && p != nil {
				t.Holder = p.id()
			}
			if runsContainers(ns.Role) {
				for _, c := range containers(r.Topology, ns.Role, ns.Object) {
					t.Containers = append(t.Containers, c.Name)
				}
				if _, ok := r.Pods[ns.Object]; ok {
					t.PodStateDir = m.PodStateDir(r.Name, ns.Object)
				}
			}
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		var known []string
		for _, r := range recs {
			for _, ns := range r.Namespaces {
				if ns.Object != "" {
					known = append(known, ns.Object)
				}
			}
		}
		slices.Sort(known)
		switch {
		case len(recs) == 0:
			return Target{}, fmt.Errorf("no pod, node or external host %q: no labs are up: %w", object, ErrNotFound)
		case len(known) > 20:
			known = append(known[:20], "...")
		}
		return Target{}, fmt.Errorf("no pod, node or external host %q (known: %s): %w", object, strings.Join(known, ", "), ErrNotFound)
	case 1:
	default:
		var labs []string
		for _, t := range found {
			labs = append(labs, t.Lab)
		}
		return Target{}, fmt.Errorf("%q exists in several labs (%s): pick one with --lab: %w", object, strings.Join(labs, ", "), ErrAmbiguous)
	}
	t := found[0]
	if container == "" {
		return t, nil
	}
	switch {
	case !runsContainers(t.Role):
		return Target{}, fmt.Errorf("%s runs no containers; leave out the container: %w", t, ErrNotFound)
	case len(t.Containers) == 0:
		return Target{}, fmt.Errorf("%s runs no containers; leave out the container: %w", t, ErrNotFound)
	case !slices.Contains(t.Containers, container):
		return Target{}, fmt.Errorf("%s %q has no container %q (it has %s): %w", t.Role, t.Name, container, strings.Join(t.Containers, ", "), errors.Join(ErrNotFound, workload.ErrNoContainer))
	}
	t.Container = container
	return t, nil
}
