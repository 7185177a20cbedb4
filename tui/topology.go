package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/graph"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

type topoKeys struct {
	Up, Down, PageUp, PageDown, Select, All, None, Open, Graph, Back key.Binding
}

// topoMode is what the topology pane shows.
type topoMode uint8

const (
	modeTree   topoMode = iota // nodes, pods and interfaces to pick from
	modeGraph                  // the picture `labctl graph` draws
	modeObject                 // one namespace's routes, neighbours and FDB
)

// topoRow is one line of the tree. Only namespace and interface rows take
// the cursor.
type topoRow struct {
	kind  rowKind
	label string // the node or pod ("underlay"): the capture label
	ns    string // the namespace's name under /run/netns
	iface string
	text  string
}

type rowKind uint8

const (
	rowText rowKind = iota
	rowNamespace
	rowInterface
)

func (r topoRow) selectable() bool { return r.kind != rowText }

// objectMsg carries one namespace's status for the object view.
type objectMsg struct {
	object string
	st     *lab.ObjectStatus
	err    error
}

// topologyPane shows the lab: its namespaces with their interfaces,
// addresses and containers, the backend of every node pair, and the graph.
// Interfaces picked here are what `c` captures on.
type topologyPane struct {
	keys topoKeys
	w, h int
	mode topoMode

	st       *lab.Status
	topo     *spec.Topology // set without a lab: a topology file
	file     string
	rows     []topoRow
	cursor   int // index into rows, always a selectable row
	top      int
	selected map[string]bool // "label:iface"
	graph    viewport.Model
	object   viewport.Model
	objName  string
}

func newTopologyPane() *topologyPane {
	t := &topologyPane{
		keys: topoKeys{
			Up: keyUp, Down: keyDown, PageUp: keyPageUp, PageDown: keyPageDown,
			Select: binding([]string{" "}, "space", "pick"),
			All:    binding([]string{"a"}, "a", "all"),
			None:   binding([]string{"n"}, "n", "none"),
			Open:   binding([]string{"enter"}, "enter", "details"),
			Graph:  binding([]string{"v"}, "v", "graph"),
			Back:   keyBack,
		},
		selected: map[string]bool{},
		graph:    viewport.New(0, 0),
		object:   viewport.New(0, 0),
	}
	t.graph.KeyMap, t.object.KeyMap = viewportKeys(), viewportKeys()
	t.graph.SetHorizontalStep(8)
	t.object.SetHorizontalStep(8)
	return t
}

func (t *topologyPane) title() string { return "Topology" }

func (t *topologyPane) setSize(w, h int) {
	t.w, t.h = w, h
	t.graph.Width, t.graph.Height = w, max(h, 1)
	t.object.Width, t.object.Height = w, max(h, 1)
	t.scrollIntoView()
}

func (t *topologyPane) live() bool { return t.st != nil }

func (t *topologyPane) shortHelp() []key.Binding {
	switch {
	case !t.live():
		return []key.Binding{t.keys.Up, t.keys.Down, keyLeft, keyRight}
	case t.mode == modeGraph:
		return []key.Binding{t.keys.Graph, t.keys.Down, keyRight}
	case t.mode == modeObject:
		return []key.Binding{t.keys.Back, t.keys.Down}
	}
	return []key.Binding{t.keys.Select, t.keys.Graph, t.keys.Open, t.keys.All}
}

func (t *topologyPane) fullHelp() [][]key.Binding {
	return [][]key.Binding{
		{t.keys.Up, t.keys.Down, t.keys.PageUp, t.keys.PageDown},
		{t.keys.Select, t.keys.All, t.keys.None},
		{t.keys.Open, t.keys.Graph, t.keys.Back},
	}
}

// showFile shows a topology that is not running: its graph only.
func (t *topologyPane) showFile(topo *spec.Topology, file string) {
	t.topo, t.file, t.mode = topo, file, modeGraph
	text := graph.FromTopology(topo).Text()
	hint := fmt.Sprintf("A topology file: nothing of it is running.\n"+
		"  the file:       %s\n"+
		"  bring it up:    sudo labctl up %s\n"+
		"  then watch it:  sudo labctl tui %s\n\n", file, file, topo.Name)
	t.graph.SetContent(hint + text)
}

