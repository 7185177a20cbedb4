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
