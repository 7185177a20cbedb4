package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/tui/internal/quietinit"
)

// bubbletea's init has run by now (this package imports it): the terminal
// was asked nothing (see quietinit), and CI is as it was.
func init() { quietinit.Restore() }

// Options say what the TUI shows.
type Options struct {
	// Backend reads and acts on the lab named Lab. Without one the TUI
	// shows Topology, a topology file that is not running, and nothing
	// else.
	Backend Backend
	Lab     string
	// Topology and File are the topology file shown without a lab.
	Topology *spec.Topology
	File     string
	// Scenario adds the scenario pane, which grades the lab against it.
	Scenario *scenario.Scenario
	// Capture names interfaces to select and capture on from the start,
	// as the topology pane calls them: "pod1a:eth0", or "node1" for every
	// interface of node1.
	Capture []string
	// KernelFilter filters captures in the kernel (tcpdump's language).
	KernelFilter *capture.Expr
	// Keep bounds the packets the list keeps (DefaultKeep when 0).
	Keep int
	// Refresh is how often the lab's status is read again (2s when 0).
	Refresh time.Duration
}

// ringSize is each interface's capture ring: a tenth of the CLI's, since
// the TUI shows packets rather than recording them all, and enough for a
// few seconds of ten thousand packets a second.
const ringSize = 8 << 20

// paneID names the panes, in tab order.
type paneID int

const (
	paneTopology paneID = iota
	panePackets
	paneDetail
	paneProbe
	paneScenario
)

// pane is what the root model asks of every pane; each pane's update
// takes what it needs.
type pane interface {
	title() string
	setSize(w, h int)
	shortHelp() []key.Binding
	fullHelp() [][]key.Binding
	view() string
}

type (
	// statusMsg carries a fresh read of the lab.
	statusMsg struct {
		st  *lab.Status
		err error
	}
	refreshMsg       struct{}
	noticeExpiredMsg struct{ id int }
)

// Model is the TUI's root model: it routes messages to the panes, owns the
// running capture and draws the frame around the active pane.
type Model struct {
	ctx  context.Context
	opt  Options
	keys globalKeys
	help help.Model
	w, h int

	panes    []paneID
	active   int // index into panes
	showHelp bool

	topo    *topologyPane
	packets *packetsPane
	detail  *detailPane
	probe   *probePane
	scen    *scenarioPane

	st        *lab.Status
	statusErr string
	gone      string // why the lab is no longer there

	feed        Feed
	feedID      int
	closing     map[int]Feed // captures stopped whose sockets are being closed
	starting    bool
	targets     []capture.Target
	lastCaps    []*capture.Capture
	kernel      *capture.Expr
	autoCapture bool

	notice   string
	noticeID int
}

// New makes the root model; ctx bounds every command it starts.
func New(ctx context.Context, opt Options) *Model {
	if opt.Refresh <= 0 {
		opt.Refresh = 2 * time.Second
	}
	h := help.New()
	// The footer's keys bold and their words faint, in the terminal's own
	// colours: help's default greys are chosen by the background colour,
	// which not every terminal tells.
	h.Styles = help.Styles{
		ShortKey: styleTitle, ShortDesc: styleDim, ShortSeparator: styleDim, Ellipsis: styleDim,
		FullKey: styleTitle, FullDesc: styleDim, FullSeparator: styleDim,
	}
	m := &Model{
		ctx: ctx, opt: opt, keys: newGlobalKeys(), help: h,
		topo:        newTopologyPane(),
		packets:     newPacketsPane(opt.Keep),
		detail:      newDetailPane(),
		probe:       newProbePane(),
		kernel:      opt.KernelFilter,
		closing:     map[int]Feed{},
		autoCapture: len(opt.Capture) > 0,
	}
	if opt.KernelFilter != nil {
		m.packets.kernelText = opt.KernelFilter.String()
	}
	if opt.Backend == nil {
		m.panes = []paneID{paneTopology}
		if opt.Topology != nil {
			m.topo.showFile(opt.Topology, opt.File)
		}
		return m
	}
	m.panes = []paneID{paneTopology, panePackets, paneDetail, paneProbe}
	if opt.Scenario != nil {
		m.scen = newScenarioPane(opt.Scenario)
		m.panes = append(m.panes, paneScenario)
	}
	return m
}

