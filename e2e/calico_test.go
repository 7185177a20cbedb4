package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// calicoLabs are the shipped topologies of Calico's routed style.
var calicoLabs = []string{"calico-ipip.yaml", "calico-vxlan.yaml", "calico-no-encap.yaml"}

// Every Calico lab has exactly the routes, addresses, devices, neighbours,
// FDB entries and sysctls Calico makes, read back through netlink, and its
// pods resolve their gateway 169.254.1.1 to Calico's MAC by proxy ARP.
// (TestBackendsNetworkModel proves the network model, MTU and wire format
// of the same labs; TestDryRunScriptBuildsSameLab the script's copy.)
func TestCalicoKernelObjects(t *testing.T) {
	requireRoot(t)
	for _, file := range calicoLabs {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			path, _ := copyTopology(t, file, "tck")
			topo := upLab(t, newManager(t), path)
			checkCalicoObjects(t, topo)
		})
	}
}

// A Calico lab with a mode per node pair, as Calico's CrossSubnet modes
// mix them: each pair carries its traffic as its mode does, and each node
// has both tunnel devices' objects where it has peers of both.
func TestCalicoMixedModes(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("tcm")
	path := writeTopology(t, `name: `+name+`
network: {cni: calico, backend: vxlan, nodeCIDRMaskSize: 26}
nodes:
  - {name: n1, pods: [{name: p1}]}
  - {name: n2, pods: [{name: p2}]}
  - {name: n3, pods: [{name: p3}]}
  - {name: n4, pods: [{name: p4}]}
links:
  - {nodes: [n1, n2], backend: ipip}
  - {nodes: [n1, n3], backend: host-gw}
`)
	topo := upLab(t, newBackendManager(t), path)
	checkCalicoObjects(t, topo)
	checkNetworkModel(t, topo)
	checkEncapsulation(t, topo)
}

// handleIn opens a netlink handle in a lab namespace for the test.
func handleIn(t *testing.T, labName, object string) *netlink.Handle {
	t.Helper()
	h, err := netns.Open(nsOf(labName, object))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nh, err := netns.NetlinkHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nh.Close)
	return nh
}

// routeLines renders a namespace's IPv4 routes of the main table as
// `ip route` prints them, sorted.
func routeLines(t *testing.T, nh *netlink.Handle) []string {
	t.Helper()
	links, err := nh.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	routes, err := nh.RouteList(nil, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			dst = strings.TrimSuffix(r.Dst.String(), "/32")
		}
		var w []string
		if r.Type == unix.RTN_BLACKHOLE {
			w = append(w, "blackhole")
		}
		w = append(w, dst)
		if r.Gw != nil {
			w = append(w, "via", r.Gw.String())
		}
		if r.LinkIndex != 0 {
			w = append(w, "dev", names[r.LinkIndex])
		}
		switch r.Protocol {
		case unix.RTPROT_BOOT:
		case unix.RTPROT_KERNEL:
			w = append(w, "proto", "kernel")
		case 12:
			w = append(w, "proto", "bird")
		default:
			w = append(w, "proto", fmt.Sprint(int(r.Protocol)))
		}
		if r.Scope == netlink.SCOPE_LINK {
			w = append(w, "scope", "link")
		}
		if r.Src != nil {
			w = append(w, "src", r.Src.String())
		}
		if r.Flags&unix.RTNH_F_ONLINK != 0 {
			w = append(w, "onlink")
		}
		if r.MTU != 0 {
			w = append(w, "mtu", fmt.Sprint(r.MTU))
		}
		lines = append(lines, strings.Join(w, " "))
	}
	slices.Sort(lines)
	return lines
}

// addrLines lists a namespace's IPv4 addresses as "dev addr/len", sorted.
// The receive pair of labctl's userspace IPIP datapath (tunl0-rx and
// tunl0-gro, present while the datapath runs, see emulator/ipipd) is not
// Calico's and is left out.
func addrLines(t *testing.T, nh *netlink.Handle) []string {
	t.Helper()
	links, err := nh.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		addrs, err := nh.AddrList(l, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if name := l.Attrs().Name; name != "tunl0-rx" && name != "tunl0-gro" {
				lines = append(lines, name+" "+a.IPNet.String())
			}
		}
	}
	slices.Sort(lines)
	return lines
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n  got  %q\n  want %q", what, got, want)
	}
}

