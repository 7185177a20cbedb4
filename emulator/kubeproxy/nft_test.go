package kubeproxy

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// Test namespaces are named kubeproxytest-<pid>-<random>-<role>.
var nsPrefix = nstest.Prefix("kubeproxy")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// hostRuleset is `nft list ruleset` in this process's own namespace, or ""
// without nft or root.
func hostRuleset() string {
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// needNft skips without nft (apt: nftables), or fails with LABCTL_REQUIRE_ROOT=1.
func needNft(t testing.TB) {
	t.Helper()
	nstest.NeedRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
			t.Fatal("needs nft (apt-get install nftables) to cross-check the rules (LABCTL_REQUIRE_ROOT=1)")
		}
		t.Skip("needs nft (apt-get install nftables) to cross-check the rules")
	}
}

// nft runs nft inside the named namespace.
func nft(t *testing.T, ns string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v: %s", strings.Join(args, " "), ns, err, out)
	}
	return string(out)
}

var counterValues = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// zeroCounters makes listings taken after traffic comparable.
func zeroCounters(s string) string {
	return counterValues.ReplaceAllString(s, "counter packets 0 bytes 0")
}

// TestNetlinkAndScriptAgree programs each golden model twice, over netlink
// into one namespace and with `nft -f` of the script into another, and
// requires `nft list ruleset` to print the same in both, and to print what
// the script says, so the dry-run script shows what students will read.
func TestNetlinkAndScriptAgree(t *testing.T) {
	needNft(t)
	hostUnchanged(t)
	for _, m := range goldenModels {
		t.Run(m.name, func(t *testing.T) {
			rs, err := Rules(m.node, m.services)
			if err != nil {
				t.Fatal(err)
			}
			base := nstest.Unique(nsPrefix)
			viaNetlink, viaScript := nstest.AddNamespace(t, base+"-nl"), nstest.AddNamespace(t, base+"-nft")
			if err := Program(netns.Path(viaNetlink), rs); err != nil {
				t.Fatal(err)
			}
			nft(t, viaScript, rs.Script(), "-f", "-")
			fromNetlink := nft(t, viaNetlink, "", "list", "ruleset")
			fromScript := nft(t, viaScript, "", "list", "ruleset")
			if fromNetlink != fromScript {
				t.Errorf("nft list ruleset differs:\nafter netlink:\n%s\nafter nft -f:\n%s", fromNetlink, fromScript)
			}
			if want := rs.Listing(); fromNetlink != want {
				t.Errorf("nft list ruleset is not the script's tables:\ngot:\n%s\nwant:\n%s", fromNetlink, want)
			}
			// Idempotent: programming again gives the same ruleset, and so
			// does loading the script again.
			if err := Program(netns.Path(viaNetlink), rs); err != nil {
				t.Fatal(err)
			}
			nft(t, viaScript, rs.Script(), "-f", "-")
			if again := nft(t, viaNetlink, "", "list", "ruleset"); again != fromNetlink {
				t.Errorf("programming twice changed the ruleset:\n%s", again)
			}
			if again := nft(t, viaScript, "", "list", "ruleset"); again != fromScript {
				t.Errorf("loading the script twice changed the ruleset:\n%s", again)
			}
		})
	}
}

// TestFreshTableInTransactions: a namespace without our tables gets a
// large ruleset in several transactions, and ends with the same ruleset
// as one transaction gives (a namespace that has the tables), node-local
// chains and ClientIP affinity sets among them.
func TestFreshTableInTransactions(t *testing.T) {
	needNft(t)
	hostUnchanged(t)
	services := bigServices(300)
	for i := range services[:20] {
		services[i].SessionAffinity = AffinityClientIP
	}
	for i := 20; i < 40; i++ {
		services[i].Type, services[i].ExternalTrafficPolicy = NodePort, PolicyLocal
		services[i].Ports[0].NodePort = uint16(30000 + i)
	}
	rs, err := Rules(labNode(1), services)
	if err != nil {
		t.Fatal(err)
	}
	batches, err := marshal(rs.freshBatches)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) < 3 {
		t.Fatalf("a fresh table of 300 services went in %d transactions, want several", len(batches))
	}
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-split")
	if err := Program(netns.Path(ns), rs); err != nil {
		t.Fatal(err)
	}
	fresh := nft(t, ns, "", "list", "ruleset")
	if fresh != rs.Listing() {
		t.Errorf("the fresh table is not the ruleset:\n%s", fresh)
	}
	// The second time the tables exist: one transaction replaces them.
	if err := Program(netns.Path(ns), rs); err != nil {
		t.Fatal(err)
	}
	if again := nft(t, ns, "", "list", "ruleset"); again != fresh {
		t.Errorf("replacing the tables in one transaction gave another ruleset:\n%s", again)
	}
}

// TestFailedBatchLeavesNothing: when the kernel refuses a transaction of a
// fresh table, Program reports the kernel's error and removes what the
// transactions before it made.
func TestFailedBatchLeavesNothing(t *testing.T) {
	needNft(t)
	rs, err := Rules(labNode(1), bigServices(200))
	if err != nil {
		t.Fatal(err)
	}
	// A rule that jumps to a chain the table lacks fails in the kernel
	// (the builder never makes one): put it in the last chain.
	last := rs.Tables[0].Chains[len(rs.Tables[0].Chains)-1]
	last.Rules = append(last.Rules, Rule{Stmts: []stmt{verdictOf(jump)}})
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-fail")
	err = Program(netns.Path(ns), rs)
	if err == nil {
		t.Fatal("a batch the kernel must refuse was accepted")
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("the error does not say the kernel refused the batch: %v", err)
	}
	if got := nft(t, ns, "", "list", "ruleset"); got != "" {
		t.Errorf("a failed Program left rules behind (%v):\n%s", err, got)
	}
}

// A namespace without kube-proxy's table has no counters, and no error.
func TestCountersWithoutTable(t *testing.T) {
	nstest.NeedRoot(t)
	ns := nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-empty")
	if hits, err := Counters(netns.Path(ns)); err != nil || len(hits) != 0 {
		t.Errorf("Counters = %v, %v; want none", hits, err)
	}
}
