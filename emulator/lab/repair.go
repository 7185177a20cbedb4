package lab

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/workload"
)

// repair restores a degraded lab. Namespaces that are missing are built
// again from the lab's plan, together with what lived on them (a node's
// pods are attached to its bridge, so a missing node takes its pods with
// it; a missing underlay takes everything); supervisors and IPIP datapaths
// that died are started again. What survived is left as it is, running
// containers included.
func (m Manager) repair(ctx context.Context, rec *Record, p *plan.Plan, h Health, opt UpOptions) (*Record, error) {
	name := rec.Name
	if len(h.Foreign) > 0 {
		return rec, fmt.Errorf("up %q: cannot repair: %s now held by namespaces labctl did not create for this lab; `labctl down %s` and up again: %w",
			name, quoted(h.Foreign), name, ErrConflict)
	}
	t := rec.Topology
	missing := map[string]bool{}
	for _, ns := range h.Missing {
		missing[ns] = true
	}
	rebuild := map[string]bool{}
	for _, ns := range rec.Namespaces {
		if missing[ns.Name] || missing[plan.UnderlayNamespace(name)] {
			rebuild[ns.Name] = true
		}
	}
	for _, n := range t.Nodes {
		if rebuild[plan.NamespaceName(name, n.Name)] {
			for _, pod := range n.Pods {
				rebuild[plan.NamespaceName(name, pod.Name)] = true
			}
		}
	}
	restart := map[string]bool{}
	for _, pod := range t.Pods() {
		if len(pod.Containers) > 0 && rebuild[plan.NamespaceName(name, pod.Name)] {
			restart[pod.Name] = true
		}
	}
	for _, e := range externalsToRestart(rec, rebuild) {
		restart[e] = true
	}
	for _, pod := range h.DeadPods {
		restart[pod] = true
	}
	var done []string

	// Stop what is replaced: supervisors of pods that restart (StopPod
	// also clears what a dead one left), datapaths of rebuilt nodes.
	var shims []workload.Shim
	for pod := range restart {
		if s, ok := rec.Pods[pod]; ok {
			shims = append(shims, s)
			delete(rec.Pods, pod)
		}
	}
	err := workload.StopPods(shims, workload.DefaultGracePeriod)
	deadDatapath := map[string]bool{}
	for _, node := range h.DeadDatapaths {
		deadDatapath[node] = true
	}
	for node, d := range rec.Datapaths {
		if d.Process != nil && rebuild[plan.NamespaceName(name, node)] {
			err = errors.Join(err, d.Process.Stop(2*time.Second))
		}
	}
	// Hostname holders of rebuilt nodes, and dead ones, start again.
	hostnames := map[string]bool{}
	for _, node := range h.DeadHostnames {
		hostnames[node] = true
	}
	for _, n := range t.Nodes {
		if _, ok := rec.Hostnames[n.Name]; ok && rebuild[plan.NamespaceName(name, n.Name)] {
			hostnames[n.Name] = true
		}
	}
	err = errors.Join(err, m.stopNodes(rec, hostnames))
	if err != nil {
		return rec, fmt.Errorf("up %q: repair: %w", name, err)
	}

	// Remove the remains of what is rebuilt (the pods of a missing node
	// are still there, cut off), and anything living in them.
	if err := m.clearNamespaces(rec, rebuild); err != nil {
		return rec, fmt.Errorf("up %q: repair: %w", name, err)
	}

	// A namespace deleted by name lives on while a process holds it, and
	// with it its veth pair: remove the stale end in the surviving node or
	// underlay, or the new veth cannot take its name.
	underlay := plan.UnderlayNamespace(name)
	for _, n := range t.Nodes {
		nodeNS := plan.NamespaceName(name, n.Name)
		if rebuild[nodeNS] && !rebuild[underlay] {
			if err := kernel.DeleteLinks(underlay, []string{plan.VethName(n.Name)}); err != nil {
				return rec, fmt.Errorf("up %q: repair: %w", name, err)
			}
		}
		if rebuild[nodeNS] {
			continue
		}
		var stale []string
		for _, pod := range n.Pods {
			if rebuild[plan.NamespaceName(name, pod.Name)] {
				stale = append(stale, t.HostVeth(pod.Name))
			}
		}
		if len(stale) > 0 {
			if err := kernel.DeleteLinks(nodeNS, stale); err != nil {
				return rec, fmt.Errorf("up %q: repair: %w", name, err)
			}
		}
	}

	if stale := staleExternalVeths(rec, rebuild); len(stale) > 0 && !rebuild[underlay] {
		if err := kernel.DeleteLinks(underlay, stale); err != nil {
			return rec, fmt.Errorf("up %q: repair: %w", name, err)
		}
	}

	var existing []string
	for _, ns := range rec.Namespaces {
		if !rebuild[ns.Name] {
			existing = append(existing, ns.Name)
		}
	}
	start := time.Now()
	res, err := kernel.Apply(ctx, p.Only(rebuild), kernel.Options{
		Owner: m.Ownership(), LabID: rec.ID, Workers: opt.Workers, Progress: opt.Progress, Existing: existing,
	})
	if err != nil {
		_ = m.save(rec)
		return rec, fmt.Errorf("up %q: repair: %w (the lab is still degraded)", name, err)
	}
	var rebuilt []string
	for ns := range rebuild {
		rebuilt = append(rebuilt, ns)
	}
	if len(rebuilt) > 0 {
		sort.Strings(rebuilt)
		done = append(done, "rebuilt namespaces "+quoted(rebuilt))
	}
	if err := m.startDatapaths(rec, res); err != nil {
		_ = m.save(rec)
		return rec, fmt.Errorf("up %q: repair: %w", name, err)
	}
	for _, ns := range rec.Namespaces {
		d, ok := rec.Datapaths[ns.Object]
		if !ok || !deadDatapath[ns.Object] || rebuild[ns.Name] {
			continue
		}
		if err := m.startDatapath(rec, ns, d); err != nil {
			_ = m.save(rec)
			return rec, fmt.Errorf("up %q: repair: %w", name, err)
		}
		done = append(done, fmt.Sprintf("restarted the IPIP datapath of node %q", ns.Object))
	}
	if len(hostnames) > 0 {
		if err := m.startNodes(ctx, rec, hostnames); err != nil {
			_ = m.save(rec)
			return rec, fmt.Errorf("up %q: repair: %w", name, err)
		}
		var nodes []string
		for node := range hostnames {
			nodes = append(nodes, node)
		}
		sort.Strings(nodes)
		done = append(done, "restarted the hostname holders of nodes "+quoted(nodes))
	}
	rec.Timing.Network = time.Since(start)
	start = time.Now()
	if err := m.startContainers(ctx, rec, restart); err != nil {
		_ = m.save(rec)
		return rec, fmt.Errorf("up %q: repair: %w", name, err)
	}
	rec.Timing.Containers = time.Since(start)
	if len(restart) > 0 {
		var pods, externals []string
		for pod := range restart {
			if supervisedKind(rec, pod) == "pod" {
				pods = append(pods, pod)
			} else {
				externals = append(externals, pod)
			}
		}
		sort.Strings(pods)
		sort.Strings(externals)
		if len(pods) > 0 {
			done = append(done, "restarted the containers of pods "+quoted(pods))
		}
		if len(externals) > 0 {
			done = append(done, "restarted the containers of external hosts "+quoted(externals))
		}
	}
	rec.Repaired = append([]string{}, done...)
	if err := m.save(rec); err != nil {
		return rec, fmt.Errorf("up %q: save record: %w", name, err)
	}
	return rec, nil
}

