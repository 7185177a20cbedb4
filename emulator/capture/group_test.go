package capture

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// routed builds a - r - b: two hosts on two subnets and a router between
// them, so one packet crosses four interfaces in three namespaces.
func routed(t *testing.T, l *lab, subnet int) (a, r, b string) {
	t.Helper()
	a, r, b = l.ns("a"), l.ns("r"), l.ns("b")
	l.veth(a, "eth0", fmt.Sprintf("10.124.%d.1/24", subnet), r, "ea", fmt.Sprintf("10.124.%d.254/24", subnet))
	l.veth(b, "eth0", fmt.Sprintf("10.124.%d.1/24", subnet+1), r, "eb", fmt.Sprintf("10.124.%d.254/24", subnet+1))
	nstest.IP(t, "-n", a, "route", "add", "default", "via", fmt.Sprintf("10.124.%d.254", subnet))
	nstest.IP(t, "-n", b, "route", "add", "default", "via", fmt.Sprintf("10.124.%d.254", subnet+1))
	// /proc/sys/net belongs to the namespace of whoever opens it.
	if err := netns.Do(nsPath(r), func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	return a, r, b
}

func startGroup(t *testing.T, targets []Target, opts Options) *Group {
	t.Helper()
	g, err := Start(targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("close group: %v", err)
		}
	})
	return g
}

// collect reads the group's packets until it ends or the deadline.
func collect(t *testing.T, g *Group, d time.Duration) []Packet {
	t.Helper()
	var got []Packet
	deadline := time.After(d)
	for {
		select {
		case b, ok := <-g.Packets():
			if !ok {
				return got
			}
			got = append(got, b...)
		case <-deadline:
			t.Fatalf("the group did not end within %v (%d packets so far)", d, len(got))
		}
	}
}

