package kernel

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// A namespace of the kernel test: its rtnl socket (what the applier sends
// through) and a vishvananda/netlink handle to read back what the kernel
// made of each message.
type testNS struct {
	name string
	h    netns.Handle
	c    *rtnl
	nh   *netlink.Handle
}

func newTestNS(t *testing.T) *testNS {
	t.Helper()
	n := &testNS{name: nstest.AddNamespace(t, nstest.Unique(nstest.Prefix("kern")))}
	var err error
	if n.h, err = netns.Open(netns.Path(n.name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.h.Close() })
	if err := netns.DoHandle(n.h, func() (err error) { n.c, err = openRTNL(); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.c.Close)
	if n.nh, err = netns.NetlinkHandle(n.h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.nh.Close)
	return n
}

func (n *testNS) fd() int { return int(n.h) }

func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.nh.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %s: %v", n.name, name, err)
	}
	return l
}

func (n *testNS) index(t *testing.T, name string) int { return n.link(t, name).Attrs().Index }

// want compares one attribute the kernel reports with the intended one.
func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

// route returns the IPv4 route to dst (invalid: the default route).
func (n *testNS) route(t *testing.T, dst netip.Prefix) netlink.Route {
	t.Helper()
	routes, err := n.nh.RouteList(nil, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		isDefault := r.Dst == nil || r.Dst.String() == "0.0.0.0/0"
		if (!dst.IsValid() && isDefault) || (dst.IsValid() && !isDefault && r.Dst.String() == dst.String()) {
			return r
		}
	}
	t.Fatalf("%s: no route to %v in %v", n.name, dst, routes)
	return netlink.Route{}
}

