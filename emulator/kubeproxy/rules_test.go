package kubeproxy

import (
	"path/filepath"
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
