package lab

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/ipipd"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// Status is everything labctl knows about one lab, as typed values: what
// the record says, checked against the kernel (Health) and, with
// StatusOptions.Live, what the kernel holds now. Every front end (the CLI's
// status, the grader, trace, the TUI) reads labs through it.
type Status struct {
	Name      string    `json:"name"`
	ID        string    `json:"id,omitempty"`
	File      string    `json:"file,omitempty"`
	Phase     string    `json:"phase"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// Problems say what is missing from a degraded lab.
	Problems []string `json:"problems,omitempty"`
	// Error says why the lab's record cannot be used; only Name and Phase
	// ("unknown") are set then.
	Error    string         `json:"error,omitempty"`
	Topology *spec.Topology `json:"-"`
	// Namespaces are the lab's namespaces in creation order: the
	// underlay, nodes, pods, the router and external hosts.
	Namespaces []NamespaceStatus `json:"namespaces,omitempty"`
	// Datapaths say what serves each node's IPIP device.
	Datapaths []DatapathStatus `json:"datapaths,omitempty"`
	// Services are the lab's services (services.go), with each endpoint's
	// hits when read live; ServiceProblems say which nodes' counters could
	// not be read.
	Services        []ServiceStatus `json:"services,omitempty"`
	ServiceProblems []string        `json:"serviceProblems,omitempty"`
	// Unverified is set when namespaces could only be checked by name
	// (not as root).
	Unverified bool `json:"unverified,omitempty"`
}

// NamespaceStatus is one namespace of a lab and the node or pod it plays.
type NamespaceStatus struct {
	Namespace string `json:"namespace"`
	Role      string `json:"role"` // underlay, node, pod, router or external
	Name      string `json:"name"` // the node, pod or external host; "underlay", "router"
	Node      string `json:"node,omitempty"`
	IP        string `json:"ip,omitempty"`
	PodCIDR   string `json:"podCIDR,omitempty"`
	Bridge    string `json:"bridge,omitempty"`
	// Network and Gateway are an external host's network and default
	// gateway; Networks those the router joins, the underlay first.
	Network  string   `json:"network,omitempty"`
	Gateway  string   `json:"gateway,omitempty"`
	Networks []string `json:"networks,omitempty"`
	// State is "ours" when the namespace is there and proven the lab's,
	// else "missing" or "foreign".
	State      string             `json:"state"`
	Present    bool               `json:"present"`
	Interfaces []kernel.Interface `json:"interfaces,omitempty"`
	Routes     []kernel.Route     `json:"routes,omitempty"`
	// InspectError says why interfaces and routes could not be read.
	InspectError string `json:"inspectError,omitempty"`
	// Pod is the supervisor report of a pod (or an external host) that
	// runs containers.
	Pod *workload.PodStatus `json:"pod,omitempty"`
}

// DatapathStatus says what serves a node's IPIP device, and whether a
// userspace datapath process is still alive.
type DatapathStatus struct {
	Node    string `json:"node"`
	Device  string `json:"device"`
	Kind    string `json:"kind"`
	Reason  string `json:"reason"`
	PID     int    `json:"pid,omitempty"`
	Running bool   `json:"running"`
	Log     string `json:"log,omitempty"`
	// Stats are the userspace datapath's counters as it last wrote them,
	// those of its steering program on eth0 among them.
	Stats *ipipd.Stats `json:"stats,omitempty"`
}

// StatusOptions choose how much Status reads.
type StatusOptions struct {
	// Live reads every namespace's interfaces and routes (needs root).
	Live bool
}

// Status reports one lab.
func (m Manager) Status(name string, opt StatusOptions) (*Status, error) {
	r, err := m.Load(name)
	if err != nil {
		return nil, err
	}
	return m.status(r, opt), nil
}

// StatusAll reports every lab of the state directory, unusable records
// included (with Error set), by name.
func (m Manager) StatusAll(opt StatusOptions) ([]*Status, error) {
	recs, bad, err := m.List()
	if err != nil {
		return nil, err
	}
	all := make([]*Status, 0, len(recs)+len(bad))
	for _, r := range recs {
		all = append(all, m.status(r, opt))
	}
	for _, b := range bad {
		all = append(all, &Status{Name: b.Name, Phase: "unknown", Error: b.Err.Error()})
	}
	slices.SortFunc(all, func(a, b *Status) int { return strings.Compare(a.Name, b.Name) })
	return all, nil
}

func (m Manager) status(r *Record, opt StatusOptions) *Status {
	t := r.Topology
	h := m.Health(r)
	s := &Status{
		Name: r.Name, ID: r.ID, File: r.File, Phase: h.Phase, CreatedAt: r.CreatedAt,
		Problems: h.Problems, Topology: t, Unverified: h.Unverified,
	}
	for _, n := range t.Nodes {
		d, ok := r.Datapaths[n.Name]
		if !ok {
			continue
		}
		ds := DatapathStatus{Node: n.Name, Device: d.Device, Kind: d.Kind, Reason: d.Reason, Running: true}
		if d.Process != nil {
			ds.PID, ds.Running, ds.Log = d.Process.PID, d.Process.Alive(), d.Process.Log
			if st, err := ipipd.ReadStatsFile(ipipd.StatsFileFor(d.Process.Log)); err == nil {
				ds.Stats = &st
			}
		}
		s.Datapaths = append(s.Datapaths, ds)
	}
	live := opt.Live && os.Geteuid() == 0
	for _, ns := range r.Namespaces {
		st := m.namespaceStatus(r, ns, h)
		if live && st.Present {
			ifs, routes, err := kernel.Inspect(ns.Name)
			if err != nil {
				st.InspectError = err.Error()
			}
			st.Interfaces, st.Routes = ifs, routes
		}
		s.Namespaces = append(s.Namespaces, st)
	}
	s.Services, s.ServiceProblems = m.servicesStatus(r, live, h) // services.go
	return s
}

// namespaceStatus is what the record, the topology and the pod's
// supervisor say about one namespace of a lab; nothing live.
func (m Manager) namespaceStatus(r *Record, ns plan.Namespace, h Health) NamespaceStatus {
	t := r.Topology
	st := NamespaceStatus{Namespace: ns.Name, Role: ns.Role, Name: ns.Object, State: h.Namespaces[ns.Name].String()}
	st.Present = h.Namespaces[ns.Name] == netns.Ours
	switch ns.Role {
	case plan.RoleNode:
		if n, ok := t.Node(ns.Object); ok {
			st.IP, st.PodCIDR, st.Bridge = n.IP.String(), n.PodSubnet.String(), n.Bridge
		}
	case plan.RolePod:
		if p, ok := t.Pod(ns.Object); ok {
			st.IP, st.Node = p.IP.String(), p.Node
		}
	case plan.RoleRouter, plan.RoleExternal:
		externalStatus(t, ns, &st)
	case plan.RoleUnderlay:
		st.Name = "underlay"
	}
	if _, ok := r.Pods[ns.Object]; ok && runsContainers(ns.Role) {
		if ps, err := workload.ReadStatus(m.PodStateDir(r.Name, ns.Object)); err == nil {
			st.Pod = &ps
		}
	}
	return st
}

// ObjectStatus is one node or pod of a lab, or its underlay, with what its
// namespace holds now: interfaces, routes, neighbours and FDB entries.
type ObjectStatus struct {
	Lab string `json:"lab"`
	NamespaceStatus
	Neighbours []kernel.Neighbour `json:"neighbours,omitempty"`
	FDB        []kernel.FDBEntry  `json:"fdb,omitempty"`
	// Unverified is set when the namespace could only be checked by name
	// and not read (not root).
	Unverified bool `json:"unverified,omitempty"`
}

// ObjectStatus reports one node or pod of a lab (by its name or its
// namespace's), or the lab's underlay ("underlay"). Reading the namespace
// needs root; without it only the record's view is returned.
func (m Manager) ObjectStatus(labName, object string) (*ObjectStatus, error) {
	if labName == "" {
		return nil, fmt.Errorf("object status needs a lab name: %w", ErrInvalidName)
	}
	t, err := m.Resolve(labName, object, "")
	if err != nil {
		return nil, err
	}
	r, err := m.Load(labName)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(r.Namespaces, func(ns plan.Namespace) bool { return ns.Name == t.Namespace })
	if i < 0 {
		return nil, fmt.Errorf("%s: namespace %q is not in the lab's record: %w", t, t.Namespace, ErrNotFound)
	}
	h := m.Health(r)
	o := &ObjectStatus{Lab: r.Name, NamespaceStatus: m.namespaceStatus(r, r.Namespaces[i], h), Unverified: h.Unverified}
	if h.Unverified || !o.Present {
		return o, nil
	}
	snap, err := kernel.InspectAll(t.Namespace)
	if err != nil {
		o.InspectError = err.Error()
		return o, nil
	}
	o.Interfaces, o.Routes, o.Neighbours, o.FDB = snap.Interfaces, snap.Routes, snap.Neighbours, snap.FDB
	return o, nil
}