func (m *Model) live() bool { return m.opt.Backend != nil }

func (m *Model) pane(id paneID) pane {
	switch id {
	case panePackets:
		return m.packets
	case paneDetail:
		return m.detail
	case paneProbe:
		return m.probe
	case paneScenario:
		return m.scen
	}
	return m.topo
}

func (m *Model) activeID() paneID { return m.panes[m.active] }

// Init reads the lab.
func (m *Model) Init() tea.Cmd {
	if !m.live() {
		return nil
	}
	return m.loadStatus()
}

func (m *Model) loadStatus() tea.Cmd {
	b, ctx := m.opt.Backend, m.ctx
	return func() tea.Msg {
		st, err := b.Status(ctx)
		return statusMsg{st: st, err: err}
	}
}

// Update routes a message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case statusMsg:
		return m, m.status(msg)
	case refreshMsg:
		return m, m.loadStatus()
	case noticeExpiredMsg:
		if msg.id == m.noticeID {
			m.notice = ""
		}
		return m, nil
	case captureStartedMsg:
		return m, m.captureStarted(msg)
	case packetsMsg:
		return m, m.packetsArrived(msg)
	case captureClosedMsg:
		delete(m.closing, msg.id)
		if msg.err != nil {
			return m, m.say(styleError.Render("capture: " + msg.err.Error()))
		}
		return m, nil
	case showPacketMsg:
		m.detail.show(&msg.e, m.packets.base)
		if !m.split() {
			m.switchTo(paneDetail)
		}
		return m, nil
	case stepPacketMsg:
		m.packets.move(msg.delta)
		if e := m.packets.selected(); e != nil {
			e.decode(m.packets.vxlanPorts)
			m.detail.show(e, m.packets.base)
		}
		return m, nil
	case kernelFilterMsg:
		m.kernel = msg.expr
		if m.feed != nil || m.starting {
			return m, tea.Batch(m.say("capture filter changed: capturing again"), m.startCapture(m.targets))
		}
		return m, m.say("the capture filter applies to the next capture (c)")
	case saveMsg:
		return m, save(msg.path, m.packets.displayed(), m.lastCaps)
	case savedMsg:
		if msg.err != nil {
			return m, m.say(styleError.Render("save: " + msg.err.Error()))
		}
		return m, m.say(fmt.Sprintf("saved %d packets to %s", msg.n, msg.path))
	case objectMsg:
		return m, m.topo.update(m.ctx, m.opt.Backend, msg)
	case probeDoneMsg, traceDoneMsg:
		return m, m.probe.update(m.ctx, m.opt.Backend, msg)
	case checkMsg, gradeDoneMsg:
		if m.scen != nil {
			return m, m.scen.update(m.ctx, m.opt.Backend, msg)
		}
		return m, nil
	}
	// Anything else (the filter field's cursor blinking) goes to the
	// active pane.
	if m.packets.editing != inputNone {
		return m, m.packets.update(msg)
	}
	return m, nil
}

