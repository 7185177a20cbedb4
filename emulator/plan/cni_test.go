package plan

import (
	"net/netip"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

func parse(t *testing.T, yaml string) *spec.Topology {
	t.Helper()
	topo, err := spec.Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func compile(t *testing.T, topo *spec.Topology) *Plan {
	t.Helper()
	p, err := Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A Calico node's block is a blackhole installed by BIRD when BIRD routes
// to some of its peers (IPIP, no encapsulation), else by Felix (VXLAN only).
func TestCalicoBlackholeProtocol(t *testing.T) {
	topo := parse(t, `
name: mix
network: {cni: calico, backend: vxlan}
nodes: [{name: a}, {name: b}, {name: c}, {name: d}]
links:
  - {nodes: [a, b], backend: ipip}
  - {nodes: [c, a], backend: host-gw}
`)
	want := map[string]uint8{"mix-a": ProtoBIRD, "mix-b": ProtoBIRD, "mix-c": ProtoBIRD, "mix-d": ProtoFelix}
	got := map[string]uint8{}
	for _, op := range compile(t, topo).Ops() {
		if b, ok := op.(AddBlackhole); ok {
			got[b.Namespace] = b.Protocol
			if n, _ := topo.Node(b.Namespace[len("mix-"):]); b.Dst != n.PodSubnet {
				t.Errorf("%s: blackhole %s, want the node's block %s", b.Namespace, b.Dst, n.PodSubnet)
			}
		}
	}
	for ns, p := range want {
		if got[ns] != p {
			t.Errorf("%s: blackhole proto %d, want %d", ns, got[ns], p)
		}
	}
	single := parse(t, "name: one\nnetwork: {cni: calico, backend: vxlan}\nnodes: [{name: a}]\n")
	for _, op := range compile(t, single).Ops() {
		if b, ok := op.(AddBlackhole); ok && b.Protocol != ProtoFelix {
			t.Errorf("a lone node of a VXLAN lab: blackhole proto %d, want Felix's", b.Protocol)
		}
	}
}

// Hairpin mode is set on the bridge ports of the nodes that keep it, and
// only there; every bridge gets its MAC pinned; Calico's pods get neither.
func TestHairpinAndPinnedMAC(t *testing.T) {
	topo := parse(t, `
name: hp
network: {hairpinMode: false}
nodes:
  - {name: on, hairpinMode: true, pods: [{name: p1}, {name: p2}]}
  - {name: off, pods: [{name: p3}]}
`)
	hairpins := map[string]bool{}
	macs := map[string]string{}
	for _, op := range compile(t, topo).Ops() {
		switch o := op.(type) {
		case Across:
			for _, in := range o.Ops {
				if h, ok := in.(SetHairpin); ok {
					hairpins[h.Namespace+"/"+h.Device] = true
				}
			}
		case SetLinkMAC:
			macs[o.Namespace+"/"+o.Device] = o.MAC.String()
		}
	}
	if len(hairpins) != 2 || !hairpins["hp-on/veth-p1"] || !hairpins["hp-on/veth-p2"] {
		t.Errorf("hairpin set on %v, want veth-p1 and veth-p2 of node on", hairpins)
	}
	if macs["hp-on/cni0"] != "0e:fb:0a:f4:00:01" || macs["hp-off/cni0"] != "0e:fb:0a:f4:01:01" {
		t.Errorf("bridge MACs %v, want each pinned to 0e:fb and its gateway", macs)
	}
	calico := parse(t, "name: c\nnetwork: {cni: calico}\nnodes: [{name: n, pods: [{name: p}]}]\n")
	for _, op := range compile(t, calico).Ops() {
		switch op.(type) {
		case SetLinkMAC, AddBridge:
			if op.Where() != UnderlayNamespace("c") {
				t.Errorf("a Calico node got %s", op.Describe())
			}
		}
	}
}

// A Calico pod's wiring, op by op: what the pod and the node end of its
// veth get.
func TestCalicoPodOps(t *testing.T) {
	topo := parse(t, "name: c\nnetwork: {cni: calico, clusterCIDR: 10.9.0.0/16}\nnodes: [{name: n, pods: [{name: p}]}]\n")
	p := compile(t, topo)
	pod := p.Stages[2].Units[0]
	veth := spec.CalicoVethName("p")
	var got []string
	for _, op := range pod.Ops {
		got = append(got, op.Describe().String())
	}
	want := []string{
		`ip netns add "c-p"`,
		`ip netns exec "c-p" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward=0`,
		`ip -n "c-p" link set "lo" up`,
		`ip -n "c-n" link add "` + veth + `" address ee:ee:ee:ee:ee:ee mtu 1500 up type veth peer name "eth0" mtu 1500 netns "c-p"`,
		`ip -n "c-p" link set "eth0" up`,
		`ip -n "c-p" route add 169.254.1.1/32 dev "eth0"`,
		`ip -n "c-p" route add default via 169.254.1.1 dev "eth0"`,
		`ip -n "c-p" addr add 10.9.0.1/32 dev "eth0"`,
		`ip netns exec "c-n" sysctl -qw net.ipv4.conf.` + veth + `.route_localnet=1 net.ipv4.neigh.` + veth + `.proxy_delay=0 net.ipv4.conf.` + veth +
			`.proxy_arp=1 net.ipv4.conf.` + veth + `.forwarding=1 net.ipv6.conf.` + veth + `.accept_ra=0; ip -n "c-n" route add 10.9.0.1/32 dev "` + veth + `"`,
	}
	if len(got) != len(want) {
		t.Fatalf("pod ops:\n%q\nwant\n%q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("op %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	if topo.Nodes[0].Gateway != netip.MustParseAddr("169.254.1.1") {
		t.Errorf("gateway %s", topo.Nodes[0].Gateway)
	}
}

// With ipv6LinkLocal, no namespace disables IPv6.
func TestIPv6LinkLocal(t *testing.T) {
	topo := parse(t, "name: v6\nnetwork: {ipv6LinkLocal: true}\nnodes: [{name: n, pods: [{name: p}]}]\n")
	n := 0
	for _, op := range compile(t, topo).Ops() {
		if s, ok := op.(SetSysctl); ok {
			for _, kv := range s.Settings {
				if kv.Key == "net.ipv6.conf.all.disable_ipv6" {
					n++
					if kv.Value != "0" {
						t.Errorf("%s", s.Describe())
					}
				}
			}
		}
	}
	if n != 3 {
		t.Errorf("%d namespaces set disable_ipv6, want 3 (underlay, node, pod)", n)
	}
}
