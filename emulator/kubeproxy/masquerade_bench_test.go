package kubeproxy

import (
	"testing"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// BenchmarkProgramMasquerade programs flannel's masquerade table alone
// into one node namespace, as every node of a lab gets it at up: the
// cost up pays per node for masquerading.
func BenchmarkProgramMasquerade(b *testing.B) {
	nstest.NeedRoot(b)
	ns := nstest.AddNamespace(b, nstest.Unique(nsPrefix)+"-masq")
	rs, err := Masquerade(labNode(1))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Program(netns.Path(ns), rs); err != nil {
			b.Fatal(err)
		}
	}
}
