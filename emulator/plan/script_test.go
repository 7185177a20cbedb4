package plan

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

// The script's header says what it leaves out, per lab: containers, the
// userspace IPIP datapath (and which way round), labctl's records.
func TestScriptSaysWhatItLeavesOut(t *testing.T) {
	header := func(p *Plan) string {
		var b bytes.Buffer
		if err := p.WriteScript(&b); err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(b.String(), "set -euo pipefail")
		return head
	}
	twoNode := header(compileFile(t, filepath.Join("..", "..", "topologies", "two-node.yaml")))
	for _, want := range []string{"the 6 containers of 3 pods", "labctl-shim", "the marker on each namespace's lo", "`labctl down` do not know"} {
		if !strings.Contains(twoNode, want) {
			t.Errorf("two-node header lacks %q:\n%s", want, twoNode)
		}
	}
	if strings.Contains(twoNode, "IPIP") {
		t.Errorf("two-node has no IPIP, its header speaks of it:\n%s", twoNode)
	}

	topo, err := spec.Load(filepath.Join("..", "..", "topologies", "two-node-ipip.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	topo.Network.IPIP.Datapath = spec.DatapathUserspace
	p, err := Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	userspace := header(p)
	if !strings.Contains(userspace, "without it, the\n#     script's TUN device carries nothing") || strings.Contains(userspace, "needs the module") {
		t.Errorf("userspace datapath header:\n%s", userspace)
	}
	if strings.Contains(userspace, "containers") {
		t.Errorf("two-node-ipip runs no containers, its header speaks of them:\n%s", userspace)
	}
}
