package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/probe"
)

// newFixtureModel is fixtureModel with options of the test's own.
func newFixtureModel(t *testing.T, opt Options) (*Model, *runtime, *fake, []capture.Packet) {
	t.Helper()
	f, pkts := loadFixture(t)
	fk := &fake{st: f.Status, journey: f.Journey}
	ctx, cancel := context.WithCancel(context.Background())
	opt.Backend, opt.Lab, opt.Refresh = fk, fixtureLab, time.Hour
	m := New(ctx, opt)
	r := newRuntime(t, m)
	t.Cleanup(m.close)
	t.Cleanup(cancel)
	r.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	r.send(statusMsg{st: f.Status})
	return m, r, fk, pkts
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func TestKeysMoveBetweenPanes(t *testing.T) {
	m, r, _, _ := newFixtureModel(t, Options{})
	steps := []struct {
		key  string
		want paneID
	}{
		{"tab", panePackets}, {"tab", paneDetail}, {"tab", paneProbe}, {"tab", paneTopology},
		{"shift+tab", paneProbe}, {"2", panePackets}, {"1", paneTopology}, {"4", paneProbe},
		{"5", paneProbe}, // no scenario pane without a scenario
		{"3", paneDetail}, {"esc", panePackets},
	}
	for _, s := range steps {
		r.keys(s.key)
		if got := m.activeID(); got != s.want {
			t.Fatalf("after %q the active pane is %s, want %s", s.key, m.pane(got).title(), m.pane(s.want).title())
		}
	}
	if _, cmd := m.Update(keyMsg("q")); !isQuit(cmd) {
		t.Error("q does not quit")
	}
	// While the filter field has the keyboard, q is a letter and ctrl+c
	// still quits.
	r.keys("/")
	if _, cmd := m.Update(keyMsg("q")); isQuit(cmd) || m.packets.input.Value() != "q" {
		t.Errorf("q in the filter field quit or was lost (field %q)", m.packets.input.Value())
	}
	if _, cmd := m.Update(keyMsg("ctrl+c")); !isQuit(cmd) {
		t.Error("ctrl+c does not quit while editing")
	}
	// Keys that arrive together ("2p/ic" read at once) act one by one; in
	// the filter field they are text.
	r.keys("esc")
	r.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("4p/ic")})
	if m.activeID() != panePackets || !m.packets.paused || m.packets.editing != inputDisplay || m.packets.input.Value() != "ic" {
		t.Errorf("4p/ic: pane %s, paused %v, editing %v with %q", m.pane(m.activeID()).title(), m.packets.paused, m.packets.editing, m.packets.input.Value())
	}
	r.keys("esc", "p")
	if _, cmd := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("pq")}); cmd == nil || !m.packets.paused {
		t.Error("pq did not pause")
	} else if !isQuit(cmd) {
		t.Error("pq did not quit")
	}
	m.packets.setPaused(false)
	// ? shows every key until the next key.
	r.keys("esc", "?")
	if !strings.Contains(plain(m.View()), "Keys of the packets pane") {
		t.Errorf("? shows no help:\n%s", plain(m.View()))
	}
	r.keys("down")
	if m.showHelp {
		t.Error("a key did not close the help")
	}
}

// Every pane fills the terminal exactly at every size, also after the
// terminal shrinks and grows again, and too small a terminal says so.
func TestResize(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{})
	capturing(t, m, r, fk, pkts)
	for _, sz := range []struct{ w, h int }{{80, 24}, {200, 60}, {40, 8}, {100, 30}, {81, 25}, {80, 24}} {
		r.send(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
		for _, key := range []string{"1", "v", "2", "enter", "3", "4", "?"} {
			r.keys(key)
			r.settle(5 * time.Millisecond)
			view := m.View()
			lines := splitLines(view)
			if len(lines) != sz.h {
				t.Errorf("%dx%d after %q: %d lines", sz.w, sz.h, key, len(lines))
			}
			for i, l := range lines {
				if width(l) > sz.w {
					t.Errorf("%dx%d after %q: line %d is %d wide", sz.w, sz.h, key, i+1, width(l))
				}
			}
			if key == "?" {
				r.keys("esc")
			}
		}
	}
	r.send(tea.WindowSizeMsg{Width: 30, Height: 5})
	if v := m.View(); !strings.Contains(v, "at least 40×8") || strings.Count(v, "\n") > 0 {
		t.Errorf("a 30x5 terminal shows %q", v)
	}
	// The cursor stays on its packet across a resize.
	r.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	r.keys("2", "g", "down", "down")
	before := m.packets.selected().seq
	r.send(tea.WindowSizeMsg{Width: 120, Height: 50})
	r.send(tea.WindowSizeMsg{Width: 80, Height: 24})
	if got := m.packets.selected().seq; got != before {
		t.Errorf("the selected packet moved from %d to %d", before, got)
	}
}

