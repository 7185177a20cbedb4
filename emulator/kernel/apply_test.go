package kernel_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/internal/nstest"
)

var prefix = nstest.Prefix("kern")

func TestMain(m *testing.M) { nstest.Main(m, prefix) }

// onePlan creates a namespace with lo up, as the first op of every unit.
func onePlan(lab, ns string) *plan.Plan {
	return &plan.Plan{Lab: lab, Namespaces: []plan.Namespace{{Name: ns, Role: plan.RoleNode, Object: "n"}},
		Stages: []plan.Stage{{Name: "nodes", Units: []plan.Unit{{Namespace: ns, Ops: []plan.Op{
			plan.AddNamespace{Name: ns}, plan.SetLinkUp{Namespace: ns, Device: "lo"},
		}}}}}}
}

// A namespace Apply creates is claimed with its cookie and carries the
// marker; one recreated under its name is foreign and left alone; a second
// lab cannot claim a name that is held. (Package netns tests the records
// themselves.)
func TestClaimProveAndLeaveForeign(t *testing.T) {
	nstest.NeedRoot(t)
	owner := netns.Ownership{Dir: filepath.Join(t.TempDir(), "netns"), Tag: netns.StateTag(t.TempDir())}
	ns := nstest.Unique(prefix)
	t.Cleanup(func() {
		if _, err := os.Stat(netns.Path(ns)); err == nil {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	if _, err := kernel.Apply(context.Background(), onePlan("laba", ns), kernel.Options{Owner: owner, LabID: "aaaa"}); err != nil {
		t.Fatal(err)
	}
	rec, err := owner.Get(ns)
	if err != nil || rec.Lab != "laba" || rec.LabID != "aaaa" || rec.Cookie == 0 {
		t.Fatalf("record = %+v, %v", rec, err)
	}
	id, err := netns.IdentifyPath(netns.Path(ns))
	if err != nil || id.Cookie != rec.Cookie || !id.Marked || id.Marker != owner.Marker("laba", "aaaa") {
		t.Fatalf("identity = %+v, %v; want cookie %d and the marker", id, err, rec.Cookie)
	}
	if st := rec.State(); st != netns.Ours {
		t.Fatalf("state = %v, want ours", st)
	}

	_, err = kernel.Apply(context.Background(), onePlan("labb", ns), kernel.Options{Owner: owner, LabID: "bbbb"})
	if !errors.Is(err, netns.ErrClaimed) {
		t.Fatalf("a second lab's apply of a held name: %v, want ErrClaimed", err)
	}
	if again, err := owner.Get(ns); err != nil || again != rec {
		t.Fatalf("the loser's rollback changed the winner's claim: %+v, %v", again, err)
	}

	nstest.IP(t, "netns", "del", ns)
	nstest.IP(t, "netns", "add", ns)
	if st := rec.State(); st != netns.Foreign {
		t.Fatalf("state of a namespace recreated under the name = %v, want foreign", st)
	}
	left, err := kernel.DeleteNamespaces(owner, []netns.OwnedNamespace{rec})
	if err != nil || !slices.Equal(left, []string{ns}) {
		t.Fatalf("DeleteNamespaces = %v, %v; want %q left alone", left, err, ns)
	}
	if _, err := os.Stat(netns.Path(ns)); err != nil {
		t.Fatalf("the foreign namespace was deleted: %v", err)
	}
	if found, err := owner.Discover(func(n string) bool { return n == ns }); err != nil || len(found) != 0 {
		t.Fatalf("Discover found %v, %v in a namespace without a marker", found, err)
	}
}
