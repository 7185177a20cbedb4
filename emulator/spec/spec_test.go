package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestShippedTopologies(t *testing.T) {
	tests := []struct {
		file string
		want Topology
	}{
		{"../../topologies/two-node.yaml", Topology{
			Name: "two-node",
			Network: Network{
				Underlay:     prefix("10.30.45.0/24"),
				ClusterCIDR:  prefix("192.168.0.0/16"),
				ServiceCIDR:  prefix("10.96.0.0/12"),
				NodeMaskSize: 24,
				Backend:      BackendHostGW,
				MTU:          1500,
			},
			Nodes: []Node{
				{Name: "node1", IP: addr("10.30.45.100"), PodSubnet: prefix("192.168.1.0/24"), Gateway: addr("192.168.1.1"), Bridge: "br0",
					Pods: []Pod{
						{Name: "pod1a", Node: "node1", IP: addr("192.168.1.10"), Containers: textbookContainers},
						{Name: "pod1b", Node: "node1", IP: addr("192.168.1.20"), Containers: textbookContainers},
					}},
				{Name: "node2", IP: addr("10.30.45.200"), PodSubnet: prefix("192.168.2.0/24"), Gateway: addr("192.168.2.1"), Bridge: "br0",
					Pods: []Pod{
						{Name: "pod2", Node: "node2", IP: addr("192.168.2.20"), Containers: textbookContainers},
					}},
			},
		}},
		{"../../topologies/three-node.yaml", Topology{
			Name: "three-node",
			Network: Network{
				Underlay:     prefix("192.168.64.0/24"),
				ClusterCIDR:  prefix("10.200.0.0/16"),
				ServiceCIDR:  prefix("10.96.0.0/16"),
				NodeMaskSize: 24,
				Backend:      BackendHostGW,
				MTU:          1500,
			},
			Nodes: []Node{
				{Name: "node-0", IP: addr("192.168.64.4"), PodSubnet: prefix("10.200.0.0/24"), Gateway: addr("10.200.0.1"), Bridge: "br0",
					Pods: []Pod{
						{Name: "A0", Node: "node-0", IP: addr("10.200.0.2")},
						{Name: "A1", Node: "node-0", IP: addr("10.200.0.3")},
					}},
				{Name: "node-1", IP: addr("192.168.64.5"), PodSubnet: prefix("10.200.1.0/24"), Gateway: addr("10.200.1.1"), Bridge: "br1",
					Pods: []Pod{
						{Name: "B", Node: "node-1", IP: addr("10.200.1.2")},
					}},
				{Name: "node-2", IP: addr("192.168.64.6"), PodSubnet: prefix("10.200.2.0/24"), Gateway: addr("10.200.2.1"), Bridge: "br2",
					Pods: []Pod{
						{Name: "C", Node: "node-2", IP: addr("10.200.2.2")},
					}},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Name, func(t *testing.T) {
			got, err := Load(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.File = tt.file
			// Neither file sets tunnel options: flannel's and Calico's defaults.
			tt.want.Network.VXLAN = VXLANOptions{Mode: VXLANRouted, Device: "flannel.1", VNI: 1, Port: 8472, Flooding: FloodMulticast}
			tt.want.Network.IPIP = IPIPOptions{Device: "tunl0", Datapath: DatapathAuto}
			// Bridge style with flannel's hairpin mode and ip-masq, no IPv6.
			tt.want.Network.CNI, tt.want.Network.HairpinMode, tt.want.Network.Masquerade = CNIBridge, true, true
			for i := range tt.want.Nodes {
				tt.want.Nodes[i].HairpinMode = true
				for j := range tt.want.Nodes[i].Pods {
					tt.want.Nodes[i].Pods[j].RestartPolicy = RestartAlways
				}
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Load(%s) =\n%s\nwant\n%s", tt.file, dump(got), dump(&tt.want))
			}
			checkInvariants(t, got)
		})
	}
}

func TestTopologyLookups(t *testing.T) {
	topo, err := Load("../../topologies/two-node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range topo.Pods() {
		names = append(names, p.Name+"@"+p.Node)
	}
	if got, want := strings.Join(names, " "), "pod1a@node1 pod1b@node1 pod2@node2"; got != want {
		t.Errorf("Pods() = %s, want %s", got, want)
	}
	if n, ok := topo.Node("node2"); !ok || n.IP != addr("10.30.45.200") {
		t.Errorf(`Node("node2") = %+v, %v`, n, ok)
	}
	if _, ok := topo.Node("pod1a"); ok {
		t.Error(`Node("pod1a") found a pod`)
	}
	if p, ok := topo.Pod("pod1b"); !ok || p.IP != addr("192.168.1.20") || p.Node != "node1" {
		t.Errorf(`Pod("pod1b") = %+v, %v`, p, ok)
	}
	if _, ok := topo.Pod("node1"); ok {
		t.Error(`Pod("node1") found a node`)
	}
	if got := topo.PodMTU(); got != 1500 {
		t.Errorf("PodMTU() = %d, want 1500", got)
	}
}

// TestIPAM checks the rules of automatic addressing one at a time.
func TestIPAM(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want map[string]string // "node.ip", "node.subnet", "node.gateway", "pod" -> value
	}{
		{"node IPs start at .2 of the underlay", `
network: {underlay: 10.0.0.0/24}
nodes: [{name: a}, {name: b}]`,
			map[string]string{"a.ip": "10.0.0.2", "b.ip": "10.0.0.3"}},
		{"node IPs skip explicit ones, also later in the file", `
network: {underlay: 10.0.0.0/24}
nodes: [{name: a}, {name: b, ip: 10.0.0.2}, {name: c}, {name: d, ip: 10.0.0.4}]`,
			map[string]string{"a.ip": "10.0.0.3", "b.ip": "10.0.0.2", "c.ip": "10.0.0.5", "d.ip": "10.0.0.4"}},
		{"node IPs may be explicit at .1", `
network: {underlay: 10.0.0.0/24}
nodes: [{name: a, ip: 10.0.0.1}, {name: b}]`,
			map[string]string{"a.ip": "10.0.0.1", "b.ip": "10.0.0.2"}},
		{"the last node IP before the broadcast address", `
network: {underlay: 10.0.0.0/30}
nodes: [{name: a}]`,
			map[string]string{"a.ip": "10.0.0.2"}},
		{"subnets are carved in order from the cluster CIDR", `
network: {clusterCIDR: 10.1.0.0/16, nodeCIDRMaskSize: 20}
nodes: [{name: a}, {name: b}, {name: c}]`,
			map[string]string{"a.subnet": "10.1.0.0/20", "b.subnet": "10.1.16.0/20", "c.subnet": "10.1.32.0/20"}},
		{"subnets skip explicit ones that come later", `
network: {clusterCIDR: 10.1.0.0/16}
nodes: [{name: a}, {name: b}, {name: c, podCIDR: 10.1.0.0/24}, {name: d, podCIDR: 10.1.2.0/23}]`,
			map[string]string{"a.subnet": "10.1.1.0/24", "b.subnet": "10.1.4.0/24", "c.subnet": "10.1.0.0/24", "d.subnet": "10.1.2.0/23"}},
		{"automatic subnets step over a smaller explicit one", `
network: {clusterCIDR: 10.1.0.0/16}
nodes: [{name: a}, {name: b, podCIDR: 10.1.0.128/25}]`,
			map[string]string{"a.subnet": "10.1.1.0/24", "b.subnet": "10.1.0.128/25"}},
		{"automatic subnets jump over a huge explicit one", `
network: {clusterCIDR: 100.64.0.0/10, nodeCIDRMaskSize: 30}
nodes: [{name: a, podCIDR: 100.64.0.0/11}, {name: b}, {name: c, podCIDR: 100.96.0.4/30}, {name: d}]`,
			map[string]string{"b.subnet": "100.96.0.0/30", "d.subnet": "100.96.0.8/30"}},
		{"a subnet may fill the whole cluster CIDR", `
network: {clusterCIDR: 10.1.0.0/24}
nodes: [{name: a}]`,
			map[string]string{"a.subnet": "10.1.0.0/24"}},
		{"the gateway is .1 of each subnet", `
network: {clusterCIDR: 10.1.0.0/16, nodeCIDRMaskSize: 26}
nodes: [{name: a}, {name: b}, {name: c, podCIDR: 10.1.9.0/24}]`,
			map[string]string{"a.gateway": "10.1.0.1", "b.gateway": "10.1.0.65", "c.gateway": "10.1.9.1"}},
		{"pod IPs start at .2", `
nodes: [{name: a, podCIDR: 10.244.7.0/24, pods: [{name: p}, {name: q}]}]`,
			map[string]string{"p": "10.244.7.2", "q": "10.244.7.3"}},
		{"pod IPs skip explicit ones, also later in the node", `
nodes: [{name: a, podCIDR: 10.244.7.0/24, pods: [{name: p}, {name: q, ip: 10.244.7.3}, {name: r}, {name: s, ip: 10.244.7.2}]}]`,
			map[string]string{"p": "10.244.7.4", "q": "10.244.7.3", "r": "10.244.7.5", "s": "10.244.7.2"}},
		{"pod IPs are per node", `
nodes: [{name: a, pods: [{name: p}]}, {name: b, pods: [{name: q}]}]`,
			map[string]string{"p": "10.244.0.2", "q": "10.244.1.2"}},
		{"a full subnet", `
nodes: [{name: a, podCIDR: 10.244.0.0/30, pods: [{name: p}]}]`,
			map[string]string{"p": "10.244.0.2"}},
		{"the last pod IP before the broadcast address", `
nodes: [{name: a, podCIDR: 10.244.0.0/29, pods: [{name: p, ip: 10.244.0.6}, {name: q}]}]`,
			map[string]string{"p": "10.244.0.6", "q": "10.244.0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := Parse("ipam.yaml", []byte("name: ipam\n"+strings.TrimPrefix(tt.yaml, "\n")))
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, topo)
			got := map[string]string{}
			for _, n := range topo.Nodes {
				got[n.Name+".ip"] = n.IP.String()
				got[n.Name+".subnet"] = n.PodSubnet.String()
				got[n.Name+".gateway"] = n.Gateway.String()
				for _, p := range n.Pods {
					got[p.Name] = p.IP.String()
				}
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %s, want %s", k, got[k], want)
				}
			}
		})
	}
}

