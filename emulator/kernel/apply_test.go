package kernel_test

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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

// The applier checks every operation's namespace once, whatever its kind,
// and words a failure as the operation's description; either way nothing
// is left behind.
func TestApplyFailures(t *testing.T) {
	nstest.NeedRoot(t)
	tests := []struct {
		name string
		op   func(ns string) plan.Op
		want func(ns string) string
	}{
		{"planned elsewhere",
			func(string) plan.Op { return plan.SetLinkUp{Namespace: "elsewhere", Device: "lo"} },
			func(ns string) string {
				return `ip -n "elsewhere" link set "lo" up: planned from namespace "elsewhere", performed from "` + ns + `"`
			}},
		{"a veth is performed from its peer's namespace",
			func(string) plan.Op {
				return plan.AddVeth{Namespace: "a", Name: "x", PeerNamespace: "b", PeerName: "y", MTU: 1500}
			},
			func(ns string) string { return `planned from namespace "b", performed from "` + ns + `"` }},
		{"refused by the kernel",
			func(ns string) plan.Op {
				return plan.AddAddress{Namespace: ns, Device: "nope", Address: netip.MustParsePrefix("10.0.0.1/24")}
			},
			func(ns string) string {
				return `ip -n "` + ns + `" addr add 10.0.0.1/24 dev "nope": find device "nope": `
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owner := netns.Ownership{Dir: t.TempDir(), Tag: netns.StateTag(t.TempDir())}
			ns := nstest.Unique(prefix)
			p := onePlan("lab", ns)
			u := &p.Stages[0].Units[0]
			u.Ops = append(u.Ops, tt.op(ns))
			_, err := kernel.Apply(context.Background(), p, kernel.Options{Owner: owner, LabID: "x"})
			if err == nil || !strings.Contains(err.Error(), tt.want(ns)) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tt.want(ns))
			}
			if _, err := os.Lstat(netns.Path(ns)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("namespace %q left behind: %v", ns, err)
			}
			if recs, _ := owner.List(); len(recs) != 0 {
				t.Errorf("ownership records left: %v", recs)
			}
		})
	}
}

// An Across operation of a unit is performed in its own namespace (a
// sysctl there), and the unit's later operations again in the unit's:
// the thread went there and came back. A failure inside is worded as the
// inner operation's description, and an inner operation planned from
// elsewhere is refused.
func TestAcross(t *testing.T) {
	nstest.NeedRoot(t)
	owner := netns.Ownership{Dir: t.TempDir(), Tag: netns.StateTag(t.TempDir())}
	node, pod := nstest.Unique(prefix), nstest.Unique(prefix)
	build := func(across plan.Op) *plan.Plan {
		p := onePlan("lab", node)
		p.Namespaces = append(p.Namespaces, plan.Namespace{Name: pod, Role: plan.RolePod, Object: "p"})
		p.Stages = append(p.Stages, plan.Stage{Name: "pods", Units: []plan.Unit{{Namespace: pod, Ops: []plan.Op{
			plan.AddNamespace{Name: pod},
			across,
			plan.SetSysctl{Namespace: pod, Settings: []plan.Sysctl{{Key: "net.ipv4.ip_default_ttl", Value: "33"}}},
		}}}})
		return p
	}
	ok := plan.Across{From: pod, Namespace: node, Ops: []plan.Op{
		plan.SetSysctl{Namespace: node, Settings: []plan.Sysctl{{Key: "net.ipv4.ip_default_ttl", Value: "77"}}},
	}}
	if _, err := kernel.Apply(context.Background(), build(ok), kernel.Options{Owner: owner, LabID: "x"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		recs, _ := owner.List()
		kernel.DeleteNamespaces(owner, recs)
	})
	for ns, want := range map[string]string{node: "77", pod: "33"} {
		var got []byte
		err := netns.Do(netns.Path(ns), func() (err error) {
			got, err = os.ReadFile("/proc/sys/net/ipv4/ip_default_ttl")
			return err
		})
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s: ip_default_ttl = %q, %v; want %s", ns, got, err, want)
		}
	}

	for _, tt := range []struct {
		name string
		ops  func(node, pod string) []plan.Op
		want func(node, pod string) string
	}{
		{"refused inside",
			func(node, _ string) []plan.Op {
				return []plan.Op{plan.AddRoute{Namespace: node, Dst: netip.MustParsePrefix("10.9.0.0/24"), Device: "nope"}}
			},
			func(node, _ string) string {
				return `ip -n "` + node + `" route add 10.9.0.0/24 dev "nope": find device "nope"`
			}},
		{"inner op planned elsewhere",
			func(_, pod string) []plan.Op { return []plan.Op{plan.SetLinkUp{Namespace: pod, Device: "lo"}} },
			func(node, pod string) string {
				return `planned from namespace "` + pod + `", performed from "` + node + `"`
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			owner := netns.Ownership{Dir: t.TempDir(), Tag: netns.StateTag(t.TempDir())}
			node, pod := nstest.Unique(prefix), nstest.Unique(prefix)
			p := onePlan("lab2", node)
			p.Namespaces = append(p.Namespaces, plan.Namespace{Name: pod, Role: plan.RolePod, Object: "p"})
			p.Stages = append(p.Stages, plan.Stage{Name: "pods", Units: []plan.Unit{{Namespace: pod, Ops: []plan.Op{
				plan.AddNamespace{Name: pod}, plan.Across{From: pod, Namespace: node, Ops: tt.ops(node, pod)}}}}})
			_, err := kernel.Apply(context.Background(), p, kernel.Options{Owner: owner, LabID: "y"})
			if want := tt.want(node, pod); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, want)
			}
			for _, ns := range []string{node, pod} {
				if _, err := os.Lstat(netns.Path(ns)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("namespace %q left behind: %v", ns, err)
				}
			}
		})
	}
}
