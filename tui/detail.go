package tui

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
)

type detailKeys struct {
	Up, Down, Left, Right, PageUp, PageDown, Prev, Next, Back key.Binding
}

// stepPacketMsg asks the packet list for the packet before (-1) or after
// (+1) the one the detail pane shows.
type stepPacketMsg struct{ delta int }

// detailPane shows one packet: where and when it was seen, tcpdump's line,
// every header of every level (outer and, through VXLAN or IPIP, inner),
// gopacket's list of layers and the bytes.
type detailPane struct {
	keys detailKeys
	w, h int
	e    *entry
	base time.Time
	vp   viewport.Model
}

func newDetailPane() *detailPane {
	vp := viewport.New(0, 0)
	vp.SetHorizontalStep(8)
	vp.KeyMap = viewportKeys()
	return &detailPane{
		keys: detailKeys{
			Up: keyUp, Down: keyDown, Left: keyLeft, Right: keyRight, PageUp: keyPageUp, PageDown: keyPageDown,
			Prev: binding([]string{"["}, "[", "previous packet"),
			Next: binding([]string{"]"}, "]", "next packet"),
			Back: binding([]string{"esc"}, "esc", "back to list"),
		},
		vp: vp,
	}
}

// viewportKeys are the arrows and page keys only: letters are the panes'.
func viewportKeys() viewport.KeyMap {
	return viewport.KeyMap{
		Up: keyUp, Down: keyDown, Left: keyLeft, Right: keyRight,
		PageUp: keyPageUp, PageDown: keyPageDown,
		HalfPageUp: key.NewBinding(key.WithDisabled()), HalfPageDown: key.NewBinding(key.WithDisabled()),
	}
}

func (d *detailPane) title() string { return "Detail" }

func (d *detailPane) setSize(w, h int) {
	d.w, d.h = w, h
	d.vp.Width, d.vp.Height = w, max(h, 1)
	d.render()
}

func (d *detailPane) shortHelp() []key.Binding {
	return []key.Binding{d.keys.Prev, d.keys.Next, d.keys.Down, d.keys.Back}
}

func (d *detailPane) fullHelp() [][]key.Binding {
	return [][]key.Binding{{d.keys.Up, d.keys.Down, d.keys.Left, d.keys.Right}, {d.keys.PageUp, d.keys.PageDown, d.keys.Prev, d.keys.Next, d.keys.Back}}
}

// show puts a packet in the pane; base is the capture's first packet time.
func (d *detailPane) show(e *entry, base time.Time) {
	if e != nil && d.e != nil && d.e.seq == e.seq && d.base.Equal(base) {
		return
	}
	if e != nil {
		c := *e
		e = &c // the list may drop its copy at any time
	}
	d.e, d.base = e, base
	d.render()
	d.vp.GotoTop()
	d.vp.SetXOffset(0)
}

func (d *detailPane) render() {
	if d.e == nil {
		d.vp.SetContent("No packet selected.\n\nPick one in the packet list (2) and press enter.")
		return
	}
	d.vp.SetContent(packetDetail(d.e, d.base, max(d.w, 40)))
}

func (d *detailPane) update(msg tea.Msg) tea.Cmd {
	k, ok := msg.(tea.KeyMsg)
	if !ok {
		return nil
	}
	switch {
	case key.Matches(k, d.keys.Prev):
		return msgCmd(stepPacketMsg{delta: -1})
	case key.Matches(k, d.keys.Next):
		return msgCmd(stepPacketMsg{delta: 1})
	}
	var cmd tea.Cmd
	d.vp, cmd = d.vp.Update(msg)
	return cmd
}

func (d *detailPane) view() string { return block(d.vp.View(), d.w, d.h) }

// packetDetail is the text of the detail pane for one packet, wrapped to
// width columns (but for the bytes, which take 76).
func packetDetail(e *entry, base time.Time, width int) string {
	p := &e.pkt
	var b strings.Builder
	head := fmt.Sprintf("Packet %d · %s %s · %d bytes on the wire, %d kept", e.seq, p.Where(), p.Type, p.Length, len(p.Data))
	if !base.IsZero() {
		head += fmt.Sprintf(" · +%.6f s", p.Time.Sub(base).Seconds())
	}
	b.WriteString(wrapWords(head, width, "") + "\n")
	fmt.Fprintf(&b, "seen %s in namespace %s\n", p.Time.Format("15:04:05.000000"), nsName(p.Namespace))
	b.WriteString("\n" + styleTitle.Render("tcpdump") + "\n")
	b.WriteString(wrapWords(p.String(), width, "  ") + "\n")
	b.WriteString("\n" + styleTitle.Render("Headers") + "\n")
	writeLevel(&b, &p.Headers, "  ", width)
	if p.Decoded != nil {
		var names []string
		for _, l := range p.Decoded.Layers() {
			names = append(names, l.LayerType().String())
		}
		b.WriteString("\n" + styleTitle.Render("Layers (gopacket)") + "\n")
		b.WriteString(wrapWords(strings.Join(names, " › "), width, "  ") + "\n")
		if f := p.Decoded.ErrorLayer(); f != nil {
			b.WriteString("  decoding stopped: " + f.Error().Error() + "\n")
		}
	}
	b.WriteString("\n" + styleTitle.Render(fmt.Sprintf("Bytes (%d)", len(p.Data))) + "\n")
	b.WriteString(hexDump(p.Data))
	return b.String()
}