// Every hand-built message, sent through the applier's own socket to a
// real kernel in namespaces the test makes, and read back through
// vishvananda/netlink: the kernel accepted each with exactly the intended
// attributes. The steps build on each other, like a node and a pod.
func TestMessagesKernelAccepts(t *testing.T) {
	nstest.NeedRoot(t)
	node, pod, third := newTestNS(t), newTestNS(t), newTestNS(t)
	vtepMAC := net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 2}
	peerMAC := net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 3}
	zeroMAC := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	calicoMAC := net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}
	pinnedMAC := net.HardwareAddr{0x0e, 0xfb, 10, 1, 0, 1}
	lowMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 1} // below any MAC the kernel picks at random but one in 2^40
	local := netip.MustParseAddr("192.168.64.2")
	marker := netns.Marker{Lab: "rtnl", LabID: "0123456789abcdef", State: "feedfacecafebeef"}
	var noIPIP error // why the kernel made no ipip device

	steps := []struct {
		name  string
		do    func() error
		check func(t *testing.T)
	}{
		{"lo alias marker", func() error { return node.c.setMarker(marker) }, func(t *testing.T) {
			want(t, "lo alias", node.link(t, "lo").Attrs().Alias, marker.String())
			id, err := netns.Identify(node.h)
			if err != nil || !id.Marked || id.Marker != marker {
				t.Errorf("Identify = %+v, %v; want the marker", id, err)
			}
		}},
		{"set lo up", func() error { return node.c.setUp("lo") }, func(t *testing.T) {
			want(t, "lo up", isUp(node.link(t, "lo")), true)
		}},
		{"bridge", func() error { return node.c.addBridge("br0", 1400) }, func(t *testing.T) {
			l := node.link(t, "br0")
			want(t, "type", l.Type(), "bridge")
			want(t, "mtu", l.Attrs().MTU, 1400)
			want(t, "up", isUp(l), true)
		}},
		{"veth made from the pod: host end into the node on the bridge, peer here", func() error {
			return pod.c.addVeth(vethEnd{name: "veth-pod", nsFD: node.fd(), master: node.index(t, "br0"), up: true},
				vethPeer{name: "eth0", nsFD: -1}, 1400)
		}, func(t *testing.T) {
			host, eth0 := node.link(t, "veth-pod"), pod.link(t, "eth0")
			want(t, "host end type", host.Type(), "veth")
			want(t, "host end mtu", host.Attrs().MTU, 1400)
			want(t, "host end master", host.Attrs().MasterIndex, node.index(t, "br0"))
			want(t, "host end up", isUp(host), true)
			want(t, "pod end type", eth0.Type(), "veth")
			want(t, "pod end mtu", eth0.Attrs().MTU, 1400)
			want(t, "pod end up", isUp(eth0), false)
			want(t, "pod end's peer", eth0.Attrs().ParentIndex, host.Attrs().Index)
			want(t, "host end's peer", host.Attrs().ParentIndex, eth0.Attrs().Index)
			nsid, err := node.nh.GetNetNsIdByFd(pod.fd())
			if err != nil {
				t.Fatal(err)
			}
			want(t, "host end's peer namespace (nsid)", host.Attrs().NetNsID, nsid)
		}},
		{"veth made here, peer into another namespace", func() error {
			return node.c.addVeth(vethEnd{name: "veth-x", nsFD: -1, up: true}, vethPeer{name: "eth1", nsFD: pod.fd()}, 1500)
		}, func(t *testing.T) {
			here, there := node.link(t, "veth-x"), pod.link(t, "eth1")
			want(t, "mtu", here.Attrs().MTU, 1500)
			want(t, "master", here.Attrs().MasterIndex, 0)
			want(t, "up", isUp(here), true)
			want(t, "peer mtu", there.Attrs().MTU, 1500)
			want(t, "peer up", isUp(there), false)
			nsid, err := pod.nh.GetNetNsIdByFd(node.fd())
			if err != nil {
				t.Fatal(err)
			}
			want(t, "peer's peer namespace (nsid)", there.Attrs().NetNsID, nsid)
		}},
		{"veth with both ends in other namespaces", func() error {
			return third.c.addVeth(vethEnd{name: "veth-y", nsFD: node.fd(), master: node.index(t, "br0"), up: true},
				vethPeer{name: "veth-z", nsFD: pod.fd()}, 9000)
		}, func(t *testing.T) {
			y, z := node.link(t, "veth-y"), pod.link(t, "veth-z")
			want(t, "first end master", y.Attrs().MasterIndex, node.index(t, "br0"))
			want(t, "first end mtu", y.Attrs().MTU, 9000)
			want(t, "first end up", isUp(y), true)
			want(t, "second end mtu", z.Attrs().MTU, 9000)
			want(t, "second end up", isUp(z), false)
			want(t, "first end's peer", y.Attrs().ParentIndex, z.Attrs().Index)
			links, err := third.nh.LinkList()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range links {
				if l.Attrs().Name != "lo" {
					t.Errorf("the namespace the request came from has %q", l.Attrs().Name)
				}
			}
		}},
		{"veth with a fixed MAC on the first end, no master (Calico's host end)", func() error {
			return pod.c.addVeth(vethEnd{name: "cali0123456789a", nsFD: node.fd(), up: true, mac: calicoMAC},
				vethPeer{name: "eth2", nsFD: -1}, 1480)
		}, func(t *testing.T) {
			host := node.link(t, "cali0123456789a")
			want(t, "host end mac", host.Attrs().HardwareAddr.String(), calicoMAC.String())
			want(t, "host end master", host.Attrs().MasterIndex, 0)
			want(t, "host end up", isUp(host), true)
			want(t, "pod end mac is the kernel's", pod.link(t, "eth2").Attrs().HardwareAddr.String() != calicoMAC.String(), true)
		}},
		{"hairpin on a bridge port", func() error { return node.c.setHairpin("veth-pod") }, func(t *testing.T) {
			want(t, "veth-pod hairpin", hairpin(t, node, "veth-pod"), true)
			want(t, "veth-y (untouched) hairpin", hairpin(t, node, "veth-y"), false)
		}},
		{"pinned bridge MAC: a port with a lower MAC does not change it", func() error {
			// An unpinned bridge takes the lowest MAC of its ports; the
			// same port under the pinned one changes nothing.
			if err := node.c.addBridge("br-free", 1500); err != nil {
				return err
			}
			if err := node.c.setMAC("br0", pinnedMAC); err != nil {
				return err
			}
			if err := third.c.addVeth(vethEnd{name: "low-a", nsFD: node.fd(), master: node.index(t, "br-free"), up: true, mac: lowMAC},
				vethPeer{name: "low-a-peer", nsFD: pod.fd()}, 1500); err != nil {
				return err
			}
			return third.c.addVeth(vethEnd{name: "low-b", nsFD: node.fd(), master: node.index(t, "br0"), up: true, mac: lowMAC},
				vethPeer{name: "low-b-peer", nsFD: pod.fd()}, 1500)
		}, func(t *testing.T) {
			want(t, "unpinned bridge's MAC (its port's)", node.link(t, "br-free").Attrs().HardwareAddr.String(), lowMAC.String())
			want(t, "pinned bridge's MAC", node.link(t, "br0").Attrs().HardwareAddr.String(), pinnedMAC.String())
		}},
		{"set mtu and up", func() error { return pod.c.setMTUUp("eth0", 1300) }, func(t *testing.T) {
			l := pod.link(t, "eth0")
			want(t, "mtu", l.Attrs().MTU, 1300)
			want(t, "up", isUp(l), true)
		}},
		{"address /24 with broadcast", func() error { return pod.c.addAddress("eth0", netip.MustParsePrefix("10.1.0.2/24")) }, func(t *testing.T) {
			addrs, err := pod.nh.AddrList(pod.link(t, "eth0"), unix.AF_INET)
			if err != nil || len(addrs) != 1 {
				t.Fatalf("addresses %v, %v; want one", addrs, err)
			}
			a := addrs[0]
			want(t, "address", a.IPNet.String(), "10.1.0.2/24")
			want(t, "broadcast", a.Broadcast.String(), "10.1.0.255")
			want(t, "scope", a.Scope, unix.RT_SCOPE_UNIVERSE)
		}},
		{"underlay address", func() error { return node.c.addAddress("veth-x", netip.PrefixFrom(local, 24)) }, nil},
		{"route default via the gateway", func() error {
			return pod.c.addRoute(netip.Prefix{}, netip.MustParseAddr("10.1.0.1"), "", false)
		}, func(t *testing.T) {
			r := pod.route(t, netip.Prefix{})
			want(t, "gateway", r.Gw.String(), "10.1.0.1")
			want(t, "device", r.LinkIndex, pod.index(t, "eth0"))
			want(t, "scope", r.Scope, netlink.SCOPE_UNIVERSE)
			want(t, "protocol", r.Protocol, netlink.RouteProtocol(unix.RTPROT_BOOT))
			want(t, "table", r.Table, unix.RT_TABLE_MAIN)
			want(t, "type", r.Type, unix.RTN_UNICAST)
		}},
		{"device route (scope link)", func() error {
			return node.c.addRoute(netip.MustParsePrefix("10.2.0.0/16"), netip.Addr{}, "br0", false)
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.2.0.0/16"))
			want(t, "gateway", r.Gw == nil, true)
			want(t, "device", r.LinkIndex, node.index(t, "br0"))
			want(t, "scope", r.Scope, netlink.SCOPE_LINK)
		}},
		{"host-gw route via a node", func() error {
			return node.c.addRoute(netip.MustParsePrefix("10.4.0.0/24"), netip.MustParseAddr("192.168.64.3"), "veth-x", false)
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.4.0.0/24"))
			want(t, "gateway", r.Gw.String(), "192.168.64.3")
			want(t, "device", r.LinkIndex, node.index(t, "veth-x"))
			want(t, "scope", r.Scope, netlink.SCOPE_UNIVERSE)
			want(t, "onlink", r.Flags&unix.RTNH_F_ONLINK, 0)
		}},
		{"vxlan as flannel makes it", func() error {
			return node.c.addVXLAN(vxlanSpec{name: "flannel.1", vni: 1, port: 8472, local: local, link: node.index(t, "veth-x"),
				mac: vtepMAC, mtu: 1350})
		}, func(t *testing.T) {
			v, ok := node.link(t, "flannel.1").(*netlink.Vxlan)
			if !ok {
				t.Fatalf("flannel.1 is a %s", node.link(t, "flannel.1").Type())
			}
			want(t, "vni", v.VxlanId, 1)
			want(t, "port", v.Port, 8472)
			want(t, "local", v.SrcAddr.String(), local.String())
			want(t, "underlay", v.VtepDevIndex, node.index(t, "veth-x"))
			want(t, "learning", v.Learning, false)
			want(t, "group", v.Group == nil || v.Group.IsUnspecified(), true)
			want(t, "mac", v.HardwareAddr.String(), vtepMAC.String())
			want(t, "mtu", v.MTU, 1350)
			want(t, "master", v.MasterIndex, 0)
			want(t, "up", isUp(v), true)
		}},
		{"vxlan bridged", func() error {
			return node.c.addVXLAN(vxlanSpec{name: "vxlan0", vni: 42, port: 4789, local: local, link: node.index(t, "veth-x"),
				learning: true, group: netip.MustParseAddr("239.1.1.1"), master: node.index(t, "br0"), mtu: 1350})
		}, func(t *testing.T) {
			v := node.link(t, "vxlan0").(*netlink.Vxlan)
			want(t, "vni", v.VxlanId, 42)
			want(t, "port", v.Port, 4789)
			want(t, "learning", v.Learning, true)
			want(t, "group", v.Group.String(), "239.1.1.1")
			want(t, "master", v.MasterIndex, node.index(t, "br0"))
			want(t, "up", isUp(v), true)
		}},
		{"address /32 without broadcast", func() error {
			return node.c.addAddress("flannel.1", netip.MustParsePrefix("10.3.1.0/32"))
		}, func(t *testing.T) {
			addrs, err := node.nh.AddrList(node.link(t, "flannel.1"), unix.AF_INET)
			if err != nil || len(addrs) != 1 {
				t.Fatalf("addresses %v, %v; want one", addrs, err)
			}
			want(t, "address", addrs[0].IPNet.String(), "10.3.1.0/32")
			want(t, "broadcast", addrs[0].Broadcast == nil, true)
		}},
		{"onlink route through the vxlan device", func() error {
			return node.c.addRoute(netip.MustParsePrefix("10.3.2.0/24"), netip.MustParseAddr("10.3.2.0"), "flannel.1", true)
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.3.2.0/24"))
			want(t, "gateway", r.Gw.String(), "10.3.2.0")
			want(t, "device", r.LinkIndex, node.index(t, "flannel.1"))
			want(t, "onlink", r.Flags&unix.RTNH_F_ONLINK, unix.RTNH_F_ONLINK)
		}},
		{"route proto bird onlink via a node (Calico IPIP, as BIRD installs it)", func() error {
			return node.c.addRouteSpec("veth-x", routeSpec{dst: netip.MustParsePrefix("10.5.0.0/26"), via: netip.MustParseAddr("192.168.64.3"),
				onlink: true, proto: 12})
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.5.0.0/26"))
			want(t, "gateway", r.Gw.String(), "192.168.64.3")
			want(t, "device", r.LinkIndex, node.index(t, "veth-x"))
			want(t, "protocol", r.Protocol, netlink.RouteProtocol(12))
			want(t, "onlink", r.Flags&unix.RTNH_F_ONLINK, unix.RTNH_F_ONLINK)
			want(t, "scope", r.Scope, netlink.SCOPE_UNIVERSE)
		}},
		{"route with an mtu (Calico VXLAN, as Felix installs it)", func() error {
			return node.c.addRouteSpec("flannel.1", routeSpec{dst: netip.MustParsePrefix("10.3.4.0/24"), via: netip.MustParseAddr("10.3.4.0"),
				onlink: true, mtu: 1350})
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.3.4.0/24"))
			want(t, "mtu", r.MTU, 1350)
			want(t, "protocol", r.Protocol, netlink.RouteProtocol(unix.RTPROT_BOOT))
			want(t, "onlink", r.Flags&unix.RTNH_F_ONLINK, unix.RTNH_F_ONLINK)
		}},
		{"blackhole proto bird", func() error {
			return node.c.addRouteSpec("", routeSpec{dst: netip.MustParsePrefix("10.3.0.0/26"), proto: 12, blackhole: true})
		}, func(t *testing.T) {
			r := node.route(t, netip.MustParsePrefix("10.3.0.0/26"))
			want(t, "type", r.Type, unix.RTN_BLACKHOLE)
			want(t, "protocol", r.Protocol, netlink.RouteProtocol(12))
			want(t, "device", r.LinkIndex, 0)
			want(t, "gateway", r.Gw == nil, true)
			want(t, "scope", r.Scope, netlink.SCOPE_UNIVERSE)
		}},
		{"permanent neighbour", func() error {
			return node.c.addNeighbor("flannel.1", netip.MustParseAddr("10.3.2.0"), peerMAC)
		}, func(t *testing.T) {
			neighs, err := node.nh.NeighList(node.index(t, "flannel.1"), unix.AF_INET)
			if err != nil || len(neighs) != 1 {
				t.Fatalf("neighbours %v, %v; want one", neighs, err)
			}
			n := neighs[0]
			want(t, "ip", n.IP.String(), "10.3.2.0")
			want(t, "lladdr", n.HardwareAddr.String(), peerMAC.String())
			want(t, "state", n.State, unix.NUD_PERMANENT)
		}},
		{"fdb entry (self permanent)", func() error {
			return node.c.addFDB("flannel.1", peerMAC, netip.MustParseAddr("192.168.64.3"), false)
		}, func(t *testing.T) {
			fdb := fdbEntries(t, node, "flannel.1")
			if len(fdb) != 1 {
				t.Fatalf("fdb %v; want one entry", fdb)
			}
			e := fdb[0]
			want(t, "mac", e.HardwareAddr.String(), peerMAC.String())
			want(t, "dst", e.IP.String(), "192.168.64.3")
			want(t, "state", e.State, unix.NUD_PERMANENT)
			want(t, "self", e.Flags&unix.NTF_SELF, unix.NTF_SELF)
			// add, unlike append, is exclusive
			err := node.c.addFDB("flannel.1", peerMAC, netip.MustParseAddr("192.168.64.9"), false)
			want(t, "a second add of the MAC is refused (EEXIST)", errors.Is(err, unix.EEXIST), true)
		}},
		{"fdb append: one MAC, many destinations", func() error {
			if err := node.c.addFDB("vxlan0", zeroMAC, netip.MustParseAddr("192.168.64.3"), true); err != nil {
				return err
			}
			return node.c.addFDB("vxlan0", zeroMAC, netip.MustParseAddr("192.168.64.4"), true)
		}, func(t *testing.T) {
			var dsts []string
			for _, e := range fdbEntries(t, node, "vxlan0") {
				if e.HardwareAddr.String() == zeroMAC.String() {
					want(t, "state", e.State, unix.NUD_PERMANENT)
					want(t, "self", e.Flags&unix.NTF_SELF, unix.NTF_SELF)
					dsts = append(dsts, e.IP.String())
				}
			}
			// The multicast group is the device's default destination,
			// the kernel's own entry; the two appended come beside it.
			slices.Sort(dsts)
			want(t, "destinations of 00:00:00:00:00:00", strings.Join(dsts, " "), "192.168.64.3 192.168.64.4 239.1.1.1")
		}},
		{"ipip device", func() error {
			err := node.c.addIPIP("ipip0", local)
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				noIPIP = err
				return nil
			}
			return err
		}, func(t *testing.T) {
			if noIPIP != nil {
				t.Skipf("this kernel has no ipip module (%v): the message is pinned by its golden bytes only", noIPIP)
			}
			tun, ok := node.link(t, "ipip0").(*netlink.Iptun)
			if !ok {
				t.Fatalf("ipip0 is a %s", node.link(t, "ipip0").Type())
			}
			want(t, "local", tun.Local.String(), local.String())
			want(t, "pmtudisc", tun.PMtuDisc, 1)
		}},
		{"delete a device", func() error { return node.c.delLink("veth-x") }, func(t *testing.T) {
			if _, err := node.nh.LinkByName("veth-x"); err == nil {
				t.Error("veth-x is still there")
			}
			if _, err := pod.nh.LinkByName("eth1"); err == nil {
				t.Error("its peer eth1 is still there")
			}
			if err := node.c.delLink("veth-x"); err != nil {
				t.Errorf("deleting a missing device: %v", err)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			if err := s.do(); err != nil {
				t.Fatal(err)
			}
			if s.check != nil {
				s.check(t)
			}
		}) {
			t.Fatalf("later steps build on %q", s.name)
		}
	}
}

// fdbEntries lists a device's own forwarding entries.
func fdbEntries(t *testing.T, n *testNS, dev string) []netlink.Neigh {
	t.Helper()
	entries, err := n.nh.NeighList(n.index(t, dev), unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// hairpin reads a bridge port's hairpin flag.
func hairpin(t *testing.T, n *testNS, port string) bool {
	t.Helper()
	pi, err := n.nh.LinkGetProtinfo(n.link(t, port))
	if err != nil {
		t.Fatal(err)
	}
	return pi.Hairpin
}
