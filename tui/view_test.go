package tui

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/golden"
)

// sizes are the terminals every pane is pinned at: the smallest the TUI is
// made for, and a roomy one (where the packet list gains its number and
// time columns and shares the screen with the detail).
var sizes = []struct{ w, h int }{{80, 24}, {120, 40}}

// picked are the interfaces the recording captured on.
var picked = []string{"pod1:eth0", "underlay:veth-node1", "underlay:veth-node3", "node3:tunl0", "pod2:eth0", "pod3:eth0"}

// fixtureModel is the TUI on the recorded lab, sized w×h, its status read.
func fixtureModel(t *testing.T, w, h int, s *scenario.Scenario) (*Model, *runtime, *fake, []capture.Packet) {
	t.Helper()
	f, pkts := loadFixture(t)
	fk := &fake{st: f.Status, journey: f.Journey}
	ctx, cancel := context.WithCancel(context.Background())
	m := New(ctx, Options{Backend: fk, Lab: fixtureLab, Scenario: s, Refresh: time.Hour})
	r := newRuntime(t, m)
	// These run before the runtime waits for the commands to end.
	t.Cleanup(m.close)
	t.Cleanup(cancel)
	r.send(tea.WindowSizeMsg{Width: w, Height: h})
	r.send(statusMsg{st: f.Status})
	return m, r, fk, pkts
}

// capturing starts a capture on the recorded interfaces and delivers the
// recorded packets, in batches as a capture would.
func capturing(t *testing.T, m *Model, r *runtime, fk *fake, pkts []capture.Packet) {
	t.Helper()
	if unknown := m.topo.selectTargets(picked); len(unknown) > 0 {
		t.Fatalf("no interfaces %v", unknown)
	}
	r.keys("c")
	r.until("the capture", 5*time.Second, func() bool { return m.feed != nil })
	for b := range slices.Chunk(pkts, 16) {
		fk.feed().send(b)
	}
	r.until("the packets", 5*time.Second, func() bool { return m.packets.seen == uint64(len(pkts)) })
}

func checkView(t *testing.T, m *Model, name string, w, h int) {
	t.Helper()
	view := m.View()
	got := plain(view)
	// Every frame fills the terminal exactly, and no line is wider.
	lines := splitLines(view)
	if len(lines) != h {
		t.Errorf("%s: %d lines, want %d", name, len(lines), h)
	}
	for i, l := range lines {
		if n := width(l); n > w {
			t.Errorf("%s: line %d is %d columns wide: %q", name, i+1, n, l)
		}
	}
	golden.Check(t, filepath.Join("testdata", fmt.Sprintf("%s-%dx%d.golden", name, w, h)), []byte(got))
}

func TestViewTopology(t *testing.T) {
	for _, sz := range sizes {
		m, r, _, _ := fixtureModel(t, sz.w, sz.h, nil)
		m.topo.selectTargets([]string{"pod1:eth0", "node1:tunl0"})
		r.keys("down", "down", "down", "down", "down", "down")
		checkView(t, m, "topology", sz.w, sz.h)
		r.keys("v")
		checkView(t, m, "topology-graph", sz.w, sz.h)
	}
}