// packetsOf makes n distinct raw packets (ICMP echoes, seq 1..n).
func packetsOf(t *testing.T, pkts []capture.Packet, n int) []capture.Packet {
	t.Helper()
	var echo capture.Packet
	for _, p := range pkts {
		d := capture.Decode(p.Data, p.LinkType)
		if d.ICMP != nil && d.ICMP.Type == capture.ICMPEchoRequest && d.Eth != nil {
			echo = p
			break
		}
	}
	out := make([]capture.Packet, n)
	for i := range out {
		out[i] = echo
		out[i].Time = echo.Time.Add(time.Duration(i) * time.Microsecond)
	}
	return out
}

func TestPauseResume(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{Keep: 100})
	if unknown := m.topo.selectTargets(picked); len(unknown) > 0 {
		t.Fatal(unknown)
	}
	r.keys("c")
	r.until("the capture", 5*time.Second, func() bool { return m.feed != nil })
	more := packetsOf(t, pkts, 400)
	fk.feed().send(more[:50])
	r.until("50 packets", 5*time.Second, func() bool { return m.packets.seen == 50 })
	r.keys("p")
	if !m.packets.paused {
		t.Fatal("p did not pause")
	}
	frozen := plain(m.packets.view())
	// 250 more arrive: read and counted, the view unchanged; only the
	// newest 100 are held, 150 are dropped from view.
	for i := 50; i < 300; i += 50 {
		fk.feed().send(more[i : i+50])
	}
	r.until("300 packets", 5*time.Second, func() bool { return m.packets.seen == 300 })
	if got := plain(m.packets.view()); got != frozen {
		t.Errorf("the list changed while paused:\n%s", got)
	}
	status := plain(m.statusLine())
	for _, want := range []string{"300 seen", "50 kept", "PAUSED: 100 held, 150 dropped from view"} {
		if !strings.Contains(status, want) {
			t.Errorf("status %q lacks %q", status, want)
		}
	}
	r.keys("p")
	if m.packets.paused {
		t.Fatal("p did not resume")
	}
	if !strings.Contains(m.notice, "250 packets arrived while paused, 150 of them dropped from view") {
		t.Errorf("resume notice %q", m.notice)
	}
	// The list holds the newest 100, in order, and follows the newest.
	if n := m.packets.kept.len(); n != 100 {
		t.Errorf("%d kept, want 100", n)
	}
	if first, last := m.packets.kept.at(0).seq, m.packets.kept.at(99).seq; first != 201 || last != 300 {
		t.Errorf("kept %d..%d, want 201..300", first, last)
	}
	if e := m.packets.selected(); e == nil || e.seq != 300 {
		t.Errorf("the cursor is not on the newest packet")
	}
}