// setStatus takes in a fresh status of the lab.
func (t *topologyPane) setStatus(st *lab.Status) {
	t.st = st
	var at topoRow
	if t.cursor < len(t.rows) {
		at = t.rows[t.cursor]
	}
	t.rows = buildRows(st, t.selected)
	// Keep the cursor on the same namespace or interface.
	t.cursor = slices.IndexFunc(t.rows, func(r topoRow) bool {
		return r.selectable() && r.label == at.label && r.iface == at.iface
	})
	if t.cursor < 0 {
		t.cursor = slices.IndexFunc(t.rows, topoRow.selectable)
	}
	t.cursor = max(t.cursor, 0)
	if g, err := graph.FromStatus(st); err == nil {
		t.graph.SetContent(g.Text())
	} else {
		t.graph.SetContent(err.Error())
	}
	// Interfaces that went away are no longer selected.
	for k := range t.selected {
		label, iface, _ := strings.Cut(k, ":")
		if !slices.ContainsFunc(t.rows, func(r topoRow) bool { return r.label == label && r.iface == iface }) {
			delete(t.selected, k)
		}
	}
	t.scrollIntoView()
}

// selectTargets marks interfaces as picked, by "label:iface" (the capture's
// names); unknown ones are reported.
func (t *topologyPane) selectTargets(names []string) []string {
	var unknown []string
	for _, n := range names {
		label, iface, _ := strings.Cut(n, ":")
		found := false
		for _, r := range t.rows {
			if r.kind == rowInterface && (label == "*" || r.label == label) && (iface == "" || r.iface == iface) {
				t.selected[r.label+":"+r.iface] = true
				found = true
			}
		}
		if !found {
			unknown = append(unknown, n)
		}
	}
	return unknown
}

// targets are the picked interfaces as capture targets, in the tree's
// order.
func (t *topologyPane) targets() []capture.Target {
	var out []capture.Target
	for _, r := range t.rows {
		if r.kind == rowInterface && t.selected[r.label+":"+r.iface] {
			out = append(out, capture.Target{Label: r.label, Namespace: netns.Path(r.ns), Interface: r.iface})
		}
	}
	return out
}

// pickedObjects are the nodes and pods with a picked interface, in order:
// the probe pane's first guess at from and to.
func (t *topologyPane) pickedObjects() []string {
	var out []string
	for _, tg := range t.targets() {
		if tg.Label != "underlay" && !slices.Contains(out, tg.Label) {
			out = append(out, tg.Label)
		}
	}
	return out
}

// buildRows lays the status out as the tree: the underlay, then each node
// followed by its pods, each with its interfaces.
func buildRows(st *lab.Status, selected map[string]bool) []topoRow {
	var rows []topoRow
	byNS := map[string]lab.NamespaceStatus{}
	for _, ns := range st.Namespaces {
		byNS[ns.Name] = ns
	}
	var g *graph.Graph
	if st.Topology != nil {
		g, _ = graph.FromStatus(st)
	}
	add := func(ns lab.NamespaceStatus) {
		rows = append(rows, topoRow{kind: rowNamespace, label: ns.Name, ns: ns.Namespace, text: namespaceText(st, ns)})
		switch {
		case !ns.Present:
			return
		case len(ns.Interfaces) == 0 && ns.InspectError != "":
			rows = append(rows, topoRow{text: "    interfaces unreadable: " + ns.InspectError})
		case len(ns.Interfaces) == 0:
			rows = append(rows, topoRow{text: "    interfaces unknown: reading them needs root"})
		}
		for _, ifc := range ns.Interfaces {
			if ifc.Name == "lo" {
				continue
			}
			rows = append(rows, topoRow{kind: rowInterface, label: ns.Name, ns: ns.Namespace, iface: ifc.Name, text: interfaceText(ifc, tunnelNote(g, ns.Name, ifc.Name, st))})
		}
		if ns.Pod != nil {
			var cs []string
			for _, c := range ns.Pod.Containers {
				s := c.Name + " " + c.Summary()
				if c.Restarts > 0 {
					s += fmt.Sprintf(" (%d restarts)", c.Restarts)
				}
				cs = append(cs, s)
			}
			if len(cs) > 0 {
				rows = append(rows, topoRow{text: "    containers: " + strings.Join(cs, " · ")})
			}
		}
	}
	for _, ns := range st.Namespaces {
		if ns.Role == plan.RoleUnderlay {
			add(ns)
		}
	}
	// Nodes in topology order, each followed by its pods.
	for _, ns := range st.Namespaces {
		if ns.Role != plan.RoleNode {
			continue
		}
		rows = append(rows, topoRow{})
		add(ns)
		for _, pod := range st.Namespaces {
			if pod.Role == plan.RolePod && pod.Node == ns.Name {
				add(pod)
			}
		}
	}
	if g != nil {
		text := g.Text()
		for _, head := range []string{"\nnode pairs\n", "\noverlay\n"} {
			if i := strings.Index(text, head); i >= 0 {
				rows = append(rows, topoRow{})
				for _, l := range strings.Split(strings.TrimRight(text[i+1:], "\n"), "\n") {
					rows = append(rows, topoRow{text: l})
				}
				break
			}
		}
	}
	return rows
}