// key handles a key press: a text field first, then the keys every pane
// shares, then the active pane's own.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return tea.Quit
	}
	if m.packets.editing != inputNone {
		return m.packets.update(k)
	}
	// Keys typed faster than the terminal is read come as one message
	// ("pq"): outside a text field each is its own key.
	if k.Type == tea.KeyRunes && len(k.Runes) > 1 && !k.Paste {
		var cmds []tea.Cmd
		for _, r := range k.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: k.Alt}))
		}
		return tea.Batch(cmds...)
	}
	if m.showHelp {
		m.showHelp = false
		return nil
	}
	id := m.activeID()
	if id == paneProbe && m.probe.takesDigits() && (k.Type == tea.KeyBackspace || (len(k.Runes) == 1 && k.Runes[0] >= '0' && k.Runes[0] <= '9')) {
		return m.probe.update(m.ctx, m.opt.Backend, k)
	}
	g := m.keys
	switch {
	case key.Matches(k, g.Quit):
		return tea.Quit
	case key.Matches(k, g.Help):
		m.showHelp = true
		return nil
	case key.Matches(k, g.Next):
		m.switchTo(m.panes[(m.active+1)%len(m.panes)])
		return nil
	case key.Matches(k, g.Prev):
		m.switchTo(m.panes[(m.active+len(m.panes)-1)%len(m.panes)])
		return nil
	case key.Matches(k, g.Jump):
		if i := int(k.Runes[0] - '1'); i < len(m.panes) {
			m.switchTo(m.panes[i])
		}
		return nil
	}
	if m.live() {
		switch {
		case key.Matches(k, g.Capture):
			return m.startCapture(m.topo.targets())
		case key.Matches(k, g.Stop):
			return m.stopCapture()
		case key.Matches(k, g.Pause):
			return m.say(m.packets.setPaused(!m.packets.paused))
		case key.Matches(k, g.Filter):
			m.switchTo(panePackets)
			text := ""
			if m.packets.display != nil {
				text = m.packets.display.String()
			}
			return m.packets.openInput(inputDisplay, text)
		case key.Matches(k, g.KernelExpr):
			m.switchTo(panePackets)
			return m.packets.openInput(inputKernel, m.packets.kernelText)
		case key.Matches(k, g.Save):
			if m.packets.count() == 0 {
				return m.say("no packets to save: capture some first")
			}
			m.switchTo(panePackets)
			return m.packets.openInput(inputSave, fmt.Sprintf("%s-%s.pcapng", m.opt.Lab, time.Now().Format("20060102-150405")))
		}
	}
	switch id {
	case paneTopology:
		return m.topo.update(m.ctx, m.opt.Backend, k)
	case panePackets:
		cmd := m.packets.update(k)
		m.syncDetail()
		return cmd
	case paneDetail:
		if key.Matches(k, m.detail.keys.Back) {
			m.switchTo(panePackets)
			return nil
		}
		return m.detail.update(k)
	case paneProbe:
		return m.probe.update(m.ctx, m.opt.Backend, k)
	case paneScenario:
		return m.scen.update(m.ctx, m.opt.Backend, k)
	}
	return nil
}

func (m *Model) switchTo(id paneID) {
	for i, p := range m.panes {
		if p == id {
			m.active = i
		}
	}
	if id == paneProbe {
		m.probe.suggest(m.topo.pickedObjects())
	}
	m.layout()
}

// say shows a notice in the status line for a few seconds.
func (m *Model) say(text string) tea.Cmd {
	if text == "" {
		return nil
	}
	m.noticeID++
	m.notice = text
	id := m.noticeID
	return m.after(5*time.Second, noticeExpiredMsg{id: id})
}

