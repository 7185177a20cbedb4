package ipipd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// Test namespaces are named ipipdtest-<pid>-<random>-<role>, so TestMain can
// tell its own leftovers from anyone else's.
var nsPrefix = nstest.Prefix("ipipd")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// lab is two Calico-style IPIP nodes joined by an underlay veth, with one pod
// behind each:
//
//	pod1 10.78.1.2 -- vpod 10.78.1.1 [node1] eth0 10.77.0.1 ==veth== 10.77.0.2 eth0 [node2] vpod 10.78.2.1 -- 10.78.2.2 pod2
//	                  tunl0 10.78.1.254/32 (TUN)                     tunl0 10.78.2.254/32 (TUN)
//	node1: 10.78.2.0/24 via 10.77.0.2 dev tunl0 onlink   node2: 10.78.1.0/24 via 10.77.0.1 dev tunl0 onlink
//
// Only private addresses, only namespaces of its own; the host's network
// namespace is never touched.
type lab struct {
	t                        testing.TB
	node1, node2, pod1, pod2 string // namespace paths
	names                    map[string]string
	dp1, dp2                 *Datapath
}

var (
	node1IP = netip.MustParseAddr("10.77.0.1")
	node2IP = netip.MustParseAddr("10.77.0.2")
	pod1IP  = netip.MustParseAddr("10.78.1.2")
	pod2IP  = netip.MustParseAddr("10.78.2.2")
)

type labOptions struct {
	singleQueue bool // create tunl0 without multi_queue
	noRoutes    bool // leave node1 without its route to pod2's subnet
}

func newLab(t testing.TB, o labOptions) *lab {
	t.Helper()
	nstest.NeedRoot(t, tunDevicePath)
	base := nstest.Unique(nsPrefix) + "-"
	l := &lab{t: t, names: map[string]string{}}
	for _, role := range []string{"node1", "node2", "pod1", "pod2"} {
		l.names[role] = nstest.AddNamespace(t, base+role)
	}
	l.node1, l.node2 = netns.Path(l.names["node1"]), netns.Path(l.names["node2"])
	l.pod1, l.pod2 = netns.Path(l.names["pod1"]), netns.Path(l.names["pod2"])
	n1, n2, p1, p2 := l.names["node1"], l.names["node2"], l.names["pod1"], l.names["pod2"]
	mq := "multi_queue"
	if o.singleQueue {
		mq = ""
	}
	cmds := [][]string{
		{"link", "add", "eth0", "netns", n1, "type", "veth", "peer", "name", "eth0", "netns", n2},
		{"link", "add", "eth0", "netns", p1, "type", "veth", "peer", "name", "vpod", "netns", n1},
		{"link", "add", "eth0", "netns", p2, "type", "veth", "peer", "name", "vpod", "netns", n2},
	}
	for i, n := range []string{n1, n2} {
		node := fmt.Sprintf("10.77.0.%d", i+1)
		peer := fmt.Sprintf("10.77.0.%d", 2-i)
		own := fmt.Sprintf("10.78.%d", i+1)
		other := fmt.Sprintf("10.78.%d.0/24", 2-i)
		cmds = append(cmds,
			[]string{"-n", n, "addr", "add", node + "/24", "dev", "eth0"},
			[]string{"-n", n, "link", "set", "eth0", "up"},
			[]string{"-n", n, "addr", "add", own + ".1/24", "dev", "vpod"},
			[]string{"-n", n, "link", "set", "vpod", "up"},
			strings.Fields("-n "+n+" tuntap add dev tunl0 mode tun "+mq),
			[]string{"-n", n, "link", "set", "tunl0", "mtu", "1480", "up"},
			[]string{"-n", n, "addr", "add", own + ".254/32", "dev", "tunl0"},
		)
		if !(o.noRoutes && i == 0) {
			cmds = append(cmds, []string{"-n", n, "route", "add", other, "via", peer, "dev", "tunl0", "onlink"})
		}
	}
	for i, p := range []string{p1, p2} {
		cmds = append(cmds,
			[]string{"-n", p, "addr", "add", fmt.Sprintf("10.78.%d.2/24", i+1), "dev", "eth0"},
			[]string{"-n", p, "link", "set", "eth0", "up"},
			[]string{"-n", p, "route", "add", "default", "via", fmt.Sprintf("10.78.%d.1", i+1)},
		)
	}
	for _, c := range cmds {
		nstest.IP(t, c...)
	}
	for _, n := range []string{l.node1, l.node2} {
		l.sysctl(n, "net/ipv4/ip_forward", "1")
		// A TUN device gets an IPv6 link-local address and sends router
		// solicitations into the tunnel; the kernel's tunl0 has no IPv6.
		l.sysctl(n, "net/ipv6/conf/tunl0/disable_ipv6", "1")
	}
	return l
}

func (l *lab) sysctl(ns, key, value string) {
	l.t.Helper()
	err := netns.Do(ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
	})
	if err != nil {
		l.t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns, err)
	}
}

// start opens a datapath in the node namespace at ns and serves it until
// the test ends.
func (l *lab) start(ns string, cfg Config) *Datapath {
	l.t.Helper()
	if cfg.Device == "" {
		cfg.Device = "tunl0"
	}
	cfg.Logf = l.t.Logf
	var d *Datapath
	err := netns.Do(ns, func() error {
		var err error
		d, err = Open(cfg)
		return err
	})
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	l.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			l.t.Errorf("serve: %v", err)
		}
	})
	return d
}

// startBoth serves both nodes with cfg.
func (l *lab) startBoth(cfg Config) {
	l.t.Helper()
	l.dp1 = l.start(l.node1, cfg)
	l.dp2 = l.start(l.node2, cfg)
}