// namespaceText is a node's, pod's or the underlay's line: its name, its
// role in the KIND column, and what it is.
func namespaceText(st *lab.Status, ns lab.NamespaceStatus) string {
	var facts []string
	role := ns.Role
	switch ns.Role {
	case plan.RoleUnderlay:
		role = "switch"
		if st.Topology != nil {
			facts = append(facts, st.Topology.Network.Underlay.String())
		}
	case plan.RoleNode:
		facts = append(facts, ns.IP)
		if ns.PodCIDR != "" {
			facts = append(facts, "pods "+ns.PodCIDR)
		}
	case plan.RolePod:
		facts = append(facts, ns.IP+" on "+ns.Node)
		if ns.Pod != nil {
			facts = append(facts, podSummary(ns.Pod))
		}
	}
	switch {
	case ns.State == "foreign":
		facts = append(facts, "FOREIGN: not this lab's namespace")
	case !ns.Present:
		facts = append(facts, "MISSING (labctl up --repair)")
	}
	return fmt.Sprintf("%-18s %-7s %s", ns.Name, role, strings.Join(facts, " · "))
}

// podSummary is READY and STATUS as `labctl status` shows them, short.
func podSummary(p *workload.PodStatus) string {
	ready := 0
	status := p.Phase
	for _, c := range p.Containers {
		if c.State == workload.StateRunning {
			ready++
		} else if c.Reason != "" && status == workload.PhaseRunning {
			status = c.Reason
		}
	}
	return fmt.Sprintf("%d/%d %s", ready, len(p.Containers), status)
}

// interfaceText is an interface's line after its check box.
func interfaceText(ifc interfaceInfo, note string) string {
	what := strings.Join(ifc.Addresses, ", ")
	if ifc.Master != "" {
		what = strings.TrimSpace("on " + ifc.Master + " " + what)
	}
	if ifc.State != "up" && ifc.State != "unknown" {
		what = strings.TrimSpace(what + " " + strings.ToUpper(ifc.State))
	}
	switch {
	case note != "" && what != "":
		what += " · " + note
	case note != "":
		what = note
	}
	return fmt.Sprintf("%-12s %-7s %s", ifc.Name, ifc.Kind, what)
}

// tunnelNote says what a tunnel device carries, from the graph: "vni 1,
// udp 8472", "userspace datapath"; and marks the devices of labctl's
// userspace IPIP datapath ("tunl0-gro", "tunl0-rx"), which a student would
// otherwise wonder about.
func tunnelNote(g *graph.Graph, node, dev string, st *lab.Status) string {
	for _, d := range st.Datapaths {
		if d.Node == node && d.Kind == "userspace" && strings.HasPrefix(dev, d.Device+"-") {
			return "part of " + d.Device + "'s userspace datapath"
		}
	}
	if g == nil {
		return ""
	}
	for _, n := range g.Nodes {
		if n.Name != node {
			continue
		}
		for _, tn := range n.Tunnels {
			if tn.Device != dev {
				continue
			}
			if tn.Backend == spec.BackendVXLAN {
				return fmt.Sprintf("vni %d, udp %d", tn.VNI, tn.Port)
			}
			if tn.Datapath != "" && tn.Datapath != spec.DatapathAuto {
				return tn.Datapath + " datapath"
			}
			return string(tn.Backend)
		}
	}
	return ""
}

