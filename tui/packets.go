package tui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
)

// What the packet list keeps. Ten thousand packets is a second of a busy
// capture and far more than anyone scrolls through; the byte bound keeps
// large packets from adding up, and the snapshot length keeps every header
// of a tunnelled packet (outer Ethernet, IP, UDP, VXLAN, inner Ethernet,
// IP, TCP: about 120 bytes) with room to spare.
const (
	DefaultKeep = 10000
	keepBytes   = 32 << 20
	Snaplen     = 2048
)

// inputKind says what the text field at the top of the packet list edits.
type inputKind uint8

const (
	inputNone inputKind = iota
	inputDisplay
	inputKernel
	inputSave
)

var inputPrompts = [...]string{
	inputDisplay: "display filter: ",
	inputKernel:  "capture filter: ",
	inputSave:    "save to: ",
}

type packetKeys struct {
	Up, Down, Move, PageUp, PageDown, Top, Bottom, Open key.Binding
}

// Messages the packet list sends the root model.
type (
	// showPacketMsg opens a packet in the detail pane.
	showPacketMsg struct{ e entry }
	// kernelFilterMsg asks for captures filtered in the kernel by expr
	// (nil: none); a running capture starts again with it.
	kernelFilterMsg struct{ expr *capture.Expr }
	// saveMsg asks to save the packets the list shows to a pcapng file.
	saveMsg struct{ path string }
)

// packetsPane is the live packet list.
type packetsPane struct {
	keys       packetKeys
	w, h       int
	vxlanPorts []uint16
	keep       int

	kept        *ring // the packets kept, newest last
	droppedSeen int   // kept.dropped when the cursor was last moved with it
	// held are the packets that arrived while paused: they join kept on
	// resume. heldDropped counts those pushed out of held, which the
	// user will never see.
	held        *ring
	paused      bool
	heldDropped uint64
	seen        uint64 // delivered by the capture
	stats       capture.GroupStats

	display     *capture.Expr // nil: every kept packet is shown
	shown       []uint64      // with a display filter: the kept packets it matches
	kernelText  string        // the capture filter, for the info line
	cursor, top int           // indexes into the shown packets
	follow      bool          // the cursor stays on the newest packet
	base        time.Time     // the first packet's time: the TIME column counts from it

	capturing bool
	targets   []string // where the capture is (or was) running
	endReason string   // why the capture ended, when it did by itself

	editing  inputKind
	input    textinput.Model
	inputErr string
}

func newPacketsPane(keep int) *packetsPane {
	if keep <= 0 {
		keep = DefaultKeep
	}
	in := textinput.New()
	in.CharLimit = 1000
	return &packetsPane{
		keys: packetKeys{
			Up: keyUp, Down: keyDown, Move: keyMove, PageUp: keyPageUp, PageDown: keyPageDown,
			Top: keyTop, Bottom: keyBottom, Open: binding([]string{"enter"}, "enter", "detail"),
		},
		keep:   keep,
		kept:   newRing(keep, keepBytes),
		held:   newRing(keep, keepBytes),
		follow: true,
		input:  in,
	}
}

func (p *packetsPane) title() string { return "Packets" }

func (p *packetsPane) setSize(w, h int) {
	p.w, p.h = w, h
	p.input.Width = max(w-len(inputPrompts[inputDisplay])-2, 10)
	p.scrollIntoView()
}

func (p *packetsPane) shortHelp() []key.Binding {
	if p.editing != inputNone {
		return inputKeys
	}
	return []key.Binding{p.keys.Move, p.keys.Open, p.keys.Bottom}
}

func (p *packetsPane) fullHelp() [][]key.Binding {
	return [][]key.Binding{{p.keys.Up, p.keys.Down, p.keys.PageUp, p.keys.PageDown}, {p.keys.Top, p.keys.Bottom, p.keys.Open}}
}

// start clears the list for a new capture on targets.
func (p *packetsPane) start(targets []string) {
	p.kept.reset()
	p.held.reset()
	p.shown = p.shown[:0]
	p.seen, p.heldDropped, p.droppedSeen = 0, 0, 0
	p.stats = capture.GroupStats{}
	p.cursor, p.top, p.follow = 0, 0, true
	p.base = time.Time{}
	p.capturing, p.targets, p.endReason = true, targets, ""
}