// after delivers msg once d has passed, unless the TUI ends first.
func (m *Model) after(d time.Duration, msg tea.Msg) tea.Cmd {
	ctx := m.ctx
	return func() tea.Msg {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return msg
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *Model) status(msg statusMsg) tea.Cmd {
	next := m.after(m.opt.Refresh, refreshMsg{})
	if msg.err != nil {
		if errors.Is(msg.err, lab.ErrNotFound) && m.st != nil {
			m.gone = fmt.Sprintf("lab %q is gone (taken down?)", m.opt.Lab)
			return tea.Batch(m.endCapture("the lab was taken down"), next)
		}
		m.statusErr = msg.err.Error()
		return next
	}
	m.statusErr, m.gone = "", ""
	m.st = msg.st
	m.topo.setStatus(msg.st)
	m.probe.setStatus(msg.st)
	if t := msg.st.Topology; t != nil && t.Network.VXLAN.Port != 0 {
		m.packets.vxlanPorts = []uint16{uint16(t.Network.VXLAN.Port)}
	}
	cmds := []tea.Cmd{next}
	if m.autoCapture {
		m.autoCapture = false
		if unknown := m.topo.selectTargets(m.opt.Capture); len(unknown) > 0 {
			cmds = append(cmds, m.say(styleError.Render("no such interface: "+strings.Join(unknown, ", "))))
		}
		if tg := m.topo.targets(); len(tg) > 0 {
			cmds = append(cmds, m.startCapture(tg))
		}
	}
	// A capture keeps a namespace alive after `labctl down` deletes its
	// name: stop when one of the capture's namespaces went away.
	if m.feed != nil {
		for _, tg := range m.targets {
			for _, ns := range msg.st.Namespaces {
				if netns.Path(ns.Namespace) == tg.Namespace && !ns.Present {
					cmds = append(cmds, m.endCapture(fmt.Sprintf("namespace %s is %s", ns.Namespace, ns.State)))
					return tea.Batch(cmds...)
				}
			}
		}
	}
	return tea.Batch(cmds...)
}

// startCapture (re)starts capturing on targets.
func (m *Model) startCapture(targets []capture.Target) tea.Cmd {
	if len(targets) == 0 {
		return m.say("nothing selected: in the topology pane (1) press space on an interface, then c")
	}
	var cmds []tea.Cmd
	if m.feed != nil {
		cmds = append(cmds, m.closeFeed())
	}
	m.feedID++
	m.starting = true
	m.targets = targets
	var ports []uint16
	if len(m.packets.vxlanPorts) > 0 {
		ports = m.packets.vxlanPorts
	}
	opts := capture.Options{Snaplen: Snaplen, BufferSize: ringSize, SkipDecode: true, Expr: m.kernel, VXLANPorts: ports}
	cmds = append(cmds, startCapture(m.opt.Backend, m.feedID, targets, opts))
	m.switchTo(panePackets)
	return tea.Batch(cmds...)
}

func (m *Model) captureStarted(msg captureStartedMsg) tea.Cmd {
	if msg.id != m.feedID {
		if msg.feed != nil {
			m.closing[msg.id] = msg.feed
			return closeCapture(msg.id, msg.feed) // superseded while it opened
		}
		return nil
	}
	m.starting = false
	if msg.err != nil {
		return m.say(styleError.Render("capture: " + msg.err.Error()))
	}
	m.feed = msg.feed
	m.lastCaps = msg.feed.Captures()
	var labels []string
	for _, t := range msg.targets {
		labels = append(labels, t.String())
	}
	m.packets.start(labels)
	m.syncDetail()
	return waitPackets(msg.id, msg.feed, time.Time{})
}

func (m *Model) packetsArrived(msg packetsMsg) tea.Cmd {
	if msg.id != m.feedID || m.feed == nil {
		return nil
	}
	m.packets.add(msg.pkts, msg.stats)
	m.syncDetail()
	if msg.done {
		reason := "the capture ended"
		if msg.err != nil {
			reason = msg.err.Error()
		}
		return m.endCapture(reason)
	}
	return waitPackets(msg.id, m.feed, msg.at)
}

// stopCapture ends the capture at the user's request.
func (m *Model) stopCapture() tea.Cmd {
	if m.feed == nil && !m.starting {
		return m.say("no capture is running")
	}
	cmd := m.endCapture("")
	return tea.Batch(cmd, m.say(fmt.Sprintf("capture stopped: %s", m.packets.counts())))
}

// endCapture closes the capture; reason is why, when not asked to.
func (m *Model) endCapture(reason string) tea.Cmd {
	m.starting = false
	m.packets.stopped(reason)
	if m.feed == nil {
		return nil
	}
	cmd := m.closeFeed()
	m.feedID++ // what the old capture still delivers is not shown
	return cmd
}

// closeFeed closes the running capture in a command; until it reports
// back, close still finds it.
func (m *Model) closeFeed() tea.Cmd {
	f, id := m.feed, m.feedID
	m.feed = nil
	m.closing[id] = f
	return closeCapture(id, f)
}

// split says whether the packet list shares the screen with the detail
// pane: when there is room for both.
func (m *Model) split() bool {
	return m.activeID() == panePackets && m.contentHeight() >= splitHeight
}

// splitHeight is the content height from which the packet list shows the
// detail of its selected packet below it.
const splitHeight = 30

func (m *Model) contentHeight() int { return max(m.h-3, 1) }

// listHeight is the packet list's share of a split screen.
func (m *Model) listHeight() int { return (m.contentHeight() - 1) / 2 }

func (m *Model) layout() {
	h := m.contentHeight()
	for _, id := range m.panes {
		m.pane(id).setSize(m.w, h)
	}
	if m.split() {
		m.packets.setSize(m.w, m.listHeight())
		m.detail.setSize(m.w, h-1-m.listHeight())
		m.syncDetail()
	}
}

// syncDetail shows the selected packet below a split list.
func (m *Model) syncDetail() {
	if !m.split() {
		return
	}
	e := m.packets.selected()
	if e != nil {
		e.decode(m.packets.vxlanPorts)
	}
	m.detail.show(e, m.packets.base)
}

// Minimum terminal size; below it the TUI says so instead of drawing.
const (
	minWidth  = 40
	minHeight = 8
)

// View draws the frame: tabs, the active pane (or the key help), the
// status line and the keys of the moment.
func (m *Model) View() string {
	if m.w == 0 {
		return ""
	}
	if m.w < minWidth || m.h < minHeight {
		return fmt.Sprintf("labctl tui needs a terminal of at least %d×%d; this one is %d×%d.", minWidth, minHeight, m.w, m.h)
	}
	var b strings.Builder
	b.WriteString(m.titleLine() + "\n")
	h := m.contentHeight()
	switch {
	case m.showHelp:
		b.WriteString(block(m.fullHelp(), m.w, h))
	case m.split():
		b.WriteString(m.packets.view() + "\n")
		b.WriteString(fit(styleDim.Render("── detail "+strings.Repeat("─", m.w)), m.w) + "\n")
		b.WriteString(m.detail.view())
	default:
		b.WriteString(m.pane(m.activeID()).view())
	}
	b.WriteString("\n" + m.statusLine() + "\n")
	b.WriteString(m.helpLine())
	return b.String()
}

// helpLine is the bottom line: the active pane's keys, the shared keys
// that matter in this pane, and the keys to move between panes, list all
// keys and quit. Where the line is too long for the terminal, the pane's
// later keys give way, then the shared ones; ? lists them all.
func (m *Model) helpLine() string {
	own := m.pane(m.activeID()).shortHelp()
	if m.packets.editing != inputNone || len(own) == 0 {
		return fit(m.help.ShortHelpView(own), m.w)
	}
	if m.showHelp {
		return fit(m.help.ShortHelpView([]key.Binding{binding([]string{"?"}, "any key", "close help")}), m.w)
	}
	g := m.keys
	var shared []key.Binding
	switch m.activeID() {
	case paneTopology:
		if m.live() {
			shared = []key.Binding{g.Capture}
		}
	case panePackets:
		shared = []key.Binding{g.Filter, g.Pause, g.Save}
	}
	tail := []key.Binding{g.Next, g.Help, g.Quit}
	if !m.live() {
		tail = []key.Binding{g.Help, g.Quit}
	}
	// The pane's later keys give way first, then the shared ones.
	line := ""
	for j := len(shared); j >= 0; j-- {
		for k := len(own); k >= 1; k-- {
			keys := append(append(append([]key.Binding{}, own[:k]...), shared[:j]...), tail...)
			line = m.help.ShortHelpView(keys)
			if ansi.StringWidth(line) <= m.w {
				return line
			}
		}
	}
	return fit(line, m.w)
}

// fullHelp lists every key: the active pane's groups, then the shared
// ones, as columns that wrap onto more rows on a narrow terminal.
func (m *Model) fullHelp() string {
	groups := m.pane(m.activeID()).fullHelp()
	groups = append(groups, m.keys.full(m.live())...)
	var rows []string
	var row []string
	rowWidth := 0
	for _, g := range groups {
		col := m.help.FullHelpView([][]key.Binding{g})
		w := lipgloss.Width(col) + 4
		if rowWidth > 0 && rowWidth+w > m.w {
			rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
			row, rowWidth = nil, 0
		}
		row = append(row, lipgloss.NewStyle().PaddingRight(4).Render(col))
		rowWidth += w
	}
	if len(row) > 0 {
		rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, row...))
	}
	title := "Keys of the " + strings.ToLower(m.pane(m.activeID()).title()) + " pane, then of every pane"
	return styleTitle.Render(title) + "\n\n" + strings.Join(rows, "\n\n") + "\n\n" + legend()
}