// clearNamespaces deletes the lab's namespaces among names that still
// exist, after ending every process in them, and releases the records of
// those that are gone, so they can be created again.
func (m Manager) clearNamespaces(rec *Record, names map[string]bool) error {
	own := m.Ownership()
	var recs []netns.OwnedNamespace
	var held []netns.Handle
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for _, ns := range rec.Namespaces {
		if !names[ns.Name] {
			continue
		}
		o, err := own.Get(ns.Name)
		if err != nil {
			// The ownership record is lost: the marker proves it.
			id, ierr := netns.IdentifyPath(netns.Path(ns.Name))
			if ierr != nil {
				continue // nothing there
			}
			if !id.Marked || id.Marker.LabID != rec.ID || id.Marker.State != own.Tag {
				return fmt.Errorf("namespace %q: not this lab's", ns.Name)
			}
			o = netns.OwnedNamespace{Name: ns.Name, Lab: rec.Name, LabID: rec.ID, Cookie: id.Cookie}
		}
		if h, st := o.Open(); st == netns.Ours {
			held = append(held, h)
		}
		recs = append(recs, o)
	}
	proof, err := newProvenance(rec.Name, held)
	if err != nil {
		return err
	}
	pids, err := netns.ProcessesIn(held)
	if err != nil {
		return err
	}
	endProcesses(pids, proof, execGrace)
	for _, h := range held {
		h.Close()
	}
	held = nil
	left, err := kernel.DeleteNamespaces(own, recs)
	if len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("%s now held by namespaces labctl did not create", quoted(left)))
	}
	return err
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
