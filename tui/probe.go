package tui

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/trace"
)

// The probe pane's fields, top to bottom; focus past the last is the
// result.
const (
	fieldKind = iota
	fieldFrom
	fieldTo
	fieldPort
	fieldResult
)

var probeKinds = []string{"ping", "curl"}

// pingCount is how many echoes the ping action sends.
const pingCount = 3

type probeKeys struct {
	Up, Down, Left, Right, Run, Digits key.Binding
}

type (
	// probeDoneMsg carries a ping's or a GET's outcome, in words, and
	// the trace to run next.
	probeDoneMsg struct {
		run   int
		text  string
		trace tea.Cmd
	}
	// traceDoneMsg carries the trace that follows a probe.
	traceDoneMsg struct {
		run int
		j   *trace.Journey
		err error
	}
)

// place is a node or pod a probe can start from or go to.
type place struct {
	name, role, ns string
	ip             netip.Addr
	ports          []int // what its containers serve over TCP
}

// probePane runs ping or curl between two places of the lab and shows the
// outcome and the trace of one more packet of the same kind.
type probePane struct {
	keys     probeKeys
	w, h     int
	st       *lab.Status
	places   []place
	kind     int
	from, to int // indexes into places, -1 when unset
	port     string
	focus    int
	run      int // counts runs, so late answers of an earlier one are dropped
	running  bool
	outcome  string
	journey  *trace.Journey
	traceErr string
	vp       viewport.Model
}

func newProbePane() *probePane {
	vp := viewport.New(0, 0)
	vp.KeyMap = viewportKeys()
	vp.SetHorizontalStep(8)
	return &probePane{
		keys: probeKeys{
			Up: keyUp, Down: keyDown,
			Left:   binding([]string{"left", "h"}, "←/→", "change"),
			Right:  binding([]string{"right", "l"}, "→", "change"),
			Run:    binding([]string{"enter"}, "enter", "run"),
			Digits: binding([]string{"0"}, "0-9", "port"),
		},
		from: -1, to: -1, port: "80",
		vp: vp,
	}
}

func (p *probePane) title() string { return "Probe" }

// formRows is the height of the form above the result.
const formRows = 6

func (p *probePane) setSize(w, h int) {
	p.w, p.h = w, h
	p.vp.Width, p.vp.Height = w, max(h-formRows, 1)
	p.render()
}

// takesDigits says that the port field has the digit keys.
func (p *probePane) takesDigits() bool { return p.focus == fieldPort && probeKinds[p.kind] == "curl" }

func (p *probePane) shortHelp() []key.Binding {
	if p.focus == fieldResult {
		return []key.Binding{p.keys.Up, p.keys.Down, keyLeft, keyRight, p.keys.Run}
	}
	if p.takesDigits() {
		return []key.Binding{p.keys.Digits, p.keys.Down, p.keys.Run}
	}
	return []key.Binding{p.keys.Up, p.keys.Down, p.keys.Left, p.keys.Run}
}

func (p *probePane) fullHelp() [][]key.Binding {
	return [][]key.Binding{{p.keys.Up, p.keys.Down, p.keys.Left, p.keys.Run}, {p.keys.Digits, keyPageUp, keyPageDown}}
}

// setStatus learns the lab's nodes and pods.
func (p *probePane) setStatus(st *lab.Status) {
	name := func(i int) string {
		if i < 0 || i >= len(p.places) {
			return ""
		}
		return p.places[i].name
	}
	from, to := name(p.from), name(p.to)
	p.st = st
	p.places = p.places[:0]
	for _, ns := range st.Namespaces {
		if ns.Role == plan.RoleUnderlay || !ns.Present {
			continue
		}
		ip, _ := netip.ParseAddr(ns.IP)
		pl := place{name: ns.Name, role: ns.Role, ns: ns.Namespace, ip: ip}
		if st.Topology != nil {
			if pod, ok := st.Topology.Pod(ns.Name); ok {
				for _, c := range pod.Containers {
					for _, port := range c.Ports {
						if port.Protocol != "UDP" {
							pl.ports = append(pl.ports, port.ContainerPort)
						}
					}
				}
			}
		}
		p.places = append(p.places, pl)
	}
	p.from, p.to = p.index(from), p.index(to)
}