// interfaceInfo is an interface as the lab's status lists it.
type interfaceInfo = kernel.Interface

func neighbourText(n kernel.Neighbour) string {
	s := n.IP + " dev " + n.Device
	if n.MAC != "" {
		s += " lladdr " + n.MAC
	}
	s += " " + strings.ToUpper(n.State)
	for _, f := range n.Flags {
		s += " " + f
	}
	return s
}

func fdbText(f kernel.FDBEntry) string {
	s := f.MAC + " dev " + f.Device
	if f.Dst != "" {
		s += " dst " + f.Dst
	}
	if f.VNI != 0 {
		s += fmt.Sprintf(" vni %d", f.VNI)
	}
	if f.Master != "" {
		s += " master " + f.Master
	}
	for _, fl := range f.Flags {
		s += " " + fl
	}
	return s + " " + f.State
}

// rowsShown is how many tree rows fit under the header.
func (t *topologyPane) rowsShown() int { return max(t.h-1, 1) }

func (t *topologyPane) scrollIntoView() {
	rows := t.rowsShown()
	if t.cursor < t.top {
		t.top = t.cursor
	}
	if t.cursor >= t.top+rows {
		t.top = t.cursor - rows + 1
	}
	// Show the blank line and headings above the first selectable row.
	if first := slices.IndexFunc(t.rows, topoRow.selectable); t.cursor == first {
		t.top = 0
	}
	t.top = min(max(t.top, 0), max(len(t.rows)-rows, 0))
}

// move goes delta selectable rows up or down.
func (t *topologyPane) move(delta int) {
	step := 1
	if delta < 0 {
		step, delta = -1, -delta
	}
	for ; delta > 0; delta-- {
		next := t.cursor + step
		for next >= 0 && next < len(t.rows) && !t.rows[next].selectable() {
			next += step
		}
		if next < 0 || next >= len(t.rows) {
			break
		}
		t.cursor = next
	}
	t.scrollIntoView()
}

// toggle picks or drops the interface under the cursor, or every
// interface of the namespace under it.
func (t *topologyPane) toggle() {
	if t.cursor >= len(t.rows) {
		return
	}
	r := t.rows[t.cursor]
	switch r.kind {
	case rowInterface:
		k := r.label + ":" + r.iface
		t.selected[k] = !t.selected[k]
		if !t.selected[k] {
			delete(t.selected, k)
		}
	case rowNamespace:
		var keys []string
		all := true
		for _, o := range t.rows {
			if o.kind == rowInterface && o.label == r.label {
				k := o.label + ":" + o.iface
				keys = append(keys, k)
				all = all && t.selected[k]
			}
		}
		for _, k := range keys {
			if all {
				delete(t.selected, k)
			} else {
				t.selected[k] = true
			}
		}
	}
}

func (t *topologyPane) update(ctx context.Context, b Backend, msg tea.Msg) tea.Cmd {
	if m, ok := msg.(objectMsg); ok {
		if m.object != t.objName {
			return nil
		}
		if m.err != nil {
			t.object.SetContent(m.err.Error())
		} else {
			t.object.SetContent(objectText(m.st))
		}
		return nil
	}
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	if t.mode != modeTree {
		if t.live() && (key.Matches(k, t.keys.Back) || (t.mode == modeGraph && key.Matches(k, t.keys.Graph))) {
			t.mode = modeTree
			return nil
		}
		var cmd tea.Cmd
		if t.mode == modeGraph {
			t.graph, cmd = t.graph.Update(msg)
		} else {
			t.object, cmd = t.object.Update(msg)
		}
		return cmd
	}
	switch {
	case key.Matches(k, t.keys.Up):
		t.move(-1)
	case key.Matches(k, t.keys.Down):
		t.move(1)
	case key.Matches(k, t.keys.PageUp):
		t.move(-t.rowsShown())
	case key.Matches(k, t.keys.PageDown):
		t.move(t.rowsShown())
	case key.Matches(k, t.keys.Select):
		t.toggle()
	case key.Matches(k, t.keys.All):
		for _, r := range t.rows {
			if r.kind == rowInterface {
				t.selected[r.label+":"+r.iface] = true
			}
		}
	case key.Matches(k, t.keys.None):
		clear(t.selected)
	case key.Matches(k, t.keys.Graph):
		t.mode = modeGraph
	case key.Matches(k, t.keys.Open):
		if t.cursor < len(t.rows) && t.rows[t.cursor].selectable() {
			name := t.rows[t.cursor].label
			t.mode, t.objName = modeObject, name
			t.object.SetContent("reading " + name + "…")
			t.object.GotoTop()
			return func() tea.Msg {
				st, err := b.Object(ctx, name)
				return objectMsg{object: name, st: st, err: err}
			}
		}
	}
	return nil
}