// stopped notes that the capture ended, and why when it did by itself.
func (p *packetsPane) stopped(reason string) {
	p.capturing = false
	p.endReason = reason
}

// add takes in a batch from the capture.
func (p *packetsPane) add(pkts []capture.Packet, stats capture.GroupStats) {
	p.stats = stats
	if len(pkts) > 0 && p.base.IsZero() {
		p.base = pkts[0].Time
	}
	for _, pk := range pkts {
		p.seen++
		e := entry{seq: p.seen, pkt: pk}
		if p.paused {
			before := p.held.dropped
			p.held.push(e)
			p.heldDropped += p.held.dropped - before
			continue
		}
		p.keepEntry(e)
	}
	p.trim()
}

// keepEntry appends one packet to the list.
func (p *packetsPane) keepEntry(e entry) {
	p.kept.push(e)
	if p.display != nil && p.display.Matches(e.pkt.Data, e.pkt.LinkType, p.vxlanPorts...) {
		p.shown = append(p.shown, e.seq)
	}
}

// trim forgets shown packets the ring no longer keeps and moves the
// cursor with the packets it was on.
func (p *packetsPane) trim() {
	removed := 0
	if p.display != nil {
		first := p.kept.firstSeq()
		k := sort.Search(len(p.shown), func(i int) bool { return p.shown[i] >= first })
		if p.kept.len() == 0 {
			k = len(p.shown)
		}
		p.shown, removed = p.shown[k:], k
	} else {
		removed = int(p.kept.dropped) - p.droppedSeen
		p.droppedSeen = int(p.kept.dropped)
	}
	p.cursor = max(p.cursor-removed, 0)
	p.top = max(p.top-removed, 0)
	if p.follow {
		p.cursor = max(p.count()-1, 0)
	}
	p.scrollIntoView()
}

// setPaused freezes or resumes the list; resuming adds what arrived and
// says what could not be kept.
func (p *packetsPane) setPaused(on bool) string {
	if on == p.paused {
		return ""
	}
	p.paused = on
	if on {
		p.heldDropped = 0
		return "" // the status line says PAUSED, with the counts
	}
	held := p.held.len()
	for _, e := range p.held.drain() {
		p.keepEntry(e)
	}
	p.held.dropped = 0
	p.trim()
	note := fmt.Sprintf("resumed: %d packets arrived while paused", held+int(p.heldDropped))
	if p.heldDropped > 0 {
		note += fmt.Sprintf(", %d of them dropped from view (only the newest %d are held)", p.heldDropped, p.keep)
	}
	return note
}

// count is how many packets the list shows.
func (p *packetsPane) count() int {
	if p.display == nil {
		return p.kept.len()
	}
	return len(p.shown)
}

func (p *packetsPane) entryAt(i int) *entry {
	if p.display == nil {
		return p.kept.at(i)
	}
	return p.kept.find(p.shown[i])
}

// selected is the packet under the cursor, nil when none.
func (p *packetsPane) selected() *entry {
	if p.count() == 0 {
		return nil
	}
	return p.entryAt(min(p.cursor, p.count()-1))
}

// setDisplay applies a display filter to everything kept.
func (p *packetsPane) setDisplay(expr *capture.Expr) {
	var at uint64
	if e := p.selected(); e != nil {
		at = e.seq
	}
	p.display = expr
	p.shown = p.shown[:0]
	if expr != nil {
		for i := range p.kept.len() {
			e := p.kept.at(i)
			if expr.Matches(e.pkt.Data, e.pkt.LinkType, p.vxlanPorts...) {
				p.shown = append(p.shown, e.seq)
			}
		}
	}
	// Stay on the packet that was selected, or the nearest after it.
	p.cursor = 0
	if !p.follow && at != 0 {
		p.cursor = sort.Search(p.count(), func(i int) bool { return p.entryAt(i).seq >= at })
	}
	p.top = 0
	p.trim()
}