func (p *probePane) index(name string) int {
	return slices.IndexFunc(p.places, func(pl place) bool { return pl.name == name })
}

// suggest fills in from and to, when unset, from the nodes and pods picked
// in the topology pane, else the first two pods.
func (p *probePane) suggest(picked []string) {
	if p.from >= 0 && p.to >= 0 {
		return
	}
	var pods []string
	for _, pl := range p.places {
		if pl.role == plan.RolePod {
			pods = append(pods, pl.name)
		}
	}
	for _, name := range append(picked, pods...) {
		i := p.index(name)
		switch {
		case i < 0:
		case p.from < 0:
			p.from = i
		case p.to < 0 && i != p.from:
			p.to = i
		}
	}
	p.suggestPort()
}

// suggestPort takes the first TCP port the destination serves.
func (p *probePane) suggestPort() {
	if p.to >= 0 && len(p.places[p.to].ports) > 0 {
		p.port = strconv.Itoa(p.places[p.to].ports[0])
	}
}

func (p *probePane) cycle(i *int, delta int) {
	if len(p.places) == 0 {
		return
	}
	*i = ((*i+delta)%len(p.places) + len(p.places)) % len(p.places)
}

func (p *probePane) update(ctx context.Context, b Backend, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case probeDoneMsg:
		if msg.run != p.run {
			return nil
		}
		p.outcome = msg.text
		p.render()
		return msg.trace
	case traceDoneMsg:
		if msg.run == p.run {
			p.running = false
			p.journey = msg.j
			p.traceErr = ""
			if msg.err != nil {
				p.traceErr = msg.err.Error()
			}
			p.render()
		}
		return nil
	case tea.KeyMsg:
		return p.key(ctx, b, msg)
	}
	return nil
}

func (p *probePane) key(ctx context.Context, b Backend, k tea.KeyMsg) tea.Cmd {
	switch {
	case key.Matches(k, p.keys.Run):
		return p.start(ctx, b)
	case p.focus == fieldResult:
		if key.Matches(k, p.keys.Up) && p.vp.AtTop() {
			p.focus = fieldPort
			return nil
		}
		var cmd tea.Cmd
		p.vp, cmd = p.vp.Update(k)
		return cmd
	case key.Matches(k, p.keys.Up):
		p.focus = max(p.focus-1, 0)
	case key.Matches(k, p.keys.Down):
		p.focus++
	case key.Matches(k, p.keys.Left), key.Matches(k, p.keys.Right):
		delta := 1
		if key.Matches(k, p.keys.Left) {
			delta = -1
		}
		switch p.focus {
		case fieldKind:
			p.kind = (p.kind + delta + len(probeKinds)) % len(probeKinds)
		case fieldFrom:
			p.cycle(&p.from, delta)
		case fieldTo:
			p.cycle(&p.to, delta)
			p.suggestPort()
		}
	case p.takesDigits() && k.Type == tea.KeyBackspace:
		if p.port != "" {
			p.port = p.port[:len(p.port)-1]
		}
	case p.takesDigits() && len(k.Runes) == 1 && k.Runes[0] >= '0' && k.Runes[0] <= '9':
		if len(p.port) < 5 {
			p.port += string(k.Runes)
		}
	}
	return nil
}