// generated returns a topology of nodes x pods with every address automatic.
func generated(nodes, pods int) []byte {
	var b strings.Builder
	b.WriteString("name: big\nnetwork:\n  underlay: 10.0.0.0/16\n  clusterCIDR: 10.128.0.0/9\n  nodeCIDRMaskSize: 24\nnodes:\n")
	for i := range nodes {
		fmt.Fprintf(&b, "  - name: node%d\n    pods:\n", i)
		for j := range pods {
			fmt.Fprintf(&b, "      - name: pod%d-%d\n", i, j)
		}
	}
	return []byte(b.String())
}

func TestLargeTopology(t *testing.T) {
	data := generated(50, 20)
	topo, err := Parse("big.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, topo)
	if len(topo.Nodes) != 50 || len(topo.Pods()) != 1000 {
		t.Fatalf("got %d nodes and %d pods, want 50 and 1000", len(topo.Nodes), len(topo.Pods()))
	}
	last := topo.Nodes[49]
	if last.IP != addr("10.0.0.51") || last.PodSubnet != prefix("10.128.49.0/24") || last.Pods[19].IP != addr("10.128.49.21") {
		t.Errorf("last node = %s %s, last pod %s", last.IP, last.PodSubnet, last.Pods[19].IP)
	}
	again, err := Parse("big.yaml", data)
	if err != nil || !reflect.DeepEqual(topo, again) {
		t.Error("parsing the same file twice gave different models")
	}
}

func BenchmarkParseLarge(b *testing.B) {
	data := generated(50, 20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAllProblemsAtOnce checks that independent mistakes all show up in one
// report, in file order, and that Problem carries each part separately.
func TestAllProblemsAtOnce(t *testing.T) {
	const file = "testdata/invalid/many-mistakes.yaml"
	_, err := Load(file)
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("Load = %v, want *InvalidError", err)
	}
	checkProblems(t, file, inv.Problems)
	wantPaths := []string{
		"name", "network.clusterCIDR", "network.serviceCIDR", "network.backend", "network.mtu", "network.colour",
		"nodes[0].ip", "nodes[0].bridge", "nodes[0].pods[0].ip", "nodes[0].pods[1].name", "nodes[0].pods[1].ip",
		"nodes[1].name", "nodes[1].ip", "nodes[1].labels", "nodes[1].pods[0].name", "nodes[1].pods[1].nmae", "services",
	}
	var gotPaths []string
	for _, p := range inv.Problems {
		gotPaths = append(gotPaths, p.Path)
	}
	if !reflect.DeepEqual(gotPaths, wantPaths) {
		t.Errorf("problem paths\n got %q\nwant %q", gotPaths, wantPaths)
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(wantPaths) {
		t.Errorf("Error() has %d lines, want one per problem (%d)", len(lines), len(wantPaths))
	}
	p := inv.Problems[8]
	want := Problem{File: file, Line: 16, Col: 9, Path: "nodes[0].pods[0].ip",
		Msg: "10.0.1.1 is the gateway (bridge) address of node1's pod subnet 10.0.1.0/24"}
	if p != want {
		t.Errorf("problem 8 = %#v, want %#v", p, want)
	}
}

func TestParseWithoutFileName(t *testing.T) {
	_, err := Parse("", []byte("nodes: [{name: a}]\n"))
	if err == nil || err.Error() != "1:1: name: the lab needs a name: add `name:`" {
		t.Errorf("Parse without a file name or lab name: %v", err)
	}
	topo, err := Parse("", []byte("name: mem\nnodes: [{name: a}]\n"))
	if err != nil || topo.Name != "mem" || topo.File != "" {
		t.Errorf("Parse from memory = %+v, %v", topo, err)
	}
}

func TestLabNameFromFileName(t *testing.T) {
	data := []byte("nodes: [{name: a}]\n")
	for file, want := range map[string]string{
		"lab.yaml":                 "lab",
		"dir/sub/my-lab.yml":       "my-lab",
		"/abs/Lab_2":               "Lab_2",
		"topologies/x.y.yaml":      "",         // "x.y" is not a name
		"topologies/.yaml":         "",         // empty
		"topologies/underlay.yaml": "underlay", // reserved for nodes and pods only
	} {
		topo, err := Parse(file, data)
		switch {
		case want == "" && err == nil:
			t.Errorf("Parse(%q) named the lab %q, want an error", file, topo.Name)
		case want != "" && err != nil:
			t.Errorf("Parse(%q): %v", file, err)
		case want != "" && topo.Name != want:
			t.Errorf("Parse(%q) named the lab %q, want %q", file, topo.Name, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yaml")
	var inv *InvalidError
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &inv) {
		t.Errorf("Load(missing) = %v, want a wrapped fs.ErrNotExist that is not an InvalidError", err)
	}
}

// textbookContainers are the sidecars every pod of two-node.yaml runs.
var textbookContainers = []Container{
	{Name: "curl-client", Builtin: BuiltinClient},
	{Name: "web-server", Builtin: BuiltinWebServer, Ports: []Port{{ContainerPort: 80, Protocol: "TCP"}}},
}

// TestDecodeInline decodes a topology written inside another document, as
// a scenario will hold one: its problems point into the outer file, under
// the outer path, and problems of the outer document are not its own.
func TestDecodeInline(t *testing.T) {
	decode := func(src string) (*Topology, error) {
		d := yamldoc.NewDecoder("scenario.yaml")
		root, ok := d.Document([]byte(src), yamldoc.Format{Noun: "a scenario"})
		if !ok {
			return nil, d.Err()
		}
		var topo *Topology
		d.Mapping(root, "", yamldoc.Keys{
			"title":    func(*yaml.Node) {},
			"topology": func(v *yaml.Node) { topo = Decode(d.Within("topology"), v) },
		})
		return topo, d.Err()
	}
	const inline = "topology:\n  name: inline\n  nodes:\n    - name: n1\n      ip: %s\n    - {name: n2}\n"
	tests := []struct {
		name, src, want string
		ok              bool
	}{
		{"valid", "title: x\n" + fmt.Sprintf(inline, "172.18.0.9"), "", true},
		{"outer problem only", "titel: x\n" + fmt.Sprintf(inline, "172.18.0.9"),
			`scenario.yaml:1:1: titel: unknown key "titel" (did you mean "title"?)`, true},
		{"inner problem", "title: x\n" + fmt.Sprintf(inline, "172.18.0.300"),
			`scenario.yaml:6:7: topology.nodes[0].ip: "172.18.0.300" is not an IPv4 address`, false},
		{"inner typo", "title: x\ntopology:\n  nodes: [{name: n1, pods: [{nmae: p}]}]\n  name: inline\n",
			`scenario.yaml:3:30: topology.nodes[0].pods[0].nmae: unknown key "nmae" (did you mean "name"?)`, false},
		{"not a mapping", "topology: [a]\n", "scenario.yaml:1:1: topology: must be a mapping, not a list", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo, err := decode(tt.src)
			if got := fmt.Sprint(err); tt.want != "" && got != tt.want || tt.want == "" && err != nil {
				t.Errorf("problems:\n%v\nwant\n%s", err, tt.want)
			}
			if (topo != nil) != tt.ok {
				t.Fatalf("Decode = %v, want a topology: %v", topo, tt.ok)
			}
			if topo == nil {
				return
			}
			// The same topology as a file of its own: the same model.
			alone, err := Parse("scenario.yaml", []byte("name: inline\nnodes:\n  - name: n1\n    ip: 172.18.0.9\n  - {name: n2}\n"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(topo, alone) {
				t.Errorf("inline topology\n%s\ndiffers from the same topology alone\n%s", dump(topo), dump(alone))
			}
		})
	}
}

// A renamed topology is the same lab under another name; the original is
// untouched, and a name that cannot be a lab's is refused.
func TestRenamed(t *testing.T) {
	orig, err := Load("../../topologies/two-node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := orig.Renamed("alice")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "alice" || orig.Name != "two-node" || len(c.Nodes) != len(orig.Nodes) || c.Nodes[0].IP != orig.Nodes[0].IP {
		t.Errorf("Renamed = %q (nodes %v), original %q", c.Name, c.Nodes[0].IP, orig.Name)
	}
	for _, bad := range []string{"", "../x", "tasks", "a b"} {
		if _, err := orig.Renamed(bad); err == nil {
			t.Errorf("Renamed(%q) accepted", bad)
		}
	}
}
