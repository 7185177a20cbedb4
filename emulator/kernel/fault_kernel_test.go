package kernel

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/internal/nstest"
)

// Every fault, sent through the applier's own socket to a real kernel: a
// node-like namespace gets an underlay link, a route, a neighbour and a
// VXLAN FDB entry, and each fault takes one away or bends it, read back
// through vishvananda/netlink. Removing what is not there is an error the
// fault reports, not something it hides.
func TestFaultsKernelAccepts(t *testing.T) {
	nstest.NeedRoot(t)
	node, peer := newTestNS(t), newTestNS(t)
	subnet := netip.MustParsePrefix("10.244.2.0/24")
	peerIP := netip.MustParseAddr("192.168.64.3")
	peerMAC := net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 3}
	setup := []func() error{
		func() error {
			return node.c.addVeth(vethEnd{name: "eth0", nsFD: -1, up: true}, vethPeer{name: "eth0", nsFD: peer.fd()}, 1500)
		},
		func() error { return node.c.addAddress("eth0", netip.MustParsePrefix("192.168.64.2/24")) },
		func() error { return node.c.addRoute(subnet, peerIP, "eth0", false) },
		func() error { return node.c.addNeighbor("eth0", peerIP, peerMAC) },
		func() error {
			idx, err := node.c.linkIndex("eth0")
			if err != nil {
				return err
			}
			return node.c.addVXLAN(vxlanSpec{name: "flannel.1", vni: 1, port: 8472, local: netip.MustParseAddr("192.168.64.2"), link: idx, mtu: 1450})
		},
		func() error { return node.c.addFDB("flannel.1", peerMAC, peerIP, false) },
	}
	for i, step := range setup {
		if err := step(); err != nil {
			t.Fatalf("setup step %d: %v", i, err)
		}
	}

	routeTo := func(t *testing.T) (netlink.Route, bool) {
		t.Helper()
		routes, err := node.nh.RouteList(nil, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst != nil && r.Dst.String() == subnet.String() {
				return r, true
			}
		}
		return netlink.Route{}, false
	}
	steps := []struct {
		name  string
		do    func() error
		check func(t *testing.T)
	}{
		{"replace the route: via another gateway", func() error {
			return node.c.replaceRoute(subnet, netip.MustParseAddr("192.168.64.9"), "eth0", false)
		}, func(t *testing.T) {
			r, ok := routeTo(t)
			if !ok {
				t.Fatal("the route is gone")
			}
			want(t, "gateway", r.Gw.String(), "192.168.64.9")
		}},
		{"delete the route", func() error { return node.c.delRoute(subnet, netip.Addr{}, "") }, func(t *testing.T) {
			if r, ok := routeTo(t); ok {
				t.Errorf("route still there: %v", r)
			}
			if err := node.c.delRoute(subnet, netip.Addr{}, ""); !errors.Is(err, unix.ESRCH) {
				t.Errorf("deleting it again: %v, want ESRCH", err)
			}
		}},
		{"change the MTU, which leaves the device up", func() error { return node.c.setMTU("eth0", 1400) }, func(t *testing.T) {
			l := node.link(t, "eth0")
			want(t, "mtu", l.Attrs().MTU, 1400)
			want(t, "up", isUp(l), true)
		}},
		{"delete the neighbour", func() error { return node.c.delNeighbor("eth0", peerIP) }, func(t *testing.T) {
			neighs, err := node.nh.NeighList(node.index(t, "eth0"), unix.AF_INET)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range neighs {
				if n.IP.String() == peerIP.String() && n.State == netlink.NUD_PERMANENT {
					t.Errorf("neighbour still there: %v", n)
				}
			}
		}},
		{"delete the FDB entry", func() error { return node.c.delFDB("flannel.1", peerMAC, peerIP) }, func(t *testing.T) {
			fdb, err := node.nh.NeighList(node.index(t, "flannel.1"), unix.AF_BRIDGE)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range fdb {
				if n.HardwareAddr.String() == peerMAC.String() {
					t.Errorf("FDB entry still there: %v", n)
				}
			}
		}},
		{"set the link down", func() error { return node.c.setDown("eth0") }, func(t *testing.T) {
			want(t, "up", isUp(node.link(t, "eth0")), false)
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			s.check(t)
		})
	}
}

// A drop rule lands in labctl's own table, twice over without complaint
// (table and chain are added as `nft add` adds them), and reads back as
// the rule its description prints; nothing else in the namespace changes.
func TestDropRuleKernelAccepts(t *testing.T) {
	nstest.NeedRoot(t)
	node := newTestNS(t)
	rules := []plan.AddDropRule{
		{Namespace: node.name, Hook: plan.HookForward, Protocol: "tcp", Dst: netip.MustParsePrefix("10.244.2.0/24"), Port: 80},
		{Namespace: node.name, Hook: plan.HookForward, Protocol: "icmp", Src: netip.MustParsePrefix("10.244.1.10/32")},
		{Namespace: node.name, Hook: plan.HookInput},
	}
	for _, r := range rules {
		if err := netns.DoHandle(node.h, func() error { return addDropRule(r) }); err != nil {
			t.Fatalf("%s: %v", r.Describe(), err)
		}
	}
	conn, err := nftables.New(nftables.WithNetNSFd(node.fd()))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) != 1 || tables[0].Name != plan.FaultTable || tables[0].Family != nftables.TableFamilyINet {
		t.Fatalf("tables = %+v, want inet %s alone", tables, plan.FaultTable)
	}
	chains, err := conn.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range chains {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "forward input" && strings.Join(names, " ") != "input forward" {
		t.Errorf("chains = %v, want forward and input", names)
	}
	got, err := conn.GetRules(tables[0], &nftables.Chain{Name: plan.HookForward, Table: tables[0]})
	if err != nil || len(got) != 2 {
		t.Fatalf("forward rules = %d, %v; want 2", len(got), err)
	}

	// The real nft, where installed, reads the rules back as the script
	// words that describe them.
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Log("no nft binary: the listing is not cross-checked")
		return
	}
	out, err := exec.Command("ip", "netns", "exec", node.name, nft, "list", "table", "inet", plan.FaultTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	for _, r := range rules {
		words := strings.Join(append(r.MatchWords(), "counter packets 0 bytes 0 drop"), " ")
		if !strings.Contains(string(out), words) {
			t.Errorf("nft lists no rule %q:\n%s", words, out)
		}
	}
}