// A topology file that is not running shows its graph and how to bring it
// up, and nothing else.
func TestViewFile(t *testing.T) {
	topo, err := spec.Load(filepath.Join("testdata", "mixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sz := range sizes {
		m := New(context.Background(), Options{Topology: topo, File: "tui/testdata/mixed.yaml"})
		m.Update(tea.WindowSizeMsg{Width: sz.w, Height: sz.h})
		checkView(t, m, "file", sz.w, sz.h)
		// Capture keys do nothing here.
		_, cmd := m.Update(keyMsg("c"))
		if cmd != nil || len(m.panes) != 1 {
			t.Errorf("a file view has %d panes and c returned %v", len(m.panes), cmd)
		}
	}
}

func TestViewPackets(t *testing.T) {
	for _, sz := range sizes {
		m, r, fk, pkts := fixtureModel(t, sz.w, sz.h, nil)
		capturing(t, m, r, fk, pkts)
		checkView(t, m, "packets-follow", sz.w, sz.h)
		// The top of the list: ARP and the first echoes.
		r.keys("g")
		checkView(t, m, "packets-top", sz.w, sz.h)
		// Tunnels only, by a display filter.
		r.keys("/")
		r.typeText("udp port 8472 or ip proto 4")
		r.keys("enter")
		checkView(t, m, "packets-tunnels", sz.w, sz.h)
	}
}

// The detail pane of a packet of each tunnel: every header, the outer
// ones and, indented, those inside.
func TestViewDetail(t *testing.T) {
	for _, sz := range sizes {
		m, r, fk, pkts := fixtureModel(t, sz.w, sz.h, nil)
		capturing(t, m, r, fk, pkts)
		for _, want := range []class{classVXLAN, classIPIP, classICMPError, classTCP} {
			i := slices.IndexFunc(pkts, func(p capture.Packet) bool {
				d := capture.Decode(p.Data, p.LinkType)
				return classify(&d.Headers) == want
			})
			if i < 0 {
				t.Fatalf("the recording has no %s packet", want)
			}
			m.packets.cursor, m.packets.follow = i, false
			r.keys("2", "enter")
			r.until("the detail", 5*time.Second, func() bool { return m.detail.e != nil && m.detail.e.seq == uint64(i+1) })
			if m.activeID() != paneDetail && !m.split() {
				t.Fatalf("enter did not open the detail")
			}
			name := fmt.Sprintf("detail-%s", classNames[want])
			if want == classICMPError {
				name = "detail-ICMP-error"
			}
			checkView(t, m, name, sz.w, sz.h)
		}
	}
}

func TestViewProbe(t *testing.T) {
	f, _ := loadFixture(t)
	for _, sz := range sizes {
		m, r, _, _ := fixtureModel(t, sz.w, sz.h, nil)
		m.topo.selectTargets([]string{"pod1:eth0", "pod3:eth0"})
		r.keys("4")
		checkView(t, m, "probe-form", sz.w, sz.h)
		// What the live test's ping pod1 → pod3 and its trace came to.
		m.probe.run++
		r.send(probeDoneMsg{run: m.probe.run, text: f.Ping})
		r.send(traceDoneMsg{run: m.probe.run, j: f.Journey})
		checkView(t, m, "probe-trace", sz.w, sz.h)
	}
}

func loadScenario(t *testing.T) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Load(filepath.Join("..", "scenarios", "two-node-basics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scenarioResults are what a grader might report for two-node-basics.
func scenarioResults(s *scenario.Scenario) []report.Check {
	var out []report.Check
	for i, c := range s.Checks() {
		rc := report.Check{ID: c.ID, Title: c.Title, Section: c.Section, Kind: c.Kind, Status: report.Pass, Points: c.Points, MaxPoints: c.Points, Observed: "as expected"}
		if i == 3 {
			rc.Status, rc.Points, rc.Observed, rc.Hint = report.Fail, 0, "0 of 3 echoes answered: destination host unreachable", c.Hint
		}
		out = append(out, rc)
	}
	return out
}

func TestViewScenario(t *testing.T) {
	s := loadScenario(t)
	results := scenarioResults(s)
	for _, sz := range sizes {
		m, r, fk, _ := fixtureModel(t, sz.w, sz.h, s)
		r.keys("5")
		checkView(t, m, "scenario-before", sz.w, sz.h)
		// Halfway: three checks in, the fourth running.
		m.scen.run++
		m.scen.running = true
		for _, c := range results[:3] {
			m.scen.record(c)
		}
		checkView(t, m, "scenario-running", sz.w, sz.h)
		// All graded, the failed one selected with its hint.
		fk.checks = results
		m.scen.running = false
		r.keys("r")
		r.until("the grade", 5*time.Second, func() bool { return m.scen.graded })
		r.keys("down", "down", "down")
		checkView(t, m, "scenario-graded", sz.w, sz.h)
	}
}

func TestViewHelp(t *testing.T) {
	for _, sz := range sizes {
		m, r, _, _ := fixtureModel(t, sz.w, sz.h, nil)
		r.keys("2", "?")
		checkView(t, m, "help", sz.w, sz.h)
	}
}
