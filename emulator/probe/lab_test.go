package probe

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/internal/leakcheck"
)

// Test namespaces are named probetest-<pid>-<random>-<role>, so TestMain can
// tell its own leftovers from anyone else's.
var nsPrefix = fmt.Sprintf("probetest-%d-", os.Getpid())

func TestMain(m *testing.M) { leakcheck.Main(m, nsPrefix) }

// needRoot skips a test that must create namespaces, unless CI demands root.
func needRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2 (ip) to build the test lab"
	}
	if why == "" {
		return
	}
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal(why + " (LABCTL_REQUIRE_ROOT=1)")
	}
	t.Skip(why)
}

// testLab is three namespaces in a row, built only from links between them:
//
//	a 10.123.1.2 ==mtu 1400== 10.123.1.1 r 10.123.2.1 ==mtu 1300== 10.123.2.2 b
//
// r forwards; a and b route everything through it. Nothing touches the
// host's namespace and no traffic can leave the three.
type testLab struct {
	a, r, b string // namespace paths
}

var (
	addrA  = netip.MustParseAddr("10.123.1.2")
	addrRA = netip.MustParseAddr("10.123.1.1") // r, facing a
	addrRB = netip.MustParseAddr("10.123.2.1") // r, facing b
	addrB  = netip.MustParseAddr("10.123.2.2")
	silent = netip.MustParseAddr("10.123.1.99") // on a's link, but nobody has it
)

func newLab(t *testing.T) *testLab {
	t.Helper()
	needRoot(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	base := nsPrefix + hex.EncodeToString(rnd[:])
	a, r, b := base+"-a", base+"-r", base+"-b"
	for _, name := range []string{a, r, b} {
		ip(t, "netns", "add", name)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", name, err, out)
			}
		})
	}
	ip(t, "-n", a, "link", "add", "eth0", "mtu", "1400", "type", "veth", "peer", "name", "to-a", "mtu", "1400", "netns", r)
	ip(t, "-n", r, "link", "add", "to-b", "mtu", "1300", "type", "veth", "peer", "name", "eth0", "mtu", "1300", "netns", b)
	ip(t, "-n", a, "addr", "add", addrA.String()+"/24", "dev", "eth0")
	ip(t, "-n", r, "addr", "add", addrRA.String()+"/24", "dev", "to-a")
	ip(t, "-n", r, "addr", "add", addrRB.String()+"/24", "dev", "to-b")
	ip(t, "-n", b, "addr", "add", addrB.String()+"/24", "dev", "eth0")
	for ns, links := range map[string][]string{a: {"lo", "eth0"}, r: {"lo", "to-a", "to-b"}, b: {"lo", "eth0"}} {
		for _, l := range links {
			ip(t, "-n", ns, "link", "set", l, "up")
		}
	}
	ip(t, "-n", a, "route", "add", "default", "via", addrRA.String())
	ip(t, "-n", b, "route", "add", "default", "via", addrRB.String())
	// ip_forward under /proc/sys/net belongs to the namespace of the writer: r's.
	run(t, "ip", "netns", "exec", r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	return &testLab{a: kernel.NamespacePath(a), r: kernel.NamespacePath(r), b: kernel.NamespacePath(b)}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	run(t, "ip", args...)
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