func (t *topologyPane) view() string {
	switch t.mode {
	case modeGraph:
		return block(t.graph.View(), t.w, t.h)
	case modeObject:
		return block(t.object.View(), t.w, t.h)
	}
	var b strings.Builder
	b.WriteString(styleHeader.Render(fit("  NAME               KIND    ADDRESSES · STATE", t.w)))
	b.WriteByte('\n')
	for i := t.top; i < min(t.top+t.rowsShown(), len(t.rows)); i++ {
		r := t.rows[i]
		var line string
		switch r.kind {
		case rowInterface:
			box := "[ ]"
			if t.selected[r.label+":"+r.iface] {
				box = "[x]"
			}
			line = "    " + box + " " + r.text
		default:
			line = "  " + r.text
		}
		if i == t.cursor {
			line = "›" + line[1:]
		}
		line = fit(line, t.w)
		switch {
		case i == t.cursor:
			line = styleCursor.Render(line)
		case r.kind == rowNamespace:
			line = styleTitle.Render(line)
		case r.kind == rowInterface && t.selected[r.label+":"+r.iface]:
			line = styleSelected.Render(line)
		case r.kind == rowText:
			line = styleDim.Render(line)
		}
		b.WriteString(line + "\n")
	}
	return block(b.String(), t.w, t.h)
}

// objectText is one namespace's status, as `labctl status LAB OBJECT`
// lists it, in short.
func objectText(o *lab.ObjectStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (namespace %s)   esc: back\n", o.Name, o.Namespace)
	if !o.Present {
		fmt.Fprintf(&b, "\nthe namespace is %s\n", o.State)
		return b.String()
	}
	b.WriteString("\n" + styleTitle.Render("Interfaces") + "\n")
	for _, ifc := range o.Interfaces {
		b.WriteString("  " + interfaceText(ifc, "") + "\n")
	}
	b.WriteString("\n" + styleTitle.Render("Routes") + "\n")
	for _, r := range o.Routes {
		line := r.Dst
		if r.Type != "unicast" {
			line = r.Type + " " + line
		}
		if r.Via != "" {
			line += " via " + r.Via
		}
		if r.Device != "" {
			line += " dev " + r.Device
		}
		if r.Protocol != "" {
			line += " proto " + r.Protocol
		}
		if r.Scope != "" && r.Scope != "global" {
			line += " scope " + r.Scope
		}
		if r.Table != "" && r.Table != "main" {
			line += " table " + r.Table
		}
		for _, f := range r.Flags {
			line += " " + f
		}
		b.WriteString("  " + line + "\n")
	}
	if len(o.Neighbours) > 0 {
		b.WriteString("\n" + styleTitle.Render("Neighbours") + "\n")
		for _, n := range o.Neighbours {
			b.WriteString("  " + neighbourText(n) + "\n")
		}
	}
	if len(o.FDB) > 0 {
		b.WriteString("\n" + styleTitle.Render("Forwarding database") + "\n")
		for _, f := range o.FDB {
			b.WriteString("  " + fdbText(f) + "\n")
		}
	}
	if o.InspectError != "" {
		b.WriteString("\n" + styleError.Render(o.InspectError) + "\n")
	}
	return b.String()
}
