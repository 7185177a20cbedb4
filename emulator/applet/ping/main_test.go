package ping

import (
	"os/exec"
	"testing"

	"github.com/labctl/labctl/emulator/applet/internal/applettest"
	"github.com/labctl/labctl/internal/nstest"
)

var prefix = nstest.Prefix("ping")

func TestMain(m *testing.M) { applettest.Main(m, prefix, "ping", Main) }

// realPing is iputils' ping, the version Debian 12 ships.
func realPing(t *testing.T) string {
	return applettest.Real(t, "ping", "-V", "ping from iputils 20221126", "iputils-ping")
}

// route is a small routed network in namespaces of its own:
//
//	a (10.99.1.2) --- r (10.99.1.1 | 10.99.2.1, forwarding) --- b (10.99.2.2)
//
// The r-b link has MTU 1400, so echoes of more than 1372 bytes from a
// meet "fragmentation needed" at r; 10.99.2.9 is on b's link but absent
// (r answers "host unreachable" after ARP gives up); r has no route to
// 20.0.0.0/8 ("net unreachable"). r rate-limits no ICMP errors, so every
// echo that fails gets its error, as the tests expect.
type route struct{ a, r, b string }

func newRoute(t *testing.T) route {
	t.Helper()
	name := nstest.Unique(prefix)
	n := route{a: nstest.AddNamespace(t, name+"a"), r: nstest.AddNamespace(t, name+"r"), b: nstest.AddNamespace(t, name+"b")}
	for _, args := range [][]string{
		{"-n", n.a, "link", "add", "a0", "type", "veth", "peer", "name", "r0", "netns", n.r},
		{"-n", n.r, "link", "add", "r1", "mtu", "1400", "type", "veth", "peer", "name", "b0", "mtu", "1400", "netns", n.b},
		{"-n", n.a, "addr", "add", "10.99.1.2/24", "dev", "a0"},
		{"-n", n.r, "addr", "add", "10.99.1.1/24", "dev", "r0"},
		{"-n", n.r, "addr", "add", "10.99.2.1/24", "dev", "r1"},
		{"-n", n.b, "addr", "add", "10.99.2.2/24", "dev", "b0"},
		{"-n", n.a, "link", "set", "a0", "up"},
		{"-n", n.r, "link", "set", "r0", "up"},
		{"-n", n.r, "link", "set", "r1", "up"},
		{"-n", n.b, "link", "set", "b0", "up"},
		{"-n", n.a, "route", "add", "default", "via", "10.99.1.1"},
		{"-n", n.b, "route", "add", "default", "via", "10.99.2.1"},
	} {
		nstest.IP(t, args...)
	}
	for _, kv := range []string{"net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"} {
		if out, err := exec.Command("ip", "netns", "exec", n.r, "sysctl", "-qw", kv).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s in %s: %v: %s", kv, n.r, err, out)
		}
	}
	return n
}

func runIn(t *testing.T, ns, prog string, args ...string) applettest.Result {
	t.Helper()
	return applettest.Run(t, ns, prog, nil, args...)
}
