package tui

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/trace"
	"github.com/labctl/labctl/emulator/workload"
	"github.com/labctl/labctl/internal/nstest"
)

var record = flag.Bool("record", false, "TestLive saves what it captured as "+fixtureFile+" for the golden tests")

// buildLabctl builds the labctl binary the lab's helper processes (pod
// supervisors, the userspace IPIP datapath) run from.
func buildLabctl(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "labctl")
	cmd := exec.Command("go", "build", "-o", exe, "../cmd/labctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build labctl: %v\n%s", err, out)
	}
	return exe
}

// TestLive drives the TUI's model against a real lab of every backend
// through the Live backend: the status fills the topology pane, a capture
// picked there delivers ARP, ICMP (an error too), TCP, UDP, VXLAN and IPIP
// packets to the list, the probe pane's ping and curl come back with their
// traces, and a namespace's routes open. With -record it saves what it saw
// for the golden tests.
func TestLive(t *testing.T) {
	nstest.NeedRoot(t)
	exe := buildLabctl(t)
	name := nstest.Unique(nsPrefix)
	topo, err := spec.Load(filepath.Join("testdata", "mixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if topo, err = topo.Renamed(name); err != nil {
		t.Fatal(err)
	}
	m := lab.Manager{StateDir: filepath.Join(t.TempDir(), "state"), Executable: exe}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if _, err := m.Down(name); err != nil && !errors.Is(err, lab.ErrNotFound) {
			t.Errorf("down: %v", err)
		}
	})
	if _, err := m.Up(ctx, topo, lab.UpOptions{}); err != nil {
		t.Fatalf("up: %v", err)
	}

	model := New(ctx, Options{Backend: Live{Manager: m, Lab: name}, Lab: name, Refresh: time.Hour})
	r := newRuntime(t, model)
	defer model.close()
	r.send(tea.WindowSizeMsg{Width: 120, Height: 40})
	r.exec(model.Init())
	r.until("the lab's status", 10*time.Second, func() bool { return model.st != nil })
	// Containers start while the lab is already up: read the status again
	// until every one runs, as the refresh tick would.
	running := func() bool {
		for _, ns := range model.st.Namespaces {
			if ns.Role == plan.RolePod && (ns.Pod == nil || slices.ContainsFunc(ns.Pod.Containers, func(c workload.ContainerStatus) bool { return c.State != workload.StateRunning })) {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(15 * time.Second); !running(); {
		if time.Now().After(deadline) {
			t.Fatalf("containers not running:\n%s", plain(model.View()))
		}
		r.send(refreshMsg{})
		r.settle(200 * time.Millisecond)
	}
	var tree []string
	for _, row := range model.topo.rows {
		tree = append(tree, row.text)
	}
	view := strings.Join(tree, "\n")
	for _, want := range []string{"pod3", "tunl0", "flannel.1", "vni 1, udp 8472", "web Running", "node2 ⇄ node3  vxlan"} {
		if !strings.Contains(view, want) {
			t.Errorf("the topology pane lacks %q:\n%s", want, view)
		}
	}

	// Pick interfaces on every kind of path, and capture.
	picked := []string{"pod1:eth0", "underlay:veth-node1", "underlay:veth-node3", "node3:tunl0", "pod2:eth0", "pod3:eth0"}
	if unknown := model.topo.selectTargets(picked); len(unknown) > 0 {
		t.Fatalf("no interfaces %v in the topology pane:\n%s", unknown, view)
	}
	r.keys("c")
	r.until("the capture", 10*time.Second, func() bool { return model.feed != nil })
	if got := len(model.targets); got != len(picked) {
		t.Errorf("capturing on %d interfaces, want %d", got, len(picked))
	}

	// The probe pane: ping pod1 → pod3 (IPIP), then its trace.
	r.keys("4")
	model.probe.from, model.probe.to = model.probe.index("pod1"), model.probe.index("pod3")
	r.keys("enter")
	r.until("the ping's trace", 20*time.Second, func() bool { return !model.probe.running })
	j := model.probe.journey
	if j == nil || !j.Request.Arrived || j.Answer.Kind != trace.AnswerReply {
		t.Fatalf("the trace did not arrive:\n%s", plain(model.View()))
	}
	ping := model.probe.outcome
	if !strings.Contains(ping, "3 of 3 echoes answered") {
		t.Errorf("ping outcome %q", ping)
	}
	journey := j

	// curl pod1 → pod3:80, traced as a TCP SYN.
	r.keys("up", "up", "up", "up", "right", "enter")
	r.until("the curl's trace", 20*time.Second, func() bool { return !model.probe.running })
	if out := model.probe.outcome; !strings.Contains(out, "200 OK") {
		t.Errorf("curl outcome %q", out)
	}
	if j := model.probe.journey; j == nil || j.Probe.Protocol != trace.TCP || !j.Request.Arrived {
		t.Errorf("the curl's trace:\n%s", plain(model.View()))
	}

	// More traffic of other kinds: host-gw and VXLAN pings, a UDP echo,
	// and an echo no route leads to (node1 answers it with an ICMP error).
	ns := func(obj string) string { return netns.Path(plan.NamespaceName(name, obj)) }
	ip := func(obj string) netip.Addr { p, _ := topo.Pod(obj); return p.IP }
	if res, err := probe.Ping(ctx, ns("pod1"), ip("pod2"), probe.PingOptions{}); err != nil || res.Received != 1 {
		t.Errorf("ping pod1 → pod2: %v", err)
	}
	if res, err := probe.Ping(ctx, ns("pod2"), ip("pod3"), probe.PingOptions{}); err != nil || res.Received != 1 {
		t.Errorf("ping pod2 → pod3: %v", err)
	}
	udpEcho(t, ns("pod1"), netip.AddrPortFrom(ip("pod2"), 7))
	if res, _ := probe.Ping(ctx, ns("pod1"), netip.MustParseAddr("10.99.0.1"), probe.PingOptions{Timeout: 300 * time.Millisecond}); res.Received != 0 {
		t.Errorf("10.99.0.1 answered a ping: %+v", res)
	}
	r.settle(500 * time.Millisecond)

	seen := map[class]int{}
	for i := range model.packets.kept.len() {
		e := model.packets.kept.at(i)
		e.decode(model.packets.vxlanPorts)
		seen[e.cls]++
	}
	for _, c := range []class{classARP, classICMP, classICMPError, classTCP, classUDP, classVXLAN, classIPIP} {
		if seen[c] == 0 {
			t.Errorf("no %s packet in the list (seen %v)", c, seen)
		}
	}
	if model.packets.stats.Dropped != 0 {
		t.Errorf("the kernel dropped %d packets", model.packets.stats.Dropped)
	}

	if *record {
		f := &fixture{Status: model.st, Ping: ping, Journey: journey}
		for i := range model.packets.kept.len() {
			f.Packets = append(f.Packets, recorded(model.packets.kept.at(i).pkt))
		}
		saveFixture(t, f, name, m.StateDir)
	}

	// A namespace's routes and neighbours.
	r.keys("1")
	model.topo.cursor = slices.IndexFunc(model.topo.rows, func(row topoRow) bool { return row.kind == rowNamespace && row.label == "node1" })
	r.keys("enter")
	r.until("node1's routes", 10*time.Second, func() bool {
		v := plain(model.View())
		return strings.Contains(v, "Routes") && strings.Contains(v, "192.168.3.0/24 via 10.30.45.103 dev tunl0")
	})

	// Stopping closes the capture.
	r.keys("x")
	if model.feed != nil {
		t.Error("x did not stop the capture")
	}
}

// udpEcho sends one datagram to an echo server and waits for it back.
func udpEcho(t *testing.T, nsPath string, to netip.AddrPort) {
	t.Helper()
	c, err := probe.DialUDP(nsPath, to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("labctl tui")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "labctl tui" {
		t.Errorf("udp echo from %s: %q, %v", to, buf[:n], err)
	}
}
