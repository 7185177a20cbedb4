package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/ipipd"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// table writes tab-separated rows as aligned columns, each line indented
// by indent.
type table struct {
	tw     *tabwriter.Writer
	indent string
}

func newTable(w io.Writer, indent string) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), indent: indent}
}

func (t *table) row(cells ...string) {
	fmt.Fprintln(t.tw, t.indent+strings.Join(cells, "\t"))
}

func (t *table) flush() { t.tw.Flush() }

// writeLabList renders every lab on one line, like kubectl get; now makes
// ages reproducible in golden tests.
func writeLabList(w io.Writer, all []*lab.Status, now time.Time, wide bool) {
	t := newTable(w, "")
	head := []string{"NAME", "PHASE", "BACKEND", "NODES", "PODS", "AGE"}
	if wide {
		head = append(head, "CONTAINERS", "NAMESPACES", "FILE")
	}
	t.row(head...)
	var notes []string
	for _, s := range all {
		if s.Error != "" {
			row := []string{s.Name, s.Phase, "-", "-", "-", "-"}
			if wide {
				row = append(row, "-", "-", "-")
			}
			t.row(row...)
			notes = append(notes, fmt.Sprintf("%s (`labctl down %s` removes what is left of it)", s.Error, s.Name))
			continue
		}
		topo := s.Topology
		row := []string{s.Name, s.Phase, backendList(topo), strconv.Itoa(len(topo.Nodes)), strconv.Itoa(len(topo.Pods())), humanAge(now.Sub(s.CreatedAt))}
		if wide {
			ready, total := 0, 0
			for _, ns := range s.Namespaces {
				p := summarizePod(ns, topo, now)
				ready, total = ready+p.ready, total+p.total
			}
			row = append(row, fmt.Sprintf("%d/%d", ready, total), strconv.Itoa(len(s.Namespaces)), dash(s.File))
		}
		t.row(row...)
		if len(s.Problems) > 0 {
			notes = append(notes, fmt.Sprintf("lab %q is degraded: `labctl status %s` says what is missing", s.Name, s.Name))
		}
	}
	t.flush()
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// writeStatusTable renders one lab for people: its network, its
// namespaces and its pods' containers; now makes ages reproducible in
// golden tests.
func writeStatusTable(w io.Writer, s *lab.Status, now time.Time, wide bool) {
	if s.Error != "" {
		fmt.Fprintf(w, "Lab %s  (record unusable)\n  %s\n  `labctl down %s` removes what is left of it\n", s.Name, s.Error, s.Name)
		return
	}
	topo := s.Topology
	fmt.Fprintf(w, "Lab %s  (%s, %s, up %s)\n", s.Name, backendSummary(topo), s.Phase, roundAge(now.Sub(s.CreatedAt)))
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "  DEGRADED: `labctl up --repair %s` restores it:\n", dash(s.File))
		for _, p := range s.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
	}
	if s.File != "" {
		fmt.Fprintf(w, "  file %s\n", s.File)
	}
	nw := topo.Network
	fmt.Fprintf(w, "  underlay %s  cluster %s  services %s%s  mtu %d (pods %d)\n", nw.Underlay, nw.ClusterCIDR, nw.ServiceCIDR, clusterDNSText(topo), nw.MTU, topo.PodMTU())
	if len(topo.Links) > 0 {
		var links []string
		for _, l := range topo.Links {
			links = append(links, fmt.Sprintf("%s-%s %s", l.Nodes[0], l.Nodes[1], l.Backend))
		}
		fmt.Fprintf(w, "  links %s\n", strings.Join(links, ", "))
	}
	if line := outsideLine(topo); line != "" {
		fmt.Fprintf(w, "  %s\n", line)
	}
	if s.Unverified {
		fmt.Fprintln(w, "  (not root: namespaces checked by name only; run as root to see interfaces)")
	}
	fmt.Fprintln(w)
	writeNamespaces(w, s, wide)
	writePods(w, s, now, wide, plan.RolePod)
	writePods(w, s, now, wide, plan.RoleExternal)
	writeServices(w, s, wide) // services.go
	if len(s.Datapaths) > 0 {
		fmt.Fprintln(w, "\nIPIP datapaths:")
		t := newTable(w, "  ")
		for _, d := range s.Datapaths {
			state := "kernel device"
			if d.Kind == "userspace" {
				state = fmt.Sprintf("labctl process %d running", d.PID)
				if !d.Running {
					state = fmt.Sprintf("DEAD: process %d is gone; pods across this node's ipip links are cut off (log: %s)", d.PID, d.Log)
				}
			}
			t.row(d.Node, d.Device, d.Kind, state, "("+d.Reason+")")
			if d.Stats != nil {
				t.row("", "", "", describeDatapathStats(*d.Stats, now), "")
			}
		}
		t.flush()
	}
}