// A filter that does not parse stays in its field with the parser's
// error next to it, and changes nothing; a good one applies.
func TestFilterErrors(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{})
	capturing(t, m, r, fk, pkts)
	for _, bad := range []string{"tcp port 99999", "host 10.0.0.300", "icmp and", "frobnicate"} {
		r.keys("/")
		r.send(tea.KeyMsg{Type: tea.KeyCtrlU}) // clear the field
		r.typeText(bad)
		r.keys("enter")
		_, want := capture.ParseExpr(bad)
		if want == nil {
			t.Fatalf("%q parses", bad)
		}
		if m.packets.editing != inputDisplay || m.packets.inputErr != want.Error() {
			t.Errorf("%q: editing %v, error %q, want %q", bad, m.packets.editing, m.packets.inputErr, want)
		}
		if v := plain(m.View()); !strings.Contains(v, "✗ "+want.Error()[:20]) {
			t.Errorf("%q: the error is not shown:\n%s", bad, v)
		}
		if m.packets.display != nil {
			t.Errorf("%q was applied", bad)
		}
		r.keys("esc")
	}
	// Typing again clears the error.
	r.keys("/")
	r.typeText("icmp and")
	r.keys("enter")
	r.typeText(" arp")
	if m.packets.inputErr != "" {
		t.Errorf("the error stayed while typing: %q", m.packets.inputErr)
	}
	r.keys("enter")
	if m.packets.display == nil || m.packets.count() != 0 {
		t.Errorf("icmp and arp: display %v, %d shown", m.packets.display, m.packets.count())
	}
	r.keys("/")
	r.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	r.typeText("arp")
	r.keys("enter")
	arp := 0
	for _, p := range pkts {
		if d := capture.Decode(p.Data, p.LinkType); d.ARP != nil {
			arp++
		}
	}
	if m.packets.count() != arp || arp == 0 {
		t.Errorf("arp shows %d packets, the recording has %d", m.packets.count(), arp)
	}
	// An empty filter shows everything again.
	r.keys("/")
	r.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	r.keys("enter")
	if m.packets.display != nil || m.packets.count() != len(pkts) {
		t.Errorf("no filter: %d shown of %d", m.packets.count(), len(pkts))
	}

	// The capture filter: a bad one is refused the same way; a good one
	// starts the capture again, filtered in the kernel.
	r.keys("f")
	r.typeText("udp port")
	r.keys("enter")
	if m.packets.inputErr == "" {
		t.Error("udp port: no error")
	}
	r.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	r.typeText("icmp or arp")
	r.keys("enter")
	r.until("the filtered capture", 5*time.Second, func() bool { _, opts := fk.started(); return len(opts) == 2 && m.feed != nil })
	feeds, opts := fk.started()
	if e := opts[1].Expr; e == nil || e.String() != "icmp or arp" {
		t.Errorf("the new capture's filter is %v", e)
	}
	if !strings.Contains(plain(m.View()), "capture filter: icmp or arp") {
		t.Errorf("the capture filter is not shown:\n%s", plain(m.View()))
	}
	r.until("the first capture closed", 5*time.Second, feeds[0].isClosed)
}

// The list keeps at most Keep packets and keepBytes of data, whatever
// arrives: the oldest go, the counts say so.
func TestBoundedBuffers(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{Keep: 100})
	m.topo.selectTargets(picked)
	r.keys("c")
	r.until("the capture", 5*time.Second, func() bool { return m.feed != nil })
	more := packetsOf(t, pkts, 10000)
	for i := 0; i < len(more); i += 1000 {
		fk.feed().send(more[i : i+1000])
	}
	r.until("10000 packets", 10*time.Second, func() bool { return m.packets.seen == 10000 })
	if n := m.packets.kept.len(); n != 100 {
		t.Errorf("%d kept, want 100", n)
	}
	if d := m.packets.kept.dropped; d != 9900 {
		t.Errorf("%d dropped from the ring, want 9900", d)
	}
	if e := m.packets.selected(); e == nil || e.seq != 10000 {
		t.Error("the list does not follow the newest packet")
	}
	// Large packets: the byte bound keeps fewer.
	ring := newRing(DefaultKeep, keepBytes)
	big := capture.Packet{Data: make([]byte, 64<<10)}
	for i := range 2000 {
		ring.push(entry{seq: uint64(i + 1), pkt: big})
	}
	if ring.bytes > keepBytes || ring.len() != keepBytes/(64<<10) {
		t.Errorf("64 KiB packets: %d kept, %d bytes", ring.len(), ring.bytes)
	}
	if e := ring.find(2000); e == nil || ring.find(1) != nil {
		t.Error("find: the newest is not found or the oldest still is")
	}
}