func nsName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// writeLevel writes one level's headers, one per line, then the level
// inside it, indented.
func writeLevel(b *strings.Builder, h *capture.Headers, indent string, width int) {
	// A header's fields wrap under its first field.
	under := indent + strings.Repeat(" ", 10)
	row := func(name, format string, args ...any) {
		text := wrapWords(fmt.Sprintf(format, args...), width, under)
		fmt.Fprintf(b, "%s%-9s %s\n", indent, name, strings.TrimPrefix(text, under))
	}
	if e := h.Eth; e != nil {
		vlan := ""
		if e.VLAN != 0 {
			vlan = fmt.Sprintf(", vlan %d", e.VLAN)
		}
		row("Ethernet", "%s > %s, type %s%s", e.Src, e.Dst, etherName(e.Type), vlan)
	}
	if a := h.ARP; a != nil {
		op := map[uint16]string{capture.ARPRequest: "request", capture.ARPReply: "reply"}[a.Op]
		if op == "" {
			op = fmt.Sprintf("op %d", a.Op)
		}
		row("ARP", "%s: sender %s %s, target %s %s", op, a.SenderIP, a.SenderMAC, a.TargetIP, a.TargetMAC)
	}
	if ip := h.IPv4; ip != nil {
		var flags []string
		if ip.DF {
			flags = append(flags, "DF")
		}
		if ip.MF {
			flags = append(flags, "MF")
		}
		fl := ""
		if len(flags) > 0 {
			fl = ", " + strings.Join(flags, " ")
		}
		frag := ""
		if ip.FragOff != 0 {
			frag = fmt.Sprintf(", fragment offset %d", ip.FragOff)
		}
		row("IPv4", "%s > %s, ttl %d, id %d%s%s, tos 0x%02x, length %d, protocol %s", ip.Src, ip.Dst, ip.TTL, ip.ID, fl, frag, ip.TOS, ip.Length, ip.Protocol)
	}
	if ip := h.IPv6; ip != nil {
		row("IPv6", "%s > %s, hop limit %d, payload %d, next header %s", ip.Src, ip.Dst, ip.HopLimit, ip.Length, ip.NextHeader)
	}
	if m := h.ICMP; m != nil {
		words := icmpWords(h)
		if m.Type == capture.ICMPEchoRequest || m.Type == capture.ICMPEchoReply {
			words += fmt.Sprintf(" id %d", m.ID)
		}
		row("ICMP", "type %d code %d: %s, length %d", m.Type, m.Code, words, m.Length)
		if q := m.Quoted; q != nil {
			row("", "quotes %s > %s %s%s", q.Src, q.Dst, q.Protocol, ports(q.SrcPort, q.DstPort))
		}
	}
	if m := h.ICMPv6; m != nil {
		row("ICMPv6", "type %d code %d: %s, length %d", m.Type, m.Code, icmpWords(h), m.Length)
	}
	if t := h.TCP; t != nil {
		row("TCP", "%d > %d, flags [%s], seq %d, ack %d, window %d, payload %d", t.SrcPort, t.DstPort, t.Flags, t.Seq, t.Ack, t.Window, t.PayloadLen)
	}
	if u := h.UDP; u != nil {
		row("UDP", "%d > %d, length %d", u.SrcPort, u.DstPort, u.Length)
	}
	if g := h.IGMP; g != nil {
		row("IGMP", "type 0x%02x, group %s", g.Type, g.Group)
	}
	if v := h.VXLAN; v != nil {
		row("VXLAN", "vni %d, flags 0x%02x", v.VNI, v.Flags)
	}
	if h.Err != "" {
		row("", "decoding stopped: %s", h.Err)
	}
	if h.Inner != nil {
		what := "IP in IP"
		if h.VXLAN != nil {
			what = fmt.Sprintf("VXLAN vni %d", h.VXLAN.VNI)
		}
		fmt.Fprintf(b, "%s└ inside the tunnel (%s):\n", indent, what)
		writeLevel(b, h.Inner, indent+"  ", width)
	}
}

func ports(s, d uint16) string {
	if s == 0 && d == 0 {
		return ""
	}
	return fmt.Sprintf(" ports %d > %d", s, d)
}

// hexDump writes bytes as `xxd` does: offset, sixteen bytes, their text.
func hexDump(data []byte) string {
	var b strings.Builder
	for off := 0; off < len(data); off += 16 {
		line := data[off:min(off+16, len(data))]
		fmt.Fprintf(&b, "  %04x  ", off)
		for i := range 16 {
			if i < len(line) {
				fmt.Fprintf(&b, "%02x ", line[i])
			} else {
				b.WriteString("   ")
			}
			if i == 7 {
				b.WriteByte(' ')
			}
		}
		b.WriteByte(' ')
		for _, c := range line {
			if c < 0x20 || c > 0x7e {
				c = '.'
			}
			b.WriteByte(c)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// wrapWords breaks text at spaces into lines of at most width columns,
// each starting with indent.
func wrapWords(text string, width int, indent string) string {
	var lines []string
	line, n, in := indent, utf8.RuneCountInString(indent), utf8.RuneCountInString(indent)
	for _, w := range strings.Fields(text) {
		wn := utf8.RuneCountInString(w)
		if n > in && n+1+wn > width {
			lines = append(lines, line)
			line, n = indent, in
		}
		if n > in {
			line += " "
			n++
		}
		line += w
		n += wn
	}
	return strings.Join(append(lines, line), "\n")
}