// rows is how many packet rows fit under the info and header lines.
func (p *packetsPane) rows() int { return max(p.h-2, 1) }

func (p *packetsPane) scrollIntoView() {
	n := p.count()
	p.cursor = min(max(p.cursor, 0), max(n-1, 0))
	rows := p.rows()
	if p.cursor < p.top {
		p.top = p.cursor
	}
	if p.cursor >= p.top+rows {
		p.top = p.cursor - rows + 1
	}
	p.top = min(max(p.top, 0), max(n-rows, 0))
}

func (p *packetsPane) move(delta int) {
	p.cursor += delta
	p.follow = p.cursor >= p.count()-1
	p.scrollIntoView()
}

// openInput puts the text field up for one kind of input.
func (p *packetsPane) openInput(kind inputKind, value string) tea.Cmd {
	p.editing = kind
	p.inputErr = ""
	p.input.Prompt = inputPrompts[kind]
	p.input.SetValue(value)
	p.input.CursorEnd()
	return p.input.Focus()
}

func (p *packetsPane) closeInput() {
	p.editing = inputNone
	p.inputErr = ""
	p.input.Blur()
}

// submit applies what was typed; a filter that does not parse stays in the
// field with the error next to it.
func (p *packetsPane) submit() tea.Cmd {
	text := strings.TrimSpace(p.input.Value())
	kind := p.editing
	var expr *capture.Expr
	if kind != inputSave && text != "" {
		var err error
		if expr, err = capture.ParseExpr(text); err != nil {
			p.inputErr = err.Error()
			return nil
		}
	}
	switch kind {
	case inputDisplay:
		p.closeInput()
		p.setDisplay(expr)
	case inputKernel:
		p.closeInput()
		p.kernelText = text
		return msgCmd(kernelFilterMsg{expr: expr})
	case inputSave:
		if text == "" {
			p.inputErr = "give a file name"
			return nil
		}
		p.closeInput()
		return msgCmd(saveMsg{path: text})
	}
	return nil
}

// msgCmd is a command that only delivers msg.
func msgCmd(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }

func (p *packetsPane) update(msg tea.Msg) tea.Cmd {
	if p.editing != inputNone {
		if k, ok := msg.(tea.KeyMsg); ok {
			switch k.String() {
			case "enter":
				return p.submit()
			case "esc":
				p.closeInput()
				return nil
			}
		}
		var cmd tea.Cmd
		p.input, cmd = p.input.Update(msg)
		if _, ok := msg.(tea.KeyMsg); ok {
			p.inputErr = ""
		}
		return cmd
	}
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(k, p.keys.Up):
		p.move(-1)
	case key.Matches(k, p.keys.Down):
		p.move(1)
	case key.Matches(k, p.keys.PageUp):
		p.move(-p.rows())
	case key.Matches(k, p.keys.PageDown):
		p.move(p.rows())
	case key.Matches(k, p.keys.Top):
		p.cursor, p.follow = 0, false
		p.scrollIntoView()
	case key.Matches(k, p.keys.Bottom):
		p.cursor, p.follow = p.count()-1, true
		p.scrollIntoView()
	case key.Matches(k, p.keys.Open):
		if e := p.selected(); e != nil {
			e.decode(p.vxlanPorts)
			return msgCmd(showPacketMsg{e: *e})
		}
	}
	return nil
}

// Column widths that appear as the terminal gets wider.
const (
	timeColumnAt   = 100
	numberColumnAt = 116
)