// checkCalicoObjects compares every node and pod of a Calico lab with
// what Calico makes, object by object.
func checkCalicoObjects(t *testing.T, topo *spec.Topology) {
	t.Helper()
	nw := topo.Network
	gw := spec.UnderlayGateway(nw.Underlay)
	for i, n := range topo.Nodes {
		nh := handleIn(t, topo.Name, n.Name)
		ns := plan.NamespaceName(topo.Name, n.Name)
		tunnels := map[string]bool{}
		wantRoutes := []string{
			"default via " + gw.String() + " dev eth0",
			fmt.Sprintf("%s dev eth0 proto kernel scope link src %s", nw.Underlay, n.IP),
		}
		// BIRD installs the blackhole where it routes to some peer, Felix
		// where it programs every route (VXLAN alone).
		bird := len(topo.Nodes) == 1 && nw.Backend != spec.BackendVXLAN
		for j, peer := range topo.Nodes {
			if j == i {
				continue
			}
			switch topo.LinkBackend(n.Name, peer.Name) {
			case spec.BackendHostGW:
				bird = true
				wantRoutes = append(wantRoutes, fmt.Sprintf("%s via %s dev eth0 proto bird", peer.PodSubnet, peer.IP))
			case spec.BackendIPIP:
				bird, tunnels[nw.IPIP.Device] = true, true
				wantRoutes = append(wantRoutes, fmt.Sprintf("%s via %s dev %s proto bird onlink", peer.PodSubnet, peer.IP, nw.IPIP.Device))
			case spec.BackendVXLAN:
				tunnels[nw.VXLAN.Device] = true
				wantRoutes = append(wantRoutes, fmt.Sprintf("%s via %s dev %s onlink mtu %d", peer.PodSubnet, peer.PodSubnet.Addr(), nw.VXLAN.Device, nw.MTU-50))
			}
		}
		proto := "80"
		if bird {
			proto = "bird"
		}
		wantRoutes = append(wantRoutes, fmt.Sprintf("blackhole %s proto %s", n.PodSubnet, proto))
		wantAddrs := []string{"lo 127.0.0.1/8", "eth0 " + netip.PrefixFrom(n.IP, nw.Underlay.Bits()).String()}
		for tunnel := range tunnels {
			wantAddrs = append(wantAddrs, tunnel+" "+netip.PrefixFrom(n.PodSubnet.Addr(), 32).String())
		}
		for _, pod := range n.Pods {
			veth := spec.CalicoVethName(pod.Name)
			wantRoutes = append(wantRoutes, fmt.Sprintf("%s dev %s scope link", pod.IP, veth))
			l, err := nh.LinkByName(veth)
			if err != nil {
				t.Fatalf("%s: pod %s's veth %s: %v", ns, pod.Name, veth, err)
			}
			at := l.Attrs()
			if l.Type() != "veth" || at.HardwareAddr.String() != "ee:ee:ee:ee:ee:ee" || at.MasterIndex != 0 ||
				at.Flags&net.FlagUp == 0 || at.MTU != topo.PodMTU() {
				t.Errorf("%s %s: %s, mac %s, master %d, flags %v, mtu %d; want an up veth with ee:ee:ee:ee:ee:ee, no master, mtu %d",
					ns, veth, l.Type(), at.HardwareAddr, at.MasterIndex, at.Flags, at.MTU, topo.PodMTU())
			}
			for key, want := range map[string]string{
				"net/ipv4/conf/" + veth + "/proxy_arp": "1", "net/ipv4/neigh/" + veth + "/proxy_delay": "0",
				"net/ipv4/conf/" + veth + "/forwarding": "1", "net/ipv4/conf/" + veth + "/route_localnet": "1",
				"net/ipv6/conf/" + veth + "/accept_ra": "0",
			} {
				if got, err := readSysctlIn(ns, key); err != nil || got != want {
					t.Errorf("%s %s = %q (%v), want %s", ns, key, got, err, want)
				}
			}
		}
		sameLines(t, ns+" routes", routeLines(t, nh), wantRoutes)
		sameLines(t, ns+" addresses", addrLines(t, nh), wantAddrs)
		links, _ := nh.LinkList()
		for _, l := range links {
			if l.Type() == "bridge" {
				t.Errorf("%s has bridge %s; Calico's nodes have none", ns, l.Attrs().Name)
			}
		}
		if fwd, err := readSysctlIn(ns, "net/ipv4/ip_forward"); err != nil || fwd != "1" {
			t.Errorf("%s ip_forward = %q (%v), want 1", ns, fwd, err)
		}
		if tunnels[nw.VXLAN.Device] {
			checkCalicoVTEP(t, topo, nh, n)
		}
	}
	for _, pod := range topo.Pods() {
		nh := handleIn(t, topo.Name, pod.Name)
		ns := plan.NamespaceName(topo.Name, pod.Name)
		sameLines(t, ns+" routes", routeLines(t, nh), []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"})
		sameLines(t, ns+" addresses", addrLines(t, nh), []string{"lo 127.0.0.1/8", "eth0 " + netip.PrefixFrom(pod.IP, 32).String()})
		if fwd, err := readSysctlIn(ns, "net/ipv4/ip_forward"); err != nil || fwd != "0" {
			t.Errorf("%s ip_forward = %q (%v), want 0", ns, fwd, err)
		}
		// The pod reaches its node, resolving 169.254.1.1 by proxy ARP.
		node, _ := topo.Node(pod.Node)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := probe.Ping(ctx, nsOf(topo.Name, pod.Name), node.IP, probe.PingOptions{Timeout: 2 * time.Second})
		cancel()
		if err != nil || res.Received == 0 {
			t.Errorf("ping %s -> its node %s: %v", pod.Name, node.IP, err)
		}
		neighs, err := nh.NeighList(0, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range neighs {
			got = append(got, n.IP.String()+" "+n.HardwareAddr.String())
		}
		if !slices.Contains(got, "169.254.1.1 ee:ee:ee:ee:ee:ee") {
			t.Errorf("%s neighbours %q: 169.254.1.1 not resolved to ee:ee:ee:ee:ee:ee", ns, got)
		}
	}
}

// checkCalicoVTEP compares a node's vxlan.calico, its neighbours and its
// FDB with Felix's.
func checkCalicoVTEP(t *testing.T, topo *spec.Topology, nh *netlink.Handle, n spec.Node) {
	t.Helper()
	nw := topo.Network
	l, err := nh.LinkByName(nw.VXLAN.Device)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := l.(*netlink.Vxlan)
	if !ok || v.VxlanId != 4096 || v.Port != 4789 || v.Learning || !v.SrcAddr.Equal(n.IP.AsSlice()) ||
		v.HardwareAddr.String() != plan.CalicoVTEPMAC(n.Name).String() || v.MTU != nw.MTU-50 {
		t.Errorf("%s: %+v; want VNI 4096, port 4789, nolearning, local %s, MAC %s, MTU %d", nw.VXLAN.Device, l, n.IP, plan.CalicoVTEPMAC(n.Name), nw.MTU-50)
	}
	var wantNeigh, wantFDB []string
	for _, peer := range topo.Nodes {
		if peer.Name != n.Name && topo.LinkBackend(n.Name, peer.Name) == spec.BackendVXLAN {
			mac := plan.CalicoVTEPMAC(peer.Name).String()
			wantNeigh = append(wantNeigh, peer.PodSubnet.Addr().String()+" "+mac+" permanent")
			wantFDB = append(wantFDB, mac+" dst "+peer.IP.String()+" self permanent")
		}
	}
	neighs, err := nh.NeighList(l.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range neighs {
		got = append(got, e.IP.String()+" "+e.HardwareAddr.String()+" "+stateWord(e.State))
	}
	slices.Sort(got)
	sameLines(t, n.Name+" neighbours of "+nw.VXLAN.Device, got, wantNeigh)
	fdb, err := nh.NeighList(l.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, e := range fdb {
		self := ""
		if e.Flags&unix.NTF_SELF != 0 {
			self = " self"
		}
		got = append(got, e.HardwareAddr.String()+" dst "+e.IP.String()+self+" "+stateWord(e.State))
	}
	slices.Sort(got)
	sameLines(t, n.Name+" FDB of "+nw.VXLAN.Device, got, wantFDB)
}

// stateWord says "permanent" as bridge fdb and ip neigh do: whether NOARP
// comes with it depends on the tool (bridge fdb add sets it, Felix's and
// labctl's netlink messages do not).
func stateWord(s int) string {
	if s&^unix.NUD_NOARP == unix.NUD_PERMANENT {
		return "permanent"
	}
	return fmt.Sprintf("state %#x", s)
}

// A Calico pod whose namespace was deleted while its supervisor held it
// (so its veth lived on) is rebuilt by a repair: the stale cali veth is
// removed, the new one made, and the node's routes are again Calico's.
func TestCalicoRepair(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("tcr")
	path := writeTopology(t, `name: `+name+`
network: {cni: calico, backend: ipip, ipip: {datapath: userspace}, nodeCIDRMaskSize: 26}
nodes:
  - name: n1
    pods: [{name: p1, containers: [{name: c, builtin: client}]}, {name: p2}]
  - name: n2
    pods: [{name: p3}]
`)
	m := newManager(t)
	topo := upLab(t, m, path)
	delNetns(t, plan.NamespaceName(name, "p1"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Up(ctx, topo, lab.UpOptions{Repair: true}); err != nil {
		t.Fatalf("repair: %v", err)
	}
	checkCalicoObjects(t, topo)
	checkNetworkModel(t, topo)
}

// Bridge ports have hairpin on, as flannel's CNI configuration asks,
// unless the lab or the node turns it off; each bridge has the MAC labctl
// pins, read back through netlink.
func TestHairpinPorts(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("thp")
	path := writeTopology(t, `name: `+name+`
network: {hairpinMode: false}
nodes:
  - {name: n1, hairpinMode: true, pods: [{name: p1}, {name: p2}]}
  - {name: n2, pods: [{name: p3}]}
`)
	topo := upLab(t, newManager(t), path)
	checkBridgeObjects(t, topo)
	if n, _ := topo.Node("n2"); n.HairpinMode {
		t.Fatal("n2 should have hairpin off")
	}
}

// checkBridgeObjects checks the bridge style's ports and MACs: hairpin as
// each node asks, the bridge pinned to plan.BridgeMAC of its gateway.
func checkBridgeObjects(t *testing.T, topo *spec.Topology) {
	t.Helper()
	for _, n := range topo.Nodes {
		nh := handleIn(t, topo.Name, n.Name)
		br, err := nh.LinkByName(n.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := br.Attrs().HardwareAddr.String(), plan.BridgeMAC(n.Gateway).String(); got != want {
			t.Errorf("%s %s MAC %s, want %s", n.Name, n.Bridge, got, want)
		}
		for _, pod := range n.Pods {
			port, err := nh.LinkByName(topo.HostVeth(pod.Name))
			if err != nil {
				t.Fatal(err)
			}
			pi, err := nh.LinkGetProtinfo(port)
			if err != nil {
				t.Fatal(err)
			}
			if pi.Hairpin != n.HairpinMode {
				t.Errorf("%s port %s hairpin %v, want %v", n.Name, port.Attrs().Name, pi.Hairpin, n.HairpinMode)
			}
		}
	}
}

// The pods' gateway keeps its MAC when pods come: one rebuilt by a repair
// (its namespace deleted while its supervisor held it), one more added by
// a reconfigure, and a port with a MAC lower than any other joining the
// bridge, which an unpinned bridge would take as its own.
func TestGatewayMACStays(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("tgm")
	doc := `name: ` + name + `
nodes:
  - name: n1
    pods: [{name: p1, containers: [{name: c, builtin: client}]}, {name: p2}]
  - name: n2
    pods: [{name: p3}]
`
	path := writeTopology(t, doc)
	m := newManager(t)
	topo := upLab(t, m, path)
	n1 := plan.NamespaceName(name, "n1")
	n, _ := topo.Node("n1")
	gatewayMAC := func(when string) {
		t.Helper()
		l, err := handleIn(t, name, "n1").LinkByName(n.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := l.Attrs().HardwareAddr.String(), plan.BridgeMAC(n.Gateway).String(); got != want {
			t.Errorf("%s: the gateway's MAC is %s, want %s", when, got, want)
		}
	}
	gatewayMAC("after up")

	lowPort := func() {
		t.Helper()
		nh := handleIn(t, name, "n1")
		br, err := nh.LinkByName(n.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr, la.MasterIndex = "low0", net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, br.Attrs().Index
		if err := nh.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "low1"}); err != nil {
			t.Fatal(err)
		}
	}
	lowPort()
	gatewayMAC("after a port with MAC 02:00:00:00:00:01 joined " + n.Bridge + " in " + n1)

	delNetns(t, plan.NamespaceName(name, "p1"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Up(ctx, topo, lab.UpOptions{Repair: true}); err != nil {
		t.Fatalf("repair: %v", err)
	}
	gatewayMAC("after a repair rebuilt p1")
	checkBridgeObjects(t, topo)

	doc = strings.Replace(doc, "{name: p2}]", "{name: p2}, {name: p4}]", 1)
	path = writeTopology(t, doc)
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx, topo, lab.UpOptions{Reconfigure: true}); err != nil {
		t.Fatalf("reconfigure: %v", err)
	}
	gatewayMAC("after a reconfigure added p4")
	checkBridgeObjects(t, topo)
	checkNetworkModel(t, topo)
}

// With ipv6LinkLocal every device that is up has its fe80:: address (the
// node end of a Calico pod's veth the one Calico's MAC gives, as Calico
// expects); without it no namespace has an IPv6 address at all.
func TestIPv6LinkLocal(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		cni string
		on  bool
	}{{"bridge", true}, {"calico", true}, {"bridge", false}} {
		t.Run(fmt.Sprintf("%s/%v", tc.cni, tc.on), func(t *testing.T) {
			t.Parallel()
			name := uniqueName("tv6")
			path := writeTopology(t, fmt.Sprintf("name: %s\nnetwork: {cni: %s, ipv6LinkLocal: %v}\nnodes: [{name: n1, pods: [{name: p1}]}]\n",
				name, tc.cni, tc.on))
			topo := upLab(t, newManager(t), path)
			devices := map[string]string{"p1": "eth0", "n1": "eth0"}
			if tc.cni == "calico" {
				devices["n1"] = spec.CalicoVethName("p1")
			}
			for object, dev := range devices {
				nh := handleIn(t, topo.Name, object)
				l, err := nh.LinkByName(dev)
				if err != nil {
					t.Fatal(err)
				}
				addrs, err := nh.AddrList(l, unix.AF_INET6)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, a := range addrs {
					got = append(got, a.IPNet.String())
				}
				var want []string
				if tc.on {
					want = []string{linkLocal(l.Attrs().HardwareAddr)}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s %s IPv6 addresses %q, want %q", object, dev, got, want)
				}
			}
			if tc.cni == "calico" && tc.on {
				checkNetworkModel(t, topo)
			}
		})
	}
}

// linkLocal is the EUI-64 link-local address of a MAC, as the kernel
// gives a device.
func linkLocal(mac net.HardwareAddr) string {
	ip := netip.AddrFrom16([16]byte{0xfe, 0x80, 8: mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]})
	return netip.PrefixFrom(ip, 64).String()
}

// The tutorial's host-gw addressing (topologies/tutorial-host-gw.yaml):
// each node's bridge at .10, pods from .11 on, and the network model
// holds.
func TestTutorialGateway(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, name := copyTopology(t, "tutorial-host-gw.yaml", "ttg")
	topo := upLab(t, newManager(t), path)
	for _, pod := range topo.Pods() {
		if pod.IP.As4()[3] != 11 && pod.IP.As4()[3] != 12 {
			t.Errorf("%s has %s, want .11 or .12", pod.Name, pod.IP)
		}
		sameLines(t, pod.Name+" routes", routeLines(t, handleIn(t, name, pod.Name)), []string{
			fmt.Sprintf("default via 192.168.%d.10 dev eth0", pod.IP.As4()[2]),
			fmt.Sprintf("192.168.%d.0/24 dev eth0 proto kernel scope link src %s", pod.IP.As4()[2], pod.IP),
		})
	}
	checkBridgeObjects(t, topo)
	checkNetworkModel(t, topo)
}
