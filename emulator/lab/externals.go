package lab

import (
	"fmt"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// External hosts are namespaces of the lab like its nodes and pods: in its
// record (Record.Namespaces, roles plan.RoleRouter and RoleExternal), marked
// and claimed by the applier, proven by Health, removed by Down, rebuilt by
// a repair. One that runs containers runs them on a supervisor of the same
// kind as a pod's, recorded with the pods' in Record.Pods under its name
// (names are unique lab-wide), so down, health, logs, exec and stop treat
// both alike.

// runsContainers reports whether the namespace of role and object holds a
// supervisor: a pod's or an external host's.
func runsContainers(role string) bool { return role == plan.RolePod || role == plan.RoleExternal }

// supervisedKind says what a supervisor of Record.Pods runs for: a pod or
// an external host.
func supervisedKind(rec *Record, name string) string {
	if _, ok := rec.Topology.External(name); ok {
		return "external host"
	}
	return "pod"
}

// containers lists the containers the topology gives a pod or an external
// host.
func containers(t *spec.Topology, role, object string) []spec.Container {
	switch role {
	case plan.RolePod:
		if p, ok := t.Pod(object); ok {
			return p.Containers
		}
	case plan.RoleExternal:
		if e, ok := t.External(object); ok {
			return e.Containers
		}
	}
	return nil
}

// externalPodSpecs are the supervisors of the external hosts that run
// containers (with only set, just those named there).
func (m Manager) externalPodSpecs(rec *Record, only map[string]bool) []workload.PodSpec {
	var specs []workload.PodSpec
	for _, e := range rec.Topology.Externals {
		if len(e.Containers) == 0 || (only != nil && !only[e.Name]) {
			continue
		}
		ps := m.podSpec(rec.Name, e.Name, e.IP, e.RestartPolicy, e.Containers)
		ps.External = true // no kubelet files: a machine outside the cluster
		specs = append(specs, ps)
	}
	return specs
}

// externalStatus fills in what the topology says of the router or an
// external host.
func externalStatus(t *spec.Topology, ns plan.Namespace, st *NamespaceStatus) {
	switch ns.Role {
	case plan.RoleRouter:
		if r := t.Router; r != nil {
			st.IP = r.IP.String()
			st.Networks = append(st.Networks, t.Network.Underlay.String())
			for _, n := range r.Networks {
				st.Networks = append(st.Networks, n.CIDR.String())
			}
		}
	case plan.RoleExternal:
		if e, ok := t.External(ns.Object); ok {
			st.IP, st.Network = e.IP.String(), e.Network.String()
			if e.Gateway.IsValid() {
				st.Gateway = e.Gateway.String()
			}
		}
	}
}

// externalsToRestart are the external hosts running containers whose
// namespaces a repair rebuilds. (The router and the external hosts hang
// off the underlay alone: a missing one takes nothing else with it.)
func externalsToRestart(rec *Record, rebuild map[string]bool) []string {
	var restart []string
	for _, e := range rec.Topology.Externals {
		if rebuild[plan.NamespaceName(rec.Name, e.Name)] && len(e.Containers) > 0 {
			restart = append(restart, e.Name)
		}
	}
	return restart
}

// staleExternalVeths are the underlay namespace's ends of the veths of the
// router and the external hosts that a repair rebuilds while the underlay
// survives: the namespace deleted by name may live on (held by a process),
// and its veth pair with it, whose name the new veth needs.
func staleExternalVeths(rec *Record, rebuild map[string]bool) []string {
	t := rec.Topology
	var stale []string
	if r := t.Router; r != nil && rebuild[plan.RouterNamespace(rec.Name)] {
		stale = append(stale, plan.RouterVeth("eth0"))
		for _, n := range r.Networks {
			stale = append(stale, plan.RouterVeth(n.Device))
		}
	}
	for _, e := range t.Externals {
		if rebuild[plan.NamespaceName(rec.Name, e.Name)] {
			stale = append(stale, plan.VethName(e.Name))
		}
	}
	return stale
}

// externalPaths yields each container of the external hosts with its YAML
// path.
func externalPaths(t *spec.Topology, yield func(string, spec.Container) bool) bool {
	for i, e := range t.Externals {
		for k, c := range e.Containers {
			if !yield(fmt.Sprintf("externals[%d].containers[%d]", i, k), c) {
				return false
			}
		}
	}
	return true
}

// addExternalCapacity counts what the router and the external hosts ask
// of the kernel: a namespace and a veth each (the router one per network
// it joins), a default route and their own, the supervisors and
// containers of those that run some.
func addExternalCapacity(t *spec.Topology, c *Capacity) {
	if r := t.Router; r != nil {
		c.Namespaces++
		c.Links += 1 + len(r.Networks)
		c.Bytes += costNamespace
	}
	for _, e := range t.Externals {
		c.Namespaces++
		c.Links++
		c.Routes += 1 + len(e.Routes)
		c.Bytes += costNamespace + int64(1+len(e.Routes))*costRoute
		if len(e.Containers) > 0 {
			c.Processes += 1 + len(e.Containers)
			c.Bytes += costSupervisor + int64(len(e.Containers))*costContainer
		}
	}
}
