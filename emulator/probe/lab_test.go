package probe

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// Test namespaces are named probetest-<pid>-<random>-<role>, so TestMain can
// tell its own leftovers from anyone else's.
var nsPrefix = nstest.Prefix("probe")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

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
	nstest.NeedRoot(t)
	base := nstest.Unique(nsPrefix)
	a, r, b := base+"-a", base+"-r", base+"-b"
	for _, name := range []string{a, r, b} {
		nstest.AddNamespace(t, name)
	}
	nstest.IP(t, "-n", a, "link", "add", "eth0", "mtu", "1400", "type", "veth", "peer", "name", "to-a", "mtu", "1400", "netns", r)
	nstest.IP(t, "-n", r, "link", "add", "to-b", "mtu", "1300", "type", "veth", "peer", "name", "eth0", "mtu", "1300", "netns", b)
	nstest.IP(t, "-n", a, "addr", "add", addrA.String()+"/24", "dev", "eth0")
	nstest.IP(t, "-n", r, "addr", "add", addrRA.String()+"/24", "dev", "to-a")
	nstest.IP(t, "-n", r, "addr", "add", addrRB.String()+"/24", "dev", "to-b")
	nstest.IP(t, "-n", b, "addr", "add", addrB.String()+"/24", "dev", "eth0")
	for ns, links := range map[string][]string{a: {"eth0"}, r: {"to-a", "to-b"}, b: {"eth0"}} {
		for _, l := range links {
			nstest.IP(t, "-n", ns, "link", "set", l, "up")
		}
	}
	nstest.IP(t, "-n", a, "route", "add", "default", "via", addrRA.String())
	nstest.IP(t, "-n", b, "route", "add", "default", "via", addrRB.String())
	// ip_forward under /proc/sys/net belongs to the namespace of the writer: r's.
	run(t, "ip", "netns", "exec", r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	return &testLab{a: netns.Path(a), r: netns.Path(r), b: netns.Path(b)}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