// describeDatapathStats is a userspace datapath's counters on one line,
// with those of its steering program on the underlay device.
func describeDatapathStats(s ipipd.Stats, now time.Time) string {
	line := fmt.Sprintf("%d packets out, %d in (%d GRO super-packets), %d dropped", s.EncapPackets, s.DecapPackets, s.GROPackets, s.Drops.Total())
	if st := s.Steering; st != nil {
		line += fmt.Sprintf("; %s program: %d IPIP to %s, %d other passed untouched, %d lost", st.Device, st.SteeredPackets, st.Target, st.PassedPackets, st.Dropped)
	}
	if age := now.Sub(s.Time); age > 5*time.Second {
		line += fmt.Sprintf(" (as of %s ago)", roundAge(age))
	}
	return line
}

func writeNamespaces(w io.Writer, s *lab.Status, wide bool) {
	t := newTable(w, "")
	if wide {
		t.row("ROLE", "NAME", "NODE", "IP", "POD-CIDR", "NAMESPACE", "STATE", "INTERFACES")
	} else {
		t.row("ROLE", "NAME", "NODE", "IP", "NAMESPACE", "INTERFACES")
	}
	for _, ns := range s.Namespaces {
		ifs := describeInterfaces(ns, wide)
		if wide {
			t.row(ns.Role, dash(ns.Name), dash(ns.Node), dash(ns.IP), dash(ns.PodCIDR), ns.Namespace, ns.State, ifs)
		} else {
			t.row(ns.Role, dash(ns.Name), dash(ns.Node), dash(ns.IP), ns.Namespace, ifs)
		}
	}
	t.flush()
}

