package plan

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/golden"
)

func compileFile(t *testing.T, path string) *Plan {
	t.Helper()
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	p, err := Compile(topo)
	if err != nil {
		t.Fatalf("compile %s: %v", path, err)
	}
	return p
}

// The --dry-run script is the product users read, so it is pinned by golden
// files; it also lists every operation of the plan in order.
func TestScriptGolden(t *testing.T) {
	for _, name := range []string{"two-node", "three-node", "two-node-vxlan", "two-node-ipip", "three-node-vxlan-l2", "three-node-mixed",
		"calico-ipip", "calico-vxlan", "calico-no-encap", "tutorial-host-gw", "tutorial", "three-node-service"} {
		t.Run(name, func(t *testing.T) {
			p := compileFile(t, filepath.Join("..", "..", "topologies", name+".yaml"))
			var buf bytes.Buffer
			if err := p.WriteScript(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".sh.golden"), buf.Bytes())
		})
	}
}

// The kernel package relies on these structural rules to run units in
// parallel: each namespace is created by the first op of its own unit, in a
// stage before any stage that refers to it.
func TestPlanStructure(t *testing.T) {
	for _, name := range []string{"three-node", "calico-ipip", "tutorial", "three-node-service"} {
		t.Run(name, func(t *testing.T) { checkPlanStructure(t, name) })
	}
}

func checkPlanStructure(t *testing.T, name string) {
	p := compileFile(t, filepath.Join("..", "..", "topologies", name+".yaml"))
	topo, err := spec.Load(filepath.Join("..", "..", "topologies", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := 1 + len(topo.Nodes) + len(topo.Pods()) + len(topo.Externals)
	if topo.Router != nil {
		want++
	}
	if len(p.Namespaces) != want {
		t.Fatalf("namespaces = %d, want %d", len(p.Namespaces), want)
	}
	known := map[string]bool{}
	for _, s := range p.Stages {
		createdHere := map[string]bool{}
		for _, u := range s.Units {
			add, ok := u.Ops[0].(AddNamespace)
			if !ok || add.Name != u.Namespace {
				t.Errorf("unit %q does not start by creating its namespace", u.Namespace)
			}
			createdHere[u.Namespace] = true
			for _, op := range u.Ops[1:] {
				if v, ok := op.(AddVeth); ok {
					other := v.Namespace
					if other == u.Namespace {
						other = v.PeerNamespace
					}
					if !known[other] {
						t.Errorf("unit %q: veth %q refers to namespace %q not created in an earlier stage", u.Namespace, v.Name, other)
					}
				}
				if a, ok := op.(Across); ok && !known[a.Namespace] {
					t.Errorf("unit %q reaches namespace %q, not created in an earlier stage", u.Namespace, a.Namespace)
				}
			}
		}
		for ns := range createdHere {
			known[ns] = true
		}
	}
	for _, ns := range p.Namespaces {
		if !known[ns.Name] {
			t.Errorf("namespace %q is listed but never created", ns.Name)
		}
	}
}

func TestHostGWRoutes(t *testing.T) {
	p := compileFile(t, filepath.Join("..", "..", "topologies", "three-node.yaml"))
	routes := map[string][]string{}
	for _, op := range p.Ops() {
		if r, ok := op.(AddRoute); ok && r.Dst.IsValid() {
			routes[r.Namespace] = append(routes[r.Namespace], r.Dst.String()+" via "+r.Via.String())
		}
	}
	want := map[string][]string{
		"three-node-node-0": {"10.200.1.0/24 via 192.168.64.5", "10.200.2.0/24 via 192.168.64.6"},
		"three-node-node-1": {"10.200.0.0/24 via 192.168.64.4", "10.200.2.0/24 via 192.168.64.6"},
		"three-node-node-2": {"10.200.0.0/24 via 192.168.64.4", "10.200.1.0/24 via 192.168.64.5"},
	}
	for ns, w := range want {
		if strings.Join(routes[ns], ",") != strings.Join(w, ",") {
			t.Errorf("%s routes = %v, want %v", ns, routes[ns], w)
		}
	}
}

func TestVethName(t *testing.T) {
	tests := []struct {
		object, want string
	}{
		{"pod1a", "veth-pod1a"},
		{"node1", "veth-node1"},
		{"abcdefghij", "veth-abcdefghij"}, // exactly 15 bytes
		{"abcdefghijk", "veth"},           // hashed: prefix checked below
	}
	for _, tt := range tests {
		got := VethName(tt.object)
		if len(got) > 15 {
			t.Errorf("VethName(%q) = %q is longer than 15 bytes", tt.object, got)
		}
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("VethName(%q) = %q, want prefix %q", tt.object, got, tt.want)
		}
	}
	if VethName("a-very-long-pod-name-1") == VethName("a-very-long-pod-name-2") {
		t.Error("hashed veth names collide for different pods")
	}
	if first, again := VethName("a-very-long-pod-name-1"), VethName("a-very-long-pod-name-1"); first != again {
		t.Error("VethName is not deterministic")
	}
}
