package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostSnapshot captures the configuration of the host's root network
// namespace that a lab must never change: links, addresses, routes (all
// tables, both families) and the forwarding sysctls.
func hostSnapshot(t *testing.T) []string {
	t.Helper()
	var lines []string
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		lines = append(lines, fmt.Sprintf("link %d %s %s mtu=%d flags=%v master=%d", a.Index, a.Name, l.Type(), a.MTU, a.Flags, a.MasterIndex))
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("addr %s dev %s", a.IPNet, names[a.LinkIndex]))
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table=%d dst=%v gw=%v dev=%s proto=%d", r.Table, r.Dst, r.Gw, names[r.LinkIndex], r.Protocol))
	}
	for _, key := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/rp_filter"} {
		data, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			continue
		}
		lines = append(lines, "sysctl "+key+"="+strings.TrimSpace(string(data)))
	}
	sort.Strings(lines)
	return lines
}

func TestHostRootNamespaceUntouched(t *testing.T) {
	requireRoot(t)
	// Not parallel: it must see the host quiet of our own doings only.
	bin := buildLabctl(t)
	state := t.TempDir()
	before := hostSnapshot(t)

	two, twoName := copyTopology(t, "two-node.yaml", "thost")
	three, threeName := copyTopology(t, "three-node.yaml", "thost")
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", "--all")
		assertNoNamespaces(t, twoName)
		assertNoNamespaces(t, threeName)
	})
	for _, args := range [][]string{
		{"up", two}, {"up", three},
		{"exec", "pod1a", "--", "ip", "route"},
		{"status"},
		{"down", twoName}, {"down", threeName},
	} {
		if out, code := run(t, bin, append([]string{"--state-dir", state}, args...)...); code != 0 {
			t.Fatalf("labctl %v: exit %d: %s", args, code, out)
		}
	}

	after := hostSnapshot(t)
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("the host's root namespace changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}