// start runs the probe; its trace follows when it is done.
func (p *probePane) start(ctx context.Context, b Backend) tea.Cmd {
	if p.from < 0 || p.to < 0 {
		p.outcome = styleError.Render("pick where to send from and to (↑/↓ to a field, ←/→ to change it)")
		p.render()
		return nil
	}
	from, to := p.places[p.from], p.places[p.to]
	kind := probeKinds[p.kind]
	port := 0
	if kind == "curl" {
		n, err := strconv.Atoi(p.port)
		if err != nil || n < 1 || n > 65535 {
			p.outcome = styleError.Render(fmt.Sprintf("port %q: give 1 to 65535", p.port))
			p.render()
			return nil
		}
		port = n
	}
	if !to.ip.IsValid() {
		p.outcome = styleError.Render(fmt.Sprintf("%s has no address", to.name))
		p.render()
		return nil
	}
	p.run++
	run, st := p.run, p.st
	p.running, p.journey, p.traceErr = true, nil, ""
	p.focus = fieldResult
	nsPath := netns.Path(from.ns)
	tp := trace.Probe{Protocol: trace.ICMP}
	if kind == "curl" {
		tp = trace.Probe{Protocol: trace.TCP, Port: uint16(port)}
	}
	// The trace follows once the probe is done, so that the packet list
	// shows them one after the other.
	follow := func() tea.Msg {
		j, err := b.Trace(ctx, st, from.name, to.name, tp)
		return traceDoneMsg{run: run, j: j, err: err}
	}
	p.render()
	if kind == "ping" {
		p.outcome = fmt.Sprintf("ping %s → %s (%s): sending %d echoes…", from.name, to.name, to.ip, pingCount)
		p.render()
		return func() tea.Msg {
			res, err := b.Ping(ctx, nsPath, to.ip, pingCount)
			return probeDoneMsg{run: run, text: pingText(from.name, to.name, res, err), trace: follow}
		}
	}
	url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(to.ip, uint16(port)))
	p.outcome = fmt.Sprintf("curl %s from %s: sending…", url, from.name)
	p.render()
	return func() tea.Msg {
		res, err := b.Get(ctx, nsPath, url)
		return probeDoneMsg{run: run, text: getText(from.name, url, res, err), trace: follow}
	}
}

// pingText says how a ping went, as ping's summary does.
func pingText(from, to string, res probe.PingResult, err error) string {
	head := fmt.Sprintf("ping %s → %s (%s): ", from, to, res.Dst)
	if err != nil && len(res.Echoes) == 0 {
		return head + styleError.Render(err.Error())
	}
	s := fmt.Sprintf("%d of %d echoes answered", res.Received, res.Sent)
	if rtts := res.RTTs(); len(rtts) > 0 {
		lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
		for _, r := range rtts {
			lo, hi, sum = min(lo, r), max(hi, r), sum+r
		}
		s += fmt.Sprintf(", rtt min/avg/max %s/%s/%s ms", msText(lo), msText(sum/time.Duration(len(rtts))), msText(hi))
	}
	for _, e := range res.Echoes {
		if e.Err == nil {
			s += fmt.Sprintf(", ttl %d", e.TTL)
			break
		}
	}
	if perr := res.Err(); perr != nil {
		return head + styleError.Render(s) + "\n" + styleError.Render(perr.Error())
	}
	return head + styleOK.Render(s)
}

// getText says how a GET went: status, size, time and the body's first
// lines.
func getText(from, url string, res HTTPResult, err error) string {
	head := fmt.Sprintf("curl %s from %s: ", url, from)
	if err != nil {
		return head + styleError.Render(err.Error())
	}
	st := styleOK
	if res.Code >= 400 {
		st = styleError
	}
	s := head + st.Render(fmt.Sprintf("%s, %d bytes in %s ms", res.Status, res.Length, msText(res.Took)))
	lines := strings.Split(strings.TrimRight(strings.ToValidUTF8(string(res.Body), "?"), "\n"), "\n")
	if len(lines) > 4 {
		lines = append(lines[:4], "…")
	}
	for _, l := range lines {
		if l != "" {
			s += "\n  │ " + strings.Map(printable, l)
		}
	}
	return s
}

// printable keeps control characters out of the terminal.
func printable(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return '·'
	}
	return r
}

