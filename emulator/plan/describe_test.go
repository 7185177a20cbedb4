package plan

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

// Every operation says where it is performed and what it does, once: the
// script lines (pinned here for every kind and variant, beyond what the
// golden scripts cover; they are what the ops' Command methods printed
// before descriptions) and the message words come from one description.
// A message is the script's commands with names quoted and without shell
// plumbing.
func TestDescribe(t *testing.T) {
	tests := []struct {
		op      Op
		where   string
		script  string
		message string
	}{
		{AddNamespace{Name: "lab-node1"},
			"lab-node1",
			"ip netns add lab-node1\n",
			`ip netns add "lab-node1"`},
		{SetSysctl{Namespace: "lab-node1", Settings: []Sysctl{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv4.ip_forward", "1"}}},
			"lab-node1",
			"ip netns exec lab-node1 sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.ip_forward=1\n",
			`ip netns exec "lab-node1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv4.ip_forward=1`},
		{SetLinkUp{Namespace: "lab-pod1", Device: "eth0"},
			"lab-pod1",
			"ip -n lab-pod1 link set eth0 up\n",
			`ip -n "lab-pod1" link set "eth0" up`},
		{AddBridge{Namespace: "lab-node1", Name: "cni0", MTU: 1500},
			"lab-node1",
			"ip -n lab-node1 link add cni0 mtu 1500 up type bridge\n",
			`ip -n "lab-node1" link add "cni0" mtu 1500 up type bridge`},
		{AddVeth{Namespace: "lab-node1", Name: "veth-pod1", Master: "cni0", PeerNamespace: "lab-pod1", PeerName: "eth0", MTU: 1450},
			"lab-pod1",
			"ip -n lab-node1 link add veth-pod1 mtu 1450 master cni0 up type veth peer name eth0 mtu 1450 netns lab-pod1\n",
			`ip -n "lab-node1" link add "veth-pod1" mtu 1450 master "cni0" up type veth peer name "eth0" mtu 1450 netns "lab-pod1"`},
		{AddVeth{Namespace: "lab-node1", Name: "cali1", PeerNamespace: "lab-pod1", PeerName: "eth0", MTU: 1480},
			"lab-pod1",
			"ip -n lab-node1 link add cali1 mtu 1480 up type veth peer name eth0 mtu 1480 netns lab-pod1\n",
			`ip -n "lab-node1" link add "cali1" mtu 1480 up type veth peer name "eth0" mtu 1480 netns "lab-pod1"`},
		{AddAddress{Namespace: "lab-pod1", Device: "eth0", Address: netip.MustParsePrefix("10.244.1.2/24")},
			"lab-pod1",
			"ip -n lab-pod1 addr add 10.244.1.2/24 dev eth0\n",
			`ip -n "lab-pod1" addr add 10.244.1.2/24 dev "eth0"`},
		{AddRoute{Namespace: "lab-pod1", Via: netip.MustParseAddr("10.244.1.1")},
			"lab-pod1",
			"ip -n lab-pod1 route add default via 10.244.1.1\n",
			`ip -n "lab-pod1" route add default via 10.244.1.1`},
		{AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("10.244.0.0/16"), Device: "br0"},
			"lab-node1",
			"ip -n lab-node1 route add 10.244.0.0/16 dev br0\n",
			`ip -n "lab-node1" route add 10.244.0.0/16 dev "br0"`},
		{AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.244.2.0"), Device: "flannel.1", OnLink: true},
			"lab-node1",
			"ip -n lab-node1 route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink\n",
			`ip -n "lab-node1" route add 10.244.2.0/24 via 10.244.2.0 dev "flannel.1" onlink`},
		{AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("192.168.64.3")},
			"lab-node1",
			"ip -n lab-node1 route add 10.244.2.0/24 via 192.168.64.3\n",
			`ip -n "lab-node1" route add 10.244.2.0/24 via 192.168.64.3`},
		{AddVXLAN{Namespace: "lab-node1", Name: "flannel.1", VNI: 1, Port: 8472, Local: netip.MustParseAddr("192.168.64.2"), Underlay: "eth0",
			MAC: net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 2}, MTU: 1450},
			"lab-node1",
			"ip -n lab-node1 link add flannel.1 address 0e:fa:c0:a8:40:02 mtu 1450 up type vxlan id 1 local 192.168.64.2 dev eth0 dstport 8472 nolearning\n",
			`ip -n "lab-node1" link add "flannel.1" address 0e:fa:c0:a8:40:02 mtu 1450 up type vxlan id 1 local 192.168.64.2 dev "eth0" dstport 8472 nolearning`},
		{AddVXLAN{Namespace: "lab-node1", Name: "vxlan0", VNI: 42, Port: 4789, Local: netip.MustParseAddr("192.168.64.2"), Underlay: "eth0",
			Learning: true, Group: netip.MustParseAddr("239.1.1.1"), Master: "br0", MTU: 1450},
			"lab-node1",
			"ip -n lab-node1 link add vxlan0 mtu 1450 master br0 up type vxlan id 42 group 239.1.1.1 local 192.168.64.2 dev eth0 dstport 4789\n",
			`ip -n "lab-node1" link add "vxlan0" mtu 1450 master "br0" up type vxlan id 42 group 239.1.1.1 local 192.168.64.2 dev "eth0" dstport 4789`},
		{AddNeighbor{Namespace: "lab-node1", Device: "flannel.1", IP: netip.MustParseAddr("10.244.2.0"), MAC: net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 3}},
			"lab-node1",
			"ip -n lab-node1 neigh add 10.244.2.0 lladdr 0e:fa:c0:a8:40:03 dev flannel.1 nud permanent\n",
			`ip -n "lab-node1" neigh add 10.244.2.0 lladdr 0e:fa:c0:a8:40:03 dev "flannel.1" nud permanent`},
		{AddFDB{Namespace: "lab-node1", Device: "flannel.1", MAC: net.HardwareAddr{0x0e, 0xfa, 192, 168, 64, 3}, Dst: netip.MustParseAddr("192.168.64.3")},
			"lab-node1",
			"bridge -n lab-node1 fdb add 0e:fa:c0:a8:40:03 dev flannel.1 dst 192.168.64.3 self permanent\n",
			`bridge -n "lab-node1" fdb add 0e:fa:c0:a8:40:03 dev "flannel.1" dst 192.168.64.3 self permanent`},
		{AddFDB{Namespace: "lab-node1", Device: "vxlan0", MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, Dst: netip.MustParseAddr("192.168.64.3"), Append: true},
			"lab-node1",
			"bridge -n lab-node1 fdb append 00:00:00:00:00:00 dev vxlan0 dst 192.168.64.3 self permanent\n",
			`bridge -n "lab-node1" fdb append 00:00:00:00:00:00 dev "vxlan0" dst 192.168.64.3 self permanent`},
		{AddIPIPTunnel{Namespace: "lab-node1", Name: "tunl0", MTU: 1480, Datapath: spec.DatapathAuto},
			"lab-node1",
			"# tunl0 is the ipip module's fallback device and exists once the module is loaded, hence || true.\n# Without the ipip module, labctl runs the same device as a TUN served by its userspace IPIP datapath.\nip -n lab-node1 link add tunl0 type ipip 2>/dev/null || true\nip -n lab-node1 link set tunl0 mtu 1480 up\n",
			`ip -n "lab-node1" link add "tunl0" type ipip; ip -n "lab-node1" link set "tunl0" mtu 1480 up`},
		{AddIPIPTunnel{Namespace: "lab-node1", Name: "ipip0", Local: netip.MustParseAddr("192.168.64.2"), MTU: 1480, Datapath: spec.DatapathKernel},
			"lab-node1",
			"# Without the ipip module, labctl runs the same device as a TUN served by its userspace IPIP datapath.\nip -n lab-node1 link add ipip0 type ipip local 192.168.64.2\nip -n lab-node1 link set ipip0 mtu 1480 up\n",
			`ip -n "lab-node1" link add "ipip0" type ipip local 192.168.64.2; ip -n "lab-node1" link set "ipip0" mtu 1480 up`},
		{AddIPIPTunnel{Namespace: "lab-node1", Name: "tunl0", MTU: 1480, Datapath: spec.DatapathUserspace},
			"lab-node1",
			"# labctl serves tunl0 from userspace (network.ipip.datapath: userspace): a TUN device whose packets\n# it wraps in IPIP (protocol 4) itself; the kernel's own device would be `ip link add tunl0 type ipip`.\nip -n lab-node1 tuntap add dev tunl0 mode tun multi_queue\nip -n lab-node1 link set tunl0 mtu 1480 up\n",
			`ip -n "lab-node1" tuntap add dev "tunl0" mode tun multi_queue; ip -n "lab-node1" link set "tunl0" mtu 1480 up`},
		{AddVeth{Namespace: "lab-node1", Name: "calia87c8a6361", PeerNamespace: "lab-pod1", PeerName: "eth0", MTU: 1480, MAC: CalicoHostMAC},
			"lab-pod1",
			"ip -n lab-node1 link add calia87c8a6361 address ee:ee:ee:ee:ee:ee mtu 1480 up type veth peer name eth0 mtu 1480 netns lab-pod1\n",
			`ip -n "lab-node1" link add "calia87c8a6361" address ee:ee:ee:ee:ee:ee mtu 1480 up type veth peer name "eth0" mtu 1480 netns "lab-pod1"`},
		{AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.2.0/26"), Via: netip.MustParseAddr("10.30.45.200"), Device: "tunl0", OnLink: true, Protocol: ProtoBIRD},
			"lab-node1",
			"ip -n lab-node1 route add 192.168.2.0/26 via 10.30.45.200 dev tunl0 proto bird onlink\n",
			`ip -n "lab-node1" route add 192.168.2.0/26 via 10.30.45.200 dev "tunl0" proto bird onlink`},
		{AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.2.0/26"), Via: netip.MustParseAddr("192.168.2.0"), Device: "vxlan.calico", OnLink: true, MTU: 1450},
			"lab-node1",
			"ip -n lab-node1 route add 192.168.2.0/26 via 192.168.2.0 dev vxlan.calico onlink mtu 1450\n",
			`ip -n "lab-node1" route add 192.168.2.0/26 via 192.168.2.0 dev "vxlan.calico" onlink mtu 1450`},
		{AddBlackhole{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.1.0/26"), Protocol: ProtoBIRD},
			"lab-node1",
			"ip -n lab-node1 route add blackhole 192.168.1.0/26 proto bird\n",
			`ip -n "lab-node1" route add blackhole 192.168.1.0/26 proto bird`},
		{AddBlackhole{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.1.0/26"), Protocol: ProtoFelix},
			"lab-node1",
			"ip -n lab-node1 route add blackhole 192.168.1.0/26 proto 80\n",
			`ip -n "lab-node1" route add blackhole 192.168.1.0/26 proto 80`},
		{SetLinkMAC{Namespace: "lab-node1", Device: "cni0", MAC: BridgeMAC(netip.MustParseAddr("10.244.1.1"))},
			"lab-node1",
			"ip -n lab-node1 link set cni0 address 0e:fb:0a:f4:01:01\n",
			`ip -n "lab-node1" link set "cni0" address 0e:fb:0a:f4:01:01`},
		{SetHairpin{Namespace: "lab-node1", Device: "veth-pod1"},
			"lab-node1",
			"bridge -n lab-node1 link set dev veth-pod1 hairpin on\n",
			`bridge -n "lab-node1" link set dev "veth-pod1" hairpin on`},
		{Across{From: "lab-pod1", Namespace: "lab-node1", Ops: []Op{
			SetSysctl{Namespace: "lab-node1", Settings: []Sysctl{{"net.ipv4.conf.cali1.proxy_arp", "1"}}},
			AddRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("10.244.1.2/32"), Device: "cali1"},
		}},
			"lab-pod1",
			"ip netns exec lab-node1 sysctl -qw net.ipv4.conf.cali1.proxy_arp=1\nip -n lab-node1 route add 10.244.1.2/32 dev cali1\n",
			`ip netns exec "lab-node1" sysctl -qw net.ipv4.conf.cali1.proxy_arp=1; ip -n "lab-node1" route add 10.244.1.2/32 dev "cali1"`},
	}
	for _, tt := range tests {
		d := tt.op.Describe()
		if got := tt.op.Where(); got != tt.where {
			t.Errorf("%T.Where() = %q, want %q", tt.op, got, tt.where)
		}
		if got := d.Script(); got != tt.script {
			t.Errorf("%T script:\n got: %q\nwant: %q", tt.op, got, tt.script)
		}
		if got := d.String(); got != tt.message {
			t.Errorf("%T message:\n got: %s\nwant: %s", tt.op, got, tt.message)
		}
	}
}

