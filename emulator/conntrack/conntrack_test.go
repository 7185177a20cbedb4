package conntrack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

var nsPrefix = nstest.Prefix("conntrack")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// natLab is a client, a router and a server in a row:
//
//	c 10.1.0.1 ── 10.1.0.254 r 10.2.0.254 ── 10.2.0.1 s
//
// r forwards 10.1.0.254:80 to the server's 8080 (DNAT) and masquerades
// what it sends to the server (SNAT), so one flow shows both.
func natLab(t *testing.T) (c, r, s string) {
	t.Helper()
	nstest.NeedRoot(t)
	for _, tool := range []string{"nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
				t.Fatalf("needs %s (apt: nftables, conntrack) to set up NAT and cross-check (LABCTL_REQUIRE_ROOT=1)", tool)
			}
			t.Skipf("needs %s (apt: nftables, conntrack)", tool)
		}
	}
	base := nstest.Unique(nsPrefix)
	c, r, s = base+"-c", base+"-r", base+"-s"
	for _, ns := range []string{c, r, s} {
		nstest.AddNamespace(t, ns)
	}
	nstest.IP(t, "-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "to-c", "netns", r)
	nstest.IP(t, "-n", r, "link", "add", "to-s", "type", "veth", "peer", "name", "eth0", "netns", s)
	for _, a := range [][]string{{c, "eth0", "10.1.0.1/24"}, {r, "to-c", "10.1.0.254/24"}, {r, "to-s", "10.2.0.254/24"}, {s, "eth0", "10.2.0.1/24"}} {
		nstest.IP(t, "-n", a[0], "addr", "add", a[2], "dev", a[1])
		nstest.IP(t, "-n", a[0], "link", "set", a[1], "up")
	}
	nstest.IP(t, "-n", c, "route", "add", "default", "via", "10.1.0.254")
	run(t, "", "ip", "netns", "exec", r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	run(t, `table ip natlab {
	chain pre { type nat hook prerouting priority dstnat; ip daddr 10.1.0.254 tcp dport 80 dnat to 10.2.0.1:8080; }
	chain post { type nat hook postrouting priority srcnat; ip daddr 10.2.0.1 masquerade; }
}
`, "ip", "netns", "exec", r, "nft", "-f", "-")
	return c, r, s
}

func run(t *testing.T, stdin, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serve accepts and closes connections on the server's port 8080 until the
// test ends.
func serve(t *testing.T, s string) {
	t.Helper()
	ln, err := probe.ListenTCP(netns.Path(s), ":8080")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// connect opens and closes a connection from c to the router's port 80,
// which the router sends on to the server, and returns its local address.
func connect(t *testing.T, c string) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := probe.DialTCP(ctx, netns.Path(c), "10.1.0.254:80")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.TCPAddr).AddrPort()
}

// TestListShowsNAT makes a connection through the router and finds its
// entry there: the original tuple as the client wrote it, the reply tuple
// from the server to the router's address, and both NATs reported.
func TestListShowsNAT(t *testing.T) {
	c, r, s := natLab(t)
	serve(t, s)
	local := connect(t, c)
	flows, err := List(netns.Path(r))
	if err != nil {
		t.Fatal(err)
	}
	var found *Flow
	for i, f := range flows {
		if f.Protocol == "tcp" && f.Original.DstPort == 80 && netip.AddrPortFrom(f.Original.Src, f.Original.SrcPort) == local {
			found = &flows[i]
		}
	}
	if found == nil {
		t.Fatalf("no flow from %s to 10.1.0.254:80 among %v", local, flows)
	}
	want := Tuple{Src: netip.MustParseAddr("10.2.0.1"), Dst: netip.MustParseAddr("10.2.0.254"), SrcPort: 8080}
	if found.Reply.Src != want.Src || found.Reply.Dst != want.Dst || found.Reply.SrcPort != want.SrcPort {
		t.Errorf("reply tuple %+v, want from %s:8080 to %s", found.Reply, want.Src, want.Dst)
	}
	if !found.DestinationNAT() || !found.SourceNAT() {
		t.Errorf("flow %s: DNAT %v, SNAT %v, want both", found, found.DestinationNAT(), found.SourceNAT())
	}
	if !found.SeenReply || found.State == "" {
		t.Errorf("flow %s: seen reply %v, state %q", found, found.SeenReply, found.State)
	}
	// A namespace tracks connections only once a rule needs conntrack:
	// the client has none, so its table stays empty.
	if flows, err := List(netns.Path(c)); err != nil || len(flows) != 0 {
		t.Errorf("the client's table: %v, %v; want empty", flows, err)
	}
	if _, err := List("/nonexistent/netns"); err == nil {
		t.Error("listing a missing namespace worked")
	}
}

var timeouts = regexp.MustCompile(`^(\S+\s+\d+) \d+ `)

// TestStringMatchesConntrackTool compares every line with the conntrack
// tool's own listing of the same namespace (timeouts aside, which tick):
// a TCP connection, an unanswered UDP datagram and an answered ping.
func TestStringMatchesConntrackTool(t *testing.T) {
	c, r, s := natLab(t)
	serve(t, s)
	connect(t, c)
	if u, err := probe.DialUDP(netns.Path(c), "10.2.0.1:9"); err == nil {
		_, _ = u.Write([]byte("x"))
		u.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := probe.Ping(ctx, netns.Path(c), netip.MustParseAddr("10.1.0.254"), probe.PingOptions{Count: 1}); err != nil {
		t.Fatal(err)
	}
	// The closed TCP connection moves on to TIME_WAIT as its last packets
	// pass; wait for it there, or the two listings may catch it in two
	// states (FIN_WAIT in ours, TIME_WAIT in the tool's).
	var flows []Flow
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if flows, err = List(netns.Path(r)); err != nil {
			t.Fatal(err)
		}
		settled := true
		for _, f := range flows {
			if f.Protocol == "tcp" && f.State != "TIME_WAIT" {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			break
		}
	}
	var ours []string
	for _, f := range flows {
		ours = append(ours, timeouts.ReplaceAllString(f.String(), "$1 T "))
	}
	out := run(t, "", "ip", "netns", "exec", r, "conntrack", "-L")
	var theirs []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "flow entries have been shown") || line == "" {
			continue
		}
		theirs = append(theirs, timeouts.ReplaceAllString(strings.TrimSpace(line), "$1 T "))
	}
	sort.Strings(ours)
	sort.Strings(theirs)
	if strings.Join(ours, "\n") != strings.Join(theirs, "\n") || len(ours) < 3 {
		t.Errorf("our listing:\n%s\nconntrack -L:\n%s", strings.Join(ours, "\n"), strings.Join(theirs, "\n"))
	}
}