// writePods shows the pods (or, with role external, the external hosts)
// that run containers as `kubectl get pods` does, each with its
// containers' states.
func writePods(w io.Writer, s *lab.Status, now time.Time, wide bool, role string) {
	var rows [][]string
	for _, ns := range s.Namespaces {
		p := summarizePod(ns, s.Topology, now)
		if p.total == 0 || ns.Role != role {
			continue
		}
		var cs []string
		if ns.Pod != nil {
			for _, c := range ns.Pod.Containers {
				d := c.Name + " " + c.Summary()
				if wide && c.PID != 0 {
					d += fmt.Sprintf(" pid %d", c.PID)
				}
				cs = append(cs, d)
			}
		}
		row := []string{ns.Name}
		if wide {
			row = append(row, dash(ns.Node+ns.Network), dash(ns.IP)) // a pod has a node, an external host a network
		}
		rows = append(rows, append(row, fmt.Sprintf("%d/%d", p.ready, p.total), p.status, p.restarts, dash(strings.Join(cs, "; "))))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	t := newTable(w, "")
	first, second := "POD", "NODE"
	if role == plan.RoleExternal {
		first, second = "EXTERNAL", "NETWORK"
	}
	if wide {
		t.row(first, second, "IP", "READY", "STATUS", "RESTARTS", "CONTAINERS")
	} else {
		t.row(first, "READY", "STATUS", "RESTARTS", "CONTAINERS")
	}
	for _, r := range rows {
		t.row(r...)
	}
	t.flush()
}

// podSummary is a pod as `kubectl get pods` shows it.
type podSummary struct {
	ready, total int
	status       string
	restarts     string
}

// summarizePod computes READY, STATUS and RESTARTS as kubectl's pod printer
// does: the status is the pod's phase unless a container waits or ended
// with a reason (CrashLoopBackOff, OOMKilled, Error, Completed), the first
// container's reason winning; restarts add up, with the time since the most
// recent one. A pod without containers has total 0.
func summarizePod(ns lab.NamespaceStatus, topo *spec.Topology, now time.Time) podSummary {
	var p podSummary
	if ns.Role != plan.RolePod && ns.Role != plan.RoleExternal {
		return p
	}
	if ns.Pod == nil {
		// Its supervisor's report is gone with its state: nothing is
		// known about the containers the topology gives it.
		if n := topologyContainers(topo, ns); n > 0 {
			p.total, p.status, p.restarts = n, "Unknown", "0"
		}
		return p
	}
	cs := ns.Pod.Containers
	p.total, p.status = len(cs), ns.Pod.Phase
	restarts, running := 0, false
	var last time.Time
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		restarts += c.Restarts
		if prev := c.PreviousRun(); prev != nil && prev.FinishedAt.After(last) {
			last = prev.FinishedAt
		}
		switch {
		case (c.State == workload.StateWaiting || c.State == workload.StateTerminated) && c.Reason != "":
			p.status = c.Reason
		case c.State == workload.StateTerminated && c.Termination != nil && c.Termination.Signal != "":
			p.status = "Signal:" + c.Termination.Signal
		case c.State == workload.StateTerminated && c.Termination != nil:
			p.status = fmt.Sprintf("ExitCode:%d", c.Termination.ExitCode)
		case c.State == workload.StateRunning:
			running = true
			p.ready++ // labctl has no readiness probes: running is ready
		}
	}
	if p.status == workload.ReasonCompleted && running {
		// Some container still runs: kubectl says Running when every
		// container is ready, NotReady otherwise.
		p.status = "NotReady"
		if p.ready == p.total {
			p.status = workload.PhaseRunning
		}
	}
	p.restarts = strconv.Itoa(restarts)
	if restarts > 0 && !last.IsZero() {
		p.restarts = fmt.Sprintf("%d (%s ago)", restarts, humanAge(now.Sub(last)))
	}
	return p
}

// writeObjectTable renders one node, pod or the underlay with what its
// namespace holds.
func writeObjectTable(w io.Writer, o *lab.ObjectStatus, now time.Time, wide bool) {
	what := fmt.Sprintf("%s %s", kindOf(o.Role), o.Name)
	switch o.Role {
	case plan.RoleUnderlay, plan.RoleRouter:
		what = kindOf(o.Role)
	case plan.RoleExternal:
		what = "External host " + o.Name
	}
	facts := []string{"namespace " + o.Namespace}
	if o.Node != "" {
		facts = append(facts, "node "+o.Node)
	}
	if o.IP != "" {
		facts = append(facts, "IP "+o.IP)
	}
	if o.PodCIDR != "" {
		facts = append(facts, "pod CIDR "+o.PodCIDR)
	}
	if o.Bridge != "" {
		facts = append(facts, "bridge "+o.Bridge)
	}
	facts = append(facts, externalFacts(o.NamespaceStatus)...)
	fmt.Fprintf(w, "%s of lab %s: %s\n", what, o.Lab, strings.Join(facts, ", "))
	switch {
	case o.State == "foreign":
		fmt.Fprintf(w, "  FOREIGN: the name %s now belongs to a namespace labctl did not create for this lab\n", o.Namespace)
	case !o.Present:
		fmt.Fprintf(w, "  MISSING: namespace %s is gone (`labctl up --repair` restores it)\n", o.Namespace)
	case o.Unverified:
		fmt.Fprintln(w, "  (not root: run as root to read its interfaces, routes, neighbours and FDB)")
	case o.InspectError != "":
		fmt.Fprintf(w, "  error: %s\n", o.InspectError)
	}
	if o.Present && !o.Unverified && o.InspectError == "" {
		writeInterfaces(w, o.Interfaces)
		writeRoutes(w, o.Routes, wide)
		writeNeighbours(w, o.Neighbours, wide)
		writeFDB(w, o.FDB, wide)
	}
	if o.Pod != nil {
		writeContainers(w, o.Pod.Containers, now, wide)
	}
}