// The packet command gathers what arrives within a frame into one
// message, and a lone packet comes at once.
func TestWaitPacketsGathers(t *testing.T) {
	feed := &fakeFeed{ch: make(chan []capture.Packet, 1000)}
	one := []capture.Packet{{Data: []byte{1}}}
	// A frame after the last message, what is there goes at once.
	feed.send(one)
	feed.send(one)
	start := time.Now()
	msg := waitPackets(1, feed, time.Now().Add(-2*frame))().(packetsMsg)
	if len(msg.pkts) != 2 || time.Since(start) >= frame {
		t.Errorf("2 ready packets: %d in %s", len(msg.pkts), time.Since(start))
	}
	// Right after a message, what arrives within the frame comes in one.
	for range 20 {
		feed.send(one)
	}
	start = time.Now()
	msg = waitPackets(1, feed, time.Now())().(packetsMsg)
	if len(msg.pkts) != 20 || time.Since(start) < frame/2 {
		t.Errorf("a frame gathered %d packets in %s, want 20 after about %s", len(msg.pkts), time.Since(start), frame)
	}
	feed.Close()
	if msg := waitPackets(1, feed, time.Time{})().(packetsMsg); !msg.done {
		t.Error("a closed capture is not reported done")
	}
}

func TestCaptureNeedsSelection(t *testing.T) {
	m, r, fk, _ := newFixtureModel(t, Options{})
	r.keys("c")
	if feeds, _ := fk.started(); m.feed != nil || m.starting || !strings.Contains(m.notice, "nothing selected") || len(feeds) != 0 {
		t.Errorf("c without a selection: notice %q", m.notice)
	}
	r.keys("x")
	if !strings.Contains(m.notice, "no capture is running") {
		t.Errorf("x without a capture: %q", m.notice)
	}
	fk.captureErr = errors.New(`capture on pod1:eth0: open: operation not permitted`)
	m.topo.selectTargets([]string{"pod1:eth0"})
	r.keys("c")
	r.until("the error", 5*time.Second, func() bool { return !m.starting })
	if !strings.Contains(plain(m.statusLine()), "operation not permitted") || m.feed != nil {
		t.Errorf("a failed capture shows %q", plain(m.statusLine()))
	}
}

// Space picks an interface, on a namespace's line all of its own; a and n
// pick all and none.
func TestTopologySelection(t *testing.T) {
	m, r, _, _ := newFixtureModel(t, Options{})
	if m.topo.rows[m.topo.cursor].label != "underlay" {
		t.Fatalf("the cursor starts on %q", m.topo.rows[m.topo.cursor].label)
	}
	r.keys(" ")
	if got := len(m.topo.targets()); got != 4 {
		t.Errorf("space on the underlay picked %d interfaces, want its 4", got)
	}
	r.keys(" ", "down", " ")
	tg := m.topo.targets()
	if len(tg) != 1 || tg[0].Label != "underlay" || tg[0].Interface != "underlay0" || tg[0].Namespace != "/run/netns/mixed-underlay" {
		t.Errorf("picked %+v", tg)
	}
	r.keys("a")
	all := len(m.topo.targets())
	r.keys("n")
	if all < 20 || len(m.topo.targets()) != 0 {
		t.Errorf("a picked %d, n left %d", all, len(m.topo.targets()))
	}
	if unknown := m.topo.selectTargets([]string{"pod3", "node9:eth0", "node1:nope"}); len(unknown) != 2 {
		t.Errorf("unknown %v", unknown)
	}
	if got := m.topo.pickedObjects(); len(got) != 1 || got[0] != "pod3" {
		t.Errorf("picked objects %v", got)
	}
	// The cursor skips lines that are not namespaces or interfaces.
	for range 200 {
		r.keys("down")
		if !m.topo.rows[m.topo.cursor].selectable() {
			t.Fatalf("the cursor is on %q", m.topo.rows[m.topo.cursor].text)
		}
	}
}

// The lab going away stops the capture and says so; so does a captured
// namespace that went missing.
func TestLabGoes(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{})
	capturing(t, m, r, fk, pkts)
	st := *m.st
	st.Namespaces = append([]lab.NamespaceStatus(nil), st.Namespaces...)
	for i := range st.Namespaces {
		if st.Namespaces[i].Name == "pod3" {
			st.Namespaces[i].Present, st.Namespaces[i].State = false, "missing"
		}
	}
	r.send(statusMsg{st: &st})
	if m.feed != nil || !strings.Contains(m.packets.endReason, "mixed-pod3 is missing") {
		t.Errorf("a missing namespace left the capture running (%q)", m.packets.endReason)
	}
	feeds, _ := fk.started()
	r.until("the close", 5*time.Second, feeds[0].isClosed)
	r.send(statusMsg{err: fmt.Errorf("lab %q: %w", fixtureLab, lab.ErrNotFound)})
	if !strings.Contains(plain(m.statusLine()), `lab "mixed" is gone`) {
		t.Errorf("status line %q", plain(m.statusLine()))
	}
}

