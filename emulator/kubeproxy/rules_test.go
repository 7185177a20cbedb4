package kubeproxy

import (
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labctl/labctl/internal/golden"
)

// TestScriptGolden pins the nft script of each model: it is what
// `labctl up --dry-run` prints and what a student reads on the node.
func TestScriptGolden(t *testing.T) {
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			rs, err := Rules(m.node, m.services)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", m.name+".nft"), []byte(rs.Script()))
		})
	}
}

// RulesForNodes gives each node what Rules gives it, sharing the tables of
// nodes whose rules are the same, and only theirs.
func TestRulesForNodes(t *testing.T) {
	cluster := []Service{svc1}
	local := append(slices.Clone(cluster), Service{Name: "web-local", Type: NodePort, ExternalTrafficPolicy: PolicyLocal,
		ClusterIP: netip.MustParseAddr("10.96.0.4"), Ports: []ServicePort{{Port: 80, TargetPort: 8080, NodePort: 30002,
			Endpoints: []Endpoint{{IP: podIPs["a"], NodeName: "node1"}}}}})
	masq := labNode(2)
	plain := []Node{labNode(1), labNode(2)}
	for i := range plain {
		plain[i].MasqueradeOutside = false
	}
	for _, tc := range []struct {
		name     string
		nodes    []Node
		services []Service
		shared   bool
	}{
		{"alike", plain, cluster, true},
		{"local policy", plain, local, false},
		{"masquerade", []Node{plain[0], masq}, cluster, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RulesForNodes(tc.nodes, tc.services)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range tc.nodes {
				want, err := Rules(n, tc.services)
				if err != nil {
					t.Fatal(err)
				}
				if got[i].Node != n.Name || got[i].Script() != want.Script() {
					t.Errorf("%s: not the ruleset Rules gives it:\n%s", n.Name, got[i].Script())
				}
			}
			if shared := &got[0].Tables[0] == &got[1].Tables[0]; shared != tc.shared {
				t.Errorf("tables shared: %v, want %v", shared, tc.shared)
			}
		})
	}
	bad := plain[1]
	bad.IPs = nil
	if _, err := RulesForNodes([]Node{plain[0], bad}, cluster); err == nil || !strings.Contains(err.Error(), "no IP address") {
		t.Errorf("a node without an address shared its tables: %v", err)
	}
}