func msText(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func (p *probePane) render() {
	var b strings.Builder
	if p.outcome != "" {
		b.WriteString(ansi.Wordwrap(p.outcome, max(p.w, 20), "") + "\n")
	}
	switch {
	case p.journey != nil:
		b.WriteString("\n" + wrapJourney(p.journey.Text(false), p.w))
	case p.traceErr != "":
		b.WriteString("\n" + styleError.Render("trace: "+p.traceErr) + "\n")
	case p.running:
		b.WriteString("\nthen a trace of one more packet follows it through the lab…\n")
	case p.outcome == "":
		b.WriteString("Nothing sent yet. Pick a probe, where from and where to, and press enter:\n" +
			"labctl sends it from inside the namespace (no ping or curl on the host),\n" +
			"then traces one more packet of the same kind hop by hop, the way\n" +
			"`labctl trace` does. Capture on the interfaces on the way (1, space, c)\n" +
			"to watch them in the packet list (2) at the same time.\n")
	}
	p.vp.SetContent(b.String())
	p.vp.GotoTop()
}

// wrapJourney fits a trace's text to width columns: a hop's WHAT that does
// not fit goes on under the WHAT column, other long lines wrap at spaces.
// Too narrow for that, it is left for sideways scrolling.
func wrapJourney(text string, width int) string {
	if width < 40 {
		return text
	}
	var out []string
	what := -1 // the WHAT column of the table being written
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "  #") && strings.Contains(line, "WHAT"):
			what = ansi.StringWidth(line[:strings.Index(line, "WHAT")])
			if width-what < 20 {
				return text
			}
			out = append(out, line)
		case what >= 0 && len(line) > 2 && line[0] == ' ' && line[2] >= '0' && line[2] <= '9' && ansi.StringWidth(line) > width:
			head := ansi.Truncate(line, what, "")
			rest := ansi.TruncateLeft(line, what, "")
			lines := strings.Split(ansi.Wordwrap(rest, width-what, ""), "\n")
			out = append(out, head+lines[0])
			for _, l := range lines[1:] {
				out = append(out, strings.Repeat(" ", what)+l)
			}
		default:
			if !strings.HasPrefix(line, "  ") || line[2] < '0' || line[2] > '9' {
				what = -1
			}
			out = append(out, strings.Split(ansi.Wordwrap(line, width, ""), "\n")...)
		}
	}
	return strings.Join(out, "\n")
}

func (p *probePane) view() string {
	var b strings.Builder
	field := func(i int, label, value string) {
		if p.focus == i {
			value = styleCursor.Render("‹ " + value + " ›")
		} else {
			value = "  " + value
		}
		b.WriteString(fit(fmt.Sprintf("%-6s %s", label, value), p.w) + "\n")
	}
	var kinds []string
	for i, k := range probeKinds {
		if i == p.kind {
			k = "[" + k + "]"
		}
		kinds = append(kinds, k)
	}
	field(fieldKind, "Probe", strings.Join(kinds, " "))
	field(fieldFrom, "From", p.placeText(p.from))
	field(fieldTo, "To", p.placeText(p.to))
	port := p.port
	if probeKinds[p.kind] != "curl" {
		port = styleDim.Render("(curl only)")
	}
	field(fieldPort, "Port", port)
	hint := "enter: " + p.plan()
	if p.running {
		hint = "running: " + p.plan()
	}
	b.WriteString(fit(styleDim.Render(hint), p.w) + "\n")
	b.WriteString(strings.Repeat("─", p.w) + "\n")
	b.WriteString(p.vp.View())
	return block(b.String(), p.w, p.h)
}

func (p *probePane) placeText(i int) string {
	if i < 0 || i >= len(p.places) {
		return "(none)"
	}
	pl := p.places[i]
	return fmt.Sprintf("%s %s %s", pl.name, pl.role, pl.ip)
}

// plan says what enter will do.
func (p *probePane) plan() string {
	if p.from < 0 || p.to < 0 {
		return "pick from and to"
	}
	from, to := p.places[p.from].name, p.places[p.to].name
	if probeKinds[p.kind] == "ping" {
		return fmt.Sprintf("ping %s → %s (%d echoes), then trace one", from, to, pingCount)
	}
	return fmt.Sprintf("GET http://%s:%s/ from %s, then trace a SYN", to, p.port, from)
}
