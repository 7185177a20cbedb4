package plan

import (
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// Every fault says where it is performed and what it does as the command
// a person would type for the same damage.
func TestDescribeFaults(t *testing.T) {
	mac := net.HardwareAddr{0x0e, 0xfa, 10, 30, 45, 200}
	tests := []struct {
		op      Op
		script  string
		message string
	}{
		{DeleteRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.2.0/24")},
			"ip -n lab-node1 route del 192.168.2.0/24\n",
			`ip -n "lab-node1" route del 192.168.2.0/24`},
		{DeleteRoute{Namespace: "lab-pod1", Via: netip.MustParseAddr("192.168.1.1"), Device: "eth0"},
			"ip -n lab-pod1 route del default via 192.168.1.1 dev eth0\n",
			`ip -n "lab-pod1" route del default via 192.168.1.1 dev "eth0"`},
		{ReplaceRoute{Namespace: "lab-node1", Dst: netip.MustParsePrefix("192.168.2.0/24"), Via: netip.MustParseAddr("10.30.45.99"), Device: "eth0"},
			"ip -n lab-node1 route replace 192.168.2.0/24 via 10.30.45.99 dev eth0\n",
			`ip -n "lab-node1" route replace 192.168.2.0/24 via 10.30.45.99 dev "eth0"`},
		{SetLinkDown{Namespace: "lab-node1", Device: "br0"},
			"ip -n lab-node1 link set br0 down\n",
			`ip -n "lab-node1" link set "br0" down`},
		{SetMTU{Namespace: "lab-underlay", Device: "veth-node1", MTU: 1400},
			"ip -n lab-underlay link set veth-node1 mtu 1400\n",
			`ip -n "lab-underlay" link set "veth-node1" mtu 1400`},
		{AddDropRule{Namespace: "lab-node1", Hook: HookForward, Protocol: "tcp", Dst: netip.MustParsePrefix("192.168.2.0/24"), Port: 80},
			"# A drop rule in labctl's own nftables table, apart from every other rule; `nft delete table inet labctl-faults` removes it.\n" +
				"ip netns exec lab-node1 nft add table inet labctl-faults\n" +
				"ip netns exec lab-node1 nft add chain inet labctl-faults forward '{ type filter hook forward priority filter; policy accept; }'\n" +
				"ip netns exec lab-node1 nft add rule inet labctl-faults forward ip daddr 192.168.2.0/24 tcp dport 80 counter drop\n",
			`ip netns exec "lab-node1" nft add table inet labctl-faults; ` +
				`ip netns exec "lab-node1" nft add chain inet labctl-faults forward '{ type filter hook forward priority filter; policy accept; }'; ` +
				`ip netns exec "lab-node1" nft add rule inet labctl-faults forward ip daddr 192.168.2.0/24 tcp dport 80 counter drop`},
		{DeleteNeighbor{Namespace: "lab-node1", Device: "flannel.1", IP: netip.MustParseAddr("192.168.2.0")},
			"ip -n lab-node1 neigh del 192.168.2.0 dev flannel.1\n",
			`ip -n "lab-node1" neigh del 192.168.2.0 dev "flannel.1"`},
		{DeleteFDB{Namespace: "lab-node1", Device: "flannel.1", MAC: mac, Dst: netip.MustParseAddr("10.30.45.200")},
			"bridge -n lab-node1 fdb del 0e:fa:0a:1e:2d:c8 dev flannel.1 dst 10.30.45.200 self\n",
			`bridge -n "lab-node1" fdb del 0e:fa:0a:1e:2d:c8 dev "flannel.1" dst 10.30.45.200 self`},
		{StopContainer{Namespace: "lab-pod2", Lab: "lab", Pod: "pod2", Container: "web-server"},
			"# labctl stops the container's process (SIGTERM, SIGKILL after the grace period); the pod's restart policy decides whether it starts again.\n" +
				"labctl stop --lab lab pod2 -c web-server\n",
			`labctl stop --lab "lab" "pod2" -c "web-server"`},
	}
	for _, tt := range tests {
		d := tt.op.Describe()
		// Each works from the namespace its command names.
		if where := tt.op.Where(); !strings.Contains(tt.script, " "+where+" ") && where != "lab-pod2" {
			t.Errorf("%T.Where() = %q, not a namespace its script names", tt.op, where)
		}
		if got := d.Script(); got != tt.script {
			t.Errorf("%T script:\n got: %q\nwant: %q", tt.op, got, tt.script)
		}
		if got := d.String(); got != tt.message {
			t.Errorf("%T message:\n got: %s\nwant: %s", tt.op, got, tt.message)
		}
	}
}

// The drop rule's words: an address match implies IPv4; without one the
// rule says so; a single address is written bare, as nft lists it.
func TestDropRuleMatchWords(t *testing.T) {
	tests := []struct {
		rule AddDropRule
		want string
	}{
		{AddDropRule{}, "meta nfproto ipv4"},
		{AddDropRule{Protocol: "icmp"}, "meta nfproto ipv4 ip protocol icmp"},
		{AddDropRule{Protocol: "udp", Port: 8472}, "meta nfproto ipv4 udp dport 8472"},
		{AddDropRule{Src: netip.MustParsePrefix("10.0.0.1/32"), Dst: netip.MustParsePrefix("10.1.0.0/16")}, "ip saddr 10.0.0.1 ip daddr 10.1.0.0/16"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.rule.MatchWords(), " "); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.rule, got, tt.want)
		}
	}
}

// The fault script is shell: bash parses it without running it.
func TestWriteOpsIsShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("needs bash")
	}
	var b strings.Builder
	err = WriteOps(&b, "Faults", []Op{
		AddDropRule{Namespace: "l-n", Hook: HookInput},
		SetSysctl{Namespace: "l-n", Settings: []Sysctl{{"net.ipv4.ip_forward", "0"}}},
		StopContainer{Namespace: "l-p", Lab: "l", Pod: "p", Container: "c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "\n# Faults\n") {
		t.Errorf("no title: %q", b.String())
	}
	if out, err := exec.Command(bash, "-n", "-c", b.String()).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v: %s\n%s", err, out, b.String())
	}
}
