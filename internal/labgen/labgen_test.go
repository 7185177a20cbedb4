package labgen

import (
	"reflect"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
)

// Past the cap, Topology must give the nodes spec's IPAM gives below it.
func TestTopologyPastTheCapFollowsIPAM(t *testing.T) {
	parsed, err := Topology("gen", spec.MaxNodes, spec.BackendVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	extended, err := Topology("gen", spec.MaxNodes+500, spec.BackendVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	if len(extended.Nodes) != spec.MaxNodes+500 {
		t.Fatalf("%d nodes", len(extended.Nodes))
	}
	if !reflect.DeepEqual(parsed.Nodes, extended.Nodes[:spec.MaxNodes]) {
		t.Error("the extended topology's first nodes differ from the validated one's")
	}
	if !reflect.DeepEqual(parsed.Network, extended.Network) {
		t.Errorf("network %+v, want %+v", extended.Network, parsed.Network)
	}
}