// section starts a titled part of an object's table, or says it is empty.
func section(w io.Writer, title string, n int) bool {
	if n == 0 {
		fmt.Fprintf(w, "\n%s: none\n", title)
		return false
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	return true
}

func writeInterfaces(w io.Writer, ifs []kernel.Interface) {
	if !section(w, "Interfaces", len(ifs)) {
		return
	}
	t := newTable(w, "  ")
	t.row("NAME", "KIND", "STATE", "MTU", "MAC", "MASTER", "ADDRESSES")
	for _, i := range ifs {
		t.row(i.Name, i.Kind, i.State, strconv.Itoa(i.MTU), dash(i.MAC), dash(i.Master), dash(strings.Join(i.Addresses, ",")))
	}
	t.flush()
}

func writeRoutes(w io.Writer, rs []kernel.Route, wide bool) {
	if !section(w, "Routes", len(rs)) {
		return
	}
	t := newTable(w, "  ")
	head := []string{"DESTINATION", "TYPE", "VIA", "DEV", "PROTOCOL", "SCOPE", "FLAGS"}
	if wide {
		head = append(head, "TABLE", "SRC", "METRIC")
	}
	t.row(head...)
	for _, r := range rs {
		row := []string{r.Dst, r.Type, dash(r.Via), dash(r.Device), r.Protocol, r.Scope, dash(strings.Join(r.Flags, ","))}
		if wide {
			row = append(row, r.Table, dash(r.Src), strconv.Itoa(r.Metric))
		}
		t.row(row...)
	}
	t.flush()
}

func writeNeighbours(w io.Writer, ns []kernel.Neighbour, wide bool) {
	if !section(w, "Neighbours", len(ns)) {
		return
	}
	t := newTable(w, "  ")
	head := []string{"IP", "LLADDR", "DEV", "STATE"}
	if wide {
		head = append(head, "FLAGS")
	}
	t.row(head...)
	for _, n := range ns {
		row := []string{n.IP, dash(n.MAC), n.Device, n.State}
		if wide {
			row = append(row, dash(strings.Join(n.Flags, ",")))
		}
		t.row(row...)
	}
	t.flush()
}

func writeFDB(w io.Writer, es []kernel.FDBEntry, wide bool) {
	if !section(w, "FDB", len(es)) {
		return
	}
	t := newTable(w, "  ")
	head := []string{"MAC", "DEV", "MASTER", "DST", "VNI", "STATE", "FLAGS"}
	if wide {
		head = append(head, "VLAN")
	}
	t.row(head...)
	for _, e := range es {
		row := []string{e.MAC, e.Device, dash(e.Master), dash(e.Dst), dashInt(e.VNI), e.State, dash(strings.Join(e.Flags, ","))}
		if wide {
			row = append(row, dashInt(e.VLAN))
		}
		t.row(row...)
	}
	t.flush()
}

func writeContainers(w io.Writer, cs []workload.ContainerStatus, now time.Time, wide bool) {
	if !section(w, "Containers", len(cs)) {
		return
	}
	t := newTable(w, "  ")
	head := []string{"NAME", "STATE", "RESTARTS"}
	if wide {
		head = append(head, "PID", "STARTED")
	}
	t.row(head...)
	for _, c := range cs {
		restarts := strconv.Itoa(c.Restarts)
		if prev := c.PreviousRun(); c.Restarts > 0 && prev != nil && !prev.FinishedAt.IsZero() {
			restarts += fmt.Sprintf(" (%s ago)", humanAge(now.Sub(prev.FinishedAt)))
		}
		row := []string{c.Name, c.Summary(), restarts}
		if wide {
			started := "-"
			if !c.StartedAt.IsZero() {
				started = humanAge(now.Sub(c.StartedAt)) + " ago"
			}
			row = append(row, dashInt(c.PID), started)
		}
		t.row(row...)
	}
	t.flush()
}

// backendSummary names the backend, or each backend in use when links mix them.
func backendSummary(t *spec.Topology) string {
	used := t.Backends()
	if len(used) == 1 {
		b := string(used[0])
		if used[0] == spec.BackendVXLAN {
			b += " (" + string(t.Network.VXLAN.Mode) + ")"
		}
		return b
	}
	names := make([]string, len(used))
	for i, b := range used {
		names[i] = string(b)
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1] + " per link"
}

// backendList names the backends in use, for a column.
func backendList(t *spec.Topology) string {
	var names []string
	for _, b := range t.Backends() {
		names = append(names, string(b))
	}
	return strings.Join(names, ",")
}

func describeInterfaces(ns lab.NamespaceStatus, wide bool) string {
	switch {
	case ns.State == "foreign":
		return "FOREIGN (the name now belongs to another namespace)"
	case !ns.Present:
		return "MISSING (namespace is gone)"
	case ns.InspectError != "":
		return "error: " + ns.InspectError
	}
	if ns.Interfaces == nil {
		return "(run as root to see interfaces)"
	}
	var parts []string
	for _, i := range ns.Interfaces {
		if i.Name == "lo" {
			continue
		}
		if ns.Role == plan.RoleUnderlay && i.Kind == "veth" {
			continue // summarised on the bridge
		}
		if ns.Role == plan.RoleNode && i.Master != "" {
			continue // pod veths are summarised on the bridge
		}
		p := i.Name
		if len(i.Addresses) > 0 {
			p += " " + strings.Join(i.Addresses, ",")
		}
		if wide {
			if i.MAC != "" {
				p += " " + i.MAC
			}
			p += fmt.Sprintf(" mtu %d", i.MTU)
		}
		if i.Kind == "bridge" {
			n := 0
			for _, port := range ns.Interfaces {
				if port.Master == i.Name {
					n++
				}
			}
			p += fmt.Sprintf(" [bridge, %d %s]", n, plural(n, "port"))
		}
		if i.State != "up" {
			p += " (down)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dashInt(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func roundAge(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// humanAge renders an age as kubectl's AGE column does: two significant
// units while they matter ("90s", "5m30s", "3h20m", "2d4h"), one after.
func humanAge(d time.Duration) string {
	s := int(d / time.Second)
	m, h := s/60, s/3600
	days := h / 24
	switch {
	case s < 0:
		return "0s"
	case s < 120:
		return fmt.Sprintf("%ds", s)
	case m < 10:
		return unitPair(m, "m", s%60, "s")
	case m < 180:
		return fmt.Sprintf("%dm", m)
	case h < 8:
		return unitPair(h, "h", m%60, "m")
	case h < 48:
		return fmt.Sprintf("%dh", h)
	case h < 24*8:
		return unitPair(days, "d", h%24, "h")
	case days < 365*2:
		return fmt.Sprintf("%dd", days)
	case days < 365*8:
		return unitPair(days/365, "y", days%365, "d")
	}
	return fmt.Sprintf("%dy", days/365)
}

// unitPair is "5m30s", or "5m" when the smaller unit is 0.
func unitPair(big int, bigUnit string, small int, smallUnit string) string {
	if small == 0 {
		return strconv.Itoa(big) + bigUnit
	}
	return fmt.Sprintf("%d%s%d%s", big, bigUnit, small, smallUnit)
}