func (p *packetsPane) view() string {
	var b strings.Builder
	b.WriteString(p.infoLine())
	b.WriteByte('\n')
	n := p.count()
	// The WHERE and PROTO columns are as wide as the rows on screen need.
	var rows []*entry
	cols := columns{where: len("WHERE"), proto: len("PROTO")}
	for i := p.top; i < min(p.top+p.rows(), n); i++ {
		e := p.entryAt(i)
		e.decode(p.vxlanPorts)
		rows = append(rows, e)
		cols.where = max(cols.where, len(e.pkt.Where()))
		cols.proto = max(cols.proto, len(e.proto))
	}
	cols.where = min(cols.where, maxWhere)
	b.WriteString(styleHeader.Render(fit(p.rowText(cols, "#", "TIME", "WHERE", "DIR", "PROTO", "INFO"), p.w)))
	b.WriteByte('\n')
	if n == 0 {
		b.WriteString(p.emptyText())
		return block(b.String(), p.w, p.h)
	}
	for k, e := range rows {
		line := fit(p.entryText(cols, e), p.w)
		if p.top+k == p.cursor {
			line = styleCursor.Render(line)
		} else {
			line = classStyles[e.cls].Render(line)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return block(b.String(), p.w, p.h)
}

// columns are the widths of the packet list's variable columns.
type columns struct{ where, proto int }

// maxWhere bounds the WHERE column ("underlay:veth-node1" is 19).
const maxWhere = 20

func (p *packetsPane) entryText(cols columns, e *entry) string {
	since := ""
	if !p.base.IsZero() {
		since = fmt.Sprintf("%.6f", e.pkt.Time.Sub(p.base).Seconds())
	}
	return p.rowText(cols, fmt.Sprint(e.seq), since, e.pkt.Where(), e.pkt.Type.String(), e.proto, e.info)
}

func (p *packetsPane) rowText(cols columns, num, at, where, dir, proto, info string) string {
	var b strings.Builder
	if p.w >= numberColumnAt {
		fmt.Fprintf(&b, "%7s ", num)
	}
	if p.w >= timeColumnAt {
		fmt.Fprintf(&b, "%10s ", at)
	}
	fmt.Fprintf(&b, "%s %-3s %s %s", fit(where, cols.where), dir, fit(proto, cols.proto), info)
	return b.String()
}

// infoLine is the first line: the filters, or the field being edited.
func (p *packetsPane) infoLine() string {
	if p.editing != inputNone {
		line := p.input.View()
		if p.inputErr != "" {
			line = cut(line, p.w/2) + "  " + styleError.Render(cut("✗ "+p.inputErr, p.w-p.w/2-2))
		}
		return line
	}
	display, kernel := "all", "all"
	if p.display != nil {
		display = p.display.String()
	}
	if p.kernelText != "" {
		kernel = p.kernelText
	}
	return cut(fmt.Sprintf("display filter: %s   capture filter: %s", display, kernel), p.w)
}

// emptyText says why the list is empty and what to do.
func (p *packetsPane) emptyText() string {
	switch {
	case p.kept.len() > 0:
		return fmt.Sprintf("None of the %d packets kept matches the display filter (/ to change it).", p.kept.len())
	case p.capturing && p.paused && p.held.len() > 0:
		return fmt.Sprintf("Paused: %d packets arrived (p shows them).", p.held.len())
	case p.capturing:
		return "Capturing on " + strings.Join(p.targets, ", ") + ": waiting for packets…"
	case p.endReason != "":
		return "The capture ended: " + p.endReason
	}
	return "No capture yet.\n\n" +
		"In the topology pane (1) move to an interface and press space to select it\n" +
		"(a selects every interface of a node or pod), then press c to capture."
}

// counts is the packet part of the status line. Paused, what is held and
// what was dropped from view come first: that is what the user waits for.
func (p *packetsPane) counts() string {
	var parts []string
	if p.paused {
		s := fmt.Sprintf("PAUSED: %d held", p.held.len())
		if p.heldDropped > 0 {
			s += fmt.Sprintf(", %d dropped from view", p.heldDropped)
		}
		parts = append(parts, s)
	}
	parts = append(parts, fmt.Sprintf("%d seen", p.seen))
	if p.display != nil {
		parts = append(parts, fmt.Sprintf("%d shown of %d kept", len(p.shown), p.kept.len()))
	} else {
		parts = append(parts, fmt.Sprintf("%d kept", p.kept.len()))
	}
	if p.stats.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d dropped by kernel", p.stats.Dropped))
	}
	return strings.Join(parts, " · ")
}

// displayed returns the packets the list shows, oldest first, for saving.
func (p *packetsPane) displayed() []capture.Packet {
	out := make([]capture.Packet, 0, p.count())
	for i := range p.count() {
		out = append(out, p.entryAt(i).pkt)
	}
	return out
}
