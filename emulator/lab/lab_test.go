package lab

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

func generated(t *testing.T, nodes, pods int) *spec.Topology {
	t.Helper()
	var b strings.Builder
	b.WriteString("name: gen\nnodes:\n")
	for n := 0; n < nodes; n++ {
		fmt.Fprintf(&b, "  - name: n%d\n    pods:\n", n)
		for p := n; p < pods; p += nodes {
			fmt.Fprintf(&b, "      - name: p%d\n", p)
		}
	}
	topo, err := spec.Parse("gen.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func TestNeighbourAdvice(t *testing.T) {
	tests := []struct {
		nodes, pods, limit int
		warn               bool
	}{
		{2, 3, 1024, false},
		{10, 100, 1024, false},
		{50, 1000, 1024, true},
		{50, 1000, 8192, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d limit %d", tt.nodes, tt.pods, tt.limit), func(t *testing.T) {
			msg := neighbourAdvice(generated(t, tt.nodes, tt.pods), tt.limit)
			if (msg != "") != tt.warn {
				t.Fatalf("advice = %q, want warning %v", msg, tt.warn)
			}
			if tt.warn && !strings.Contains(msg, "sysctl -w net.ipv4.neigh.default.gc_thresh3=") {
				t.Errorf("advice does not name the host sysctl to raise: %q", msg)
			}
		})
	}
}

func TestDigestIgnoresFileName(t *testing.T) {
	a := generated(t, 2, 3)
	b := generated(t, 2, 3)
	b.File = "elsewhere.yaml"
	if Digest(a) != Digest(b) {
		t.Error("same topology from another file has another digest")
	}
	b.Network.MTU = 1400
	if Digest(a) == Digest(b) {
		t.Error("a changed MTU keeps the digest")
	}
}

// A record names a node's hostname holder by node name, which must be one.
func TestDecodeRecordHostnames(t *testing.T) {
	for _, tt := range []struct {
		node string
		ok   bool
	}{{"node1", true}, {"../x", false}, {"a/b", false}} {
		rec := Record{
			Version: RecordVersion, Name: "gen", ID: "1", Topology: generated(t, 1, 1),
			Namespaces: []plan.Namespace{{Name: plan.NamespaceName("gen", "n0"), Role: plan.RoleNode, Object: "n0"}},
			Hostnames:  map[string]*Process{tt.node: {PID: 1, StartTime: 1}},
		}
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeRecord("gen", data); (err == nil) != tt.ok {
			t.Errorf("hostname holder of node %q: %v, want accepted %v", tt.node, err, tt.ok)
		}
	}
}
