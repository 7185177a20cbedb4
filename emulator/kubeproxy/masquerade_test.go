package kubeproxy

import (
	"strings"
	"testing"
)

// Masquerade is flannel's table of Rules alone, whatever the node says of
// masquerading, and renders as such; a node it cannot describe is refused
// as Rules refuses it.
func TestMasqueradeIsFlannelsTableAlone(t *testing.T) {
	node := labNode(1)
	full, err := Rules(node, nil)
	if err != nil {
		t.Fatal(err)
	}
	node.MasqueradeOutside = false
	rs, err := Masquerade(node)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Tables) != 1 || rs.Tables[0].Name != FlannelTable || len(rs.Absent) != 0 {
		t.Fatalf("Masquerade's tables: %+v, absent %v", rs.Tables, rs.Absent)
	}
	if got, want := rs.Tables[0].listing(), full.Tables[1].listing(); got != want {
		t.Errorf("Masquerade's table:\n%s\nRules' flannel table:\n%s", got, want)
	}
	script := rs.Script()
	if !strings.HasPrefix(script, `# flannel's masquerade rules (ip-masq) of node "node1"`) || strings.Contains(script, KubeProxyTable) {
		t.Errorf("Masquerade's script:\n%s", script)
	}
	node.IPs = nil
	if _, err := Masquerade(node); err == nil || !strings.Contains(err.Error(), "has no IP address") {
		t.Errorf("a node without an address: %v", err)
	}
}