// legend explains the packet colours.
func legend() string {
	var parts []string
	for _, c := range []class{classARP, classICMP, classICMPError, classTCP, classUDP, classVXLAN, classIPIP} {
		name := c.String()
		if c == classICMPError {
			name = "ICMP error"
		}
		parts = append(parts, classStyles[c].Render(name))
	}
	return "packet colours: " + strings.Join(parts, "  ")
}

// titleLine names the lab and lists the panes.
func (m *Model) titleLine() string {
	var tabs []string
	for i, id := range m.panes {
		t := fmt.Sprintf("%d %s", i+1, m.pane(id).title())
		if i == m.active {
			tabs = append(tabs, styleTabOn.Render(t))
		} else {
			tabs = append(tabs, styleTab.Render(t))
		}
	}
	right := strings.Join(tabs, "")
	left := " labctl · " + m.labText()
	room := m.w - ansi.StringWidth(right)
	return fit(styleTitle.Render(cut(left, room-1))+" "+right, m.w)
}

func (m *Model) labText() string {
	if !m.live() {
		name := m.opt.File
		if m.opt.Topology != nil {
			name = m.opt.Topology.Name + " (file, not running)"
		}
		return name
	}
	if m.st == nil {
		return m.opt.Lab
	}
	s := m.st.Name + " " + m.st.Phase
	if m.st.Topology != nil {
		var bs []string
		for _, b := range m.st.Topology.Backends() {
			bs = append(bs, string(b))
		}
		s += " " + strings.Join(bs, ",")
	}
	return s
}