// w saves the packets the list shows as pcapng, never over a file.
func TestSave(t *testing.T) {
	m, r, fk, pkts := newFixtureModel(t, Options{})
	capturing(t, m, r, fk, pkts)
	r.keys("/")
	r.typeText("icmp")
	r.keys("enter")
	shown := m.packets.count()
	r.keys("w")
	if m.packets.editing != inputSave || !strings.HasPrefix(m.packets.input.Value(), "mixed-") {
		t.Fatalf("w opened %v with %q", m.packets.editing, m.packets.input.Value())
	}
	path := filepath.Join(t.TempDir(), "saved.pcapng")
	r.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	r.typeText(path)
	r.keys("enter")
	r.until("the save", 5*time.Second, func() bool { return strings.Contains(m.notice, "saved") || strings.Contains(m.notice, "save:") })
	if want := fmt.Sprintf("saved %d packets to %s", shown, path); m.notice != want {
		t.Fatalf("notice %q, want %q", m.notice, want)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ng, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, _, err := ng.ReadPacketData()
		if err != nil {
			break
		}
		n++
	}
	if n != shown {
		t.Errorf("the file holds %d packets, want %d", n, shown)
	}
	// Again to the same file: refused, nothing overwritten.
	r.keys("w")
	r.send(tea.KeyMsg{Type: tea.KeyCtrlU})
	r.typeText(path)
	r.keys("enter")
	r.until("the refusal", 5*time.Second, func() bool { return strings.Contains(m.notice, "already exists") })
}

// The probe pane pings, then traces; curl gets, then traces a SYN to the
// port.
func TestProbe(t *testing.T) {
	m, r, fk, _ := newFixtureModel(t, Options{})
	fk.ping = probe.PingResult{Dst: m.st.Topology.Pods()[2].IP, Sent: 3, Received: 3, Echoes: []probe.Echo{{Seq: 1, TTL: 62, RTT: time.Millisecond}, {Seq: 2, TTL: 62, RTT: time.Millisecond}, {Seq: 3, TTL: 62, RTT: time.Millisecond}}}
	m.topo.selectTargets([]string{"pod1:eth0", "pod3:eth0"})
	r.keys("4")
	if got := m.probe.plan(); got != "ping pod1 → pod3 (3 echoes), then trace one" {
		t.Errorf("plan %q", got)
	}
	r.keys("enter")
	r.until("the trace", 5*time.Second, func() bool { return !m.probe.running })
	if !strings.Contains(m.probe.outcome, "3 of 3 echoes answered") || m.probe.journey == nil {
		t.Errorf("outcome %q, journey %v", m.probe.outcome, m.probe.journey != nil)
	}
	// To the kind field, curl, and a port of our own.
	r.keys("up", "up", "up", "up", "right", "down", "down", "down")
	r.keys("backspace", "backspace")
	r.typeText("443")
	if m.probe.port != "443" {
		t.Fatalf("port %q", m.probe.port)
	}
	r.keys("backspace", "backspace", "backspace")
	r.typeText("80")
	r.keys("enter")
	r.until("the second trace", 5*time.Second, func() bool { return !m.probe.running })
	if !strings.Contains(m.probe.outcome, "200 OK") {
		t.Errorf("curl outcome %q", m.probe.outcome)
	}
	if got, want := fk.tracedSoFar(), []string{"pod1>pod3:icmp", "pod1>pod3:tcp"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("traced %v, want %v", got, want)
	}
	// A port that is none.
	r.keys("up")
	r.keys("backspace", "backspace")
	r.typeText("0")
	r.keys("enter")
	if !strings.Contains(m.probe.outcome, `port "0"`) {
		t.Errorf("port 0: %q", m.probe.outcome)
	}
}