// One echo exchange, seen on four interfaces in three namespaces, comes
// out of the group in the order it happened.
func TestGroupMergesInTimestampOrder(t *testing.T) {
	l := newLab(t)
	a, r, b := routed(t, l, 20)
	g := startGroup(t, []Target{
		{Label: "a", Namespace: nsPath(a), Interface: "eth0"},
		{Label: "b", Namespace: nsPath(b), Interface: "eth0"},
		{Label: "r", Namespace: nsPath(r)},                  // every interface: ea and eb
		{Label: "r", Namespace: nsPath(r), Interface: "eb"}, // already covered
	}, Options{Expr: MustParseExpr("icmp")})
	if got, want := g.Describe(), "a:eth0 (Ethernet), b:eth0 (Ethernet), r:ea (Ethernet), r:eb (Ethernet)"; got != want {
		t.Errorf("captures %s, want %s", got, want)
	}
	sendEcho(t, a, "10.124.21.1", 0x51, 1)
	time.Sleep(100 * time.Millisecond)
	g.Stop()
	var lines []string
	for _, p := range collect(t, g, 5*time.Second) {
		lines = append(lines, p.String())
	}
	want := []string{
		"a:eth0 Out IP 10.124.20.1 > 10.124.21.1: ICMP echo request, id 81, seq 1, length 64",
		"r:ea In IP 10.124.20.1 > 10.124.21.1: ICMP echo request, id 81, seq 1, length 64",
		"r:eb Out IP 10.124.20.1 > 10.124.21.1: ICMP echo request, id 81, seq 1, length 64",
		"b:eth0 In IP 10.124.20.1 > 10.124.21.1: ICMP echo request, id 81, seq 1, length 64",
		"b:eth0 Out IP 10.124.21.1 > 10.124.20.1: ICMP echo reply, id 81, seq 1, length 64",
		"r:eb In IP 10.124.21.1 > 10.124.20.1: ICMP echo reply, id 81, seq 1, length 64",
		"r:ea Out IP 10.124.21.1 > 10.124.20.1: ICMP echo reply, id 81, seq 1, length 64",
		"a:eth0 In IP 10.124.21.1 > 10.124.20.1: ICMP echo reply, id 81, seq 1, length 64",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("merged:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	st := g.Stats()
	if st.Delivered != 8 || st.Late != 0 || st.Dropped != 0 || len(st.Captures) != 4 {
		t.Errorf("stats %+v", st)
	}
	for i, s := range st.Captures {
		if s.Received != 2 {
			t.Errorf("capture %s received %d, want 2", g.Captures()[i].Where(), s.Received)
		}
	}
}

// Stop delivers every packet captured before it, and the group's channel
// then closes. A burst sent as fast as one CPU can, seen on four
// interfaces, comes out in timestamp order; on a machine busy with other
// work a packet can reach its ring later than the group dared to wait, and
// then Stats counts it as late, exactly as often as it happens.
func TestGroupStopDeliversEverything(t *testing.T) {
	l := newLab(t)
	a, r, b := routed(t, l, 22)
	g := startGroup(t, []Target{
		{Label: "a", Namespace: nsPath(a), Interface: "eth0"},
		{Label: "r", Namespace: nsPath(r)},
		{Label: "b", Namespace: nsPath(b), Interface: "eth0"},
	}, Options{Expr: MustParseExpr("udp dst port 9"), BufferSize: 8 << 20})
	const n = 3000
	inNS(t, a, unix.AF_INET, unix.SOCK_DGRAM, 0, func(fd int) error {
		for i := range n {
			if err := unix.Sendto(fd, fmt.Appendf(nil, "%05d", i), 0, sockaddr4("10.124.23.1", 9)); err != nil {
				return err
			}
		}
		return nil
	})
	g.Stop() // right away: what is still in the rings must come out
	got := collect(t, g, 10*time.Second)
	per := map[string]int{}
	late := 0
	var newest time.Time
	for _, p := range got {
		per[p.Where()]++
		if p.Time.Before(newest) {
			late++
		} else {
			newest = p.Time
		}
	}
	for _, where := range []string{"a:eth0", "r:ea", "r:eb", "b:eth0"} {
		if per[where] != n {
			t.Errorf("%s: %d packets, want %d", where, per[where], n)
		}
	}
	st := g.Stats()
	if st.Dropped != 0 || st.Delivered != 4*n || st.Late != uint64(late) {
		t.Errorf("stats %+v; %d packets came after a later one", st, late)
	}
	if late > 4*n/10 { // a merge that does not wait for every ring puts most out of order
		t.Errorf("%d of %d packets out of order", late, 4*n)
	} else if late > 0 {
		t.Logf("%d of %d packets out of order (a busy machine)", late, 4*n)
	}
}

func TestGroupErrors(t *testing.T) {
	l := newLab(t)
	a := l.ns("a")
	b := l.ns("b")
	l.veth(a, "eth0", "10.124.24.1/24", b, "eth0", "10.124.24.2/24")
	_, err := Start([]Target{
		{Label: "a", Namespace: nsPath(a), Interface: "eth0"},
		{Label: "b", Namespace: nsPath(b), Interface: "eth9"},
	}, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), `capture on b:eth9: capture on "eth9" in "`) || !strings.Contains(err.Error(), "no such device") {
		t.Errorf("missing interface: %v", err)
	}
	empty := l.ns("empty")
	_, err = Start([]Target{{Label: "empty", Namespace: nsPath(empty)}}, Options{})
	if err == nil || err.Error() != "capture on empty:*: the namespace has no interface besides lo" {
		t.Errorf("no interfaces: %v", err)
	}
	if _, err := Start(nil, Options{}); err == nil {
		t.Error("an empty group started")
	}
	// An interface that goes away ends the group with the reason.
	g, err := Start([]Target{{Label: "a", Namespace: nsPath(a), Interface: "eth0"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	nstest.IP(t, "-n", a, "link", "del", "eth0")
	for range g.Packets() {
	}
	const want = "capture on a:eth0: read packet: the interface went away (network is down)"
	if err := g.Err(); err == nil || err.Error() != want {
		t.Errorf("interface removed: %v", err)
	}
	if err := g.Close(); err == nil || err.Error() != want {
		t.Errorf("close after the interface went: %v", err)
	}
}

// Close ends a group that is still busy, and Packets closes.
func TestGroupClose(t *testing.T) {
	l := newLab(t)
	a := l.ns("a")
	b := l.ns("b")
	l.veth(a, "eth0", "10.124.25.1/24", b, "eth0", "10.124.25.2/24")
	g, err := Start([]Target{{Namespace: nsPath(a), Interface: "eth0"}, {Namespace: nsPath(b), Interface: "eth0"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sendUDP(t, a, "10.124.25.2", 9, []byte("x"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	for range g.Packets() {
	}
	if err := g.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