// statusLine says what is being captured and how many packets came, or
// the notice of the moment.
func (m *Model) statusLine() string {
	var s string
	switch {
	case m.notice != "":
		s = m.notice
	case !m.live():
		s = "a topology file: nothing is running (labctl up FILE brings it up)"
	case m.gone != "":
		s = styleError.Render(m.gone)
	case m.statusErr != "":
		s = styleError.Render("status: " + m.statusErr)
	case m.starting:
		s = "starting the capture…"
	case m.feed != nil && m.packets.paused:
		s = fmt.Sprintf("%s · capturing on %d", m.packets.counts(), len(m.targets))
	case m.feed != nil:
		s = fmt.Sprintf("● capturing on %d %s · %s", len(m.targets), plural(len(m.targets), "interface"), m.packets.counts())
	case m.packets.seen > 0:
		s = "○ not capturing · " + m.packets.counts()
	default:
		s = "○ not capturing"
	}
	return styleStatus.Render(fit(" "+s, m.w))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// close releases what the model holds once the program ended: the
// capture, and those whose closing commands the end cut short (closing
// twice is harmless).
func (m *Model) close() {
	if m.feed != nil {
		_ = m.feed.Close()
		m.feed = nil
	}
	for id, f := range m.closing {
		_ = f.Close()
		delete(m.closing, id)
	}
}

// Run runs the TUI on a terminal until the user quits or ctx ends.
func Run(ctx context.Context, opt Options, in io.Reader, out io.Writer) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, opt)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	_, err := p.Run()
	cancel() // ends probes and grading still running
	m.close()
	if errors.Is(err, tea.ErrProgramKilled) && parent.Err() != nil {
		return parent.Err()
	}
	return err
}