// A message stays a command a shell can read: bash parses (without
// running) messages whose names need quoting the least and the most.
func TestDescribeMessagesAreShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash")
	}
	var script strings.Builder
	for _, op := range []Op{
		AddVeth{Namespace: "a-b", Name: "veth-x", Master: "br0", PeerNamespace: "c", PeerName: "eth0", MTU: 1500},
		AddIPIPTunnel{Namespace: "n", Name: "tunl0", MTU: 1480},
		SetSysctl{Namespace: "n", Settings: noIPv6},
		Across{From: "p", Namespace: "n", Ops: []Op{SetHairpin{Namespace: "n", Device: "veth-p"},
			SetSysctl{Namespace: "n", Settings: calicoHostSysctls("cali0123456789a")}}},
		AddBlackhole{Namespace: "n", Dst: netip.MustParsePrefix("10.0.0.0/26"), Protocol: ProtoBIRD},
		SetLinkMAC{Namespace: "n", Device: "br0", MAC: CalicoHostMAC},
	} {
		script.WriteString(op.Describe().String() + "\n")
	}
	out, err := exec.Command(bash, "-n", "-c", script.String()).CombinedOutput()
	if err != nil {
		t.Errorf("bash -n: %v: %s", err, out)
	}
}

// Each unit performs its operations from inside its own namespace: the
// applier relies on it, checking Where once per operation.
func TestOpsArePerformedFromTheirUnit(t *testing.T) {
	for _, name := range []string{"two-node", "three-node-mixed", "three-node-vxlan-l2", "two-node-ipip", "calico-ipip", "calico-vxlan", "calico-no-encap", "three-node-service"} {
		p := compileFile(t, "../../topologies/"+name+".yaml")
		for _, s := range p.Stages {
			for _, u := range s.Units {
				for _, op := range u.Ops {
					ops := []Op{op}
					if g, ok := op.(Group); ok {
						for sub := range g.Expand() {
							ops = append(ops, sub)
						}
					}
					for _, o := range ops {
						if o.Where() != u.Namespace {
							t.Errorf("%s: unit %q holds %s, performed from %q", name, u.Namespace, o.Describe(), o.Where())
						}
					}
					// What an Across holds is performed in its namespace.
					if a, ok := op.(Across); ok {
						for _, o := range a.Ops {
							if o.Where() != a.Namespace {
								t.Errorf("%s: unit %q reaches %q with %s, performed from %q", name, u.Namespace, a.Namespace, o.Describe(), o.Where())
							}
						}
					}
				}
			}
		}
	}
}
