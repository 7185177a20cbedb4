package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostSnapshot captures the configuration of the host's root network
// namespace that a lab must never change: links, addresses, routes (all
// tables, both families), the nftables ruleset and the forwarding sysctls.
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
	lines = append(lines, hostRuleset(t)...)
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
	// The tutorial's lab: a router, an external host, masquerade rules
	// programmed into every node.
	tut, tutName := copyTopology(t, "tutorial.yaml", "thost")
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", "--all")
		assertNoNamespaces(t, twoName)
		assertNoNamespaces(t, threeName)
		assertNoNamespaces(t, tutName)
	})
	for _, args := range [][]string{
		{"up", two}, {"up", three}, {"up", tut},
		{"exec", "pod1a", "--", "ip", "route"},
		{"exec", "--lab", tutName, "blueapp1", "-c", "client", "--", "curl", "-s", "http://10.130.0.10/"}, // masqueraded by node01
		{"status"},
		{"down", twoName}, {"down", threeName}, {"down", tutName},
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

// hostRuleset lists the host's nftables tables and chains with their rule
// counts, read over netlink (no nft binary needed).
func hostRuleset(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tb := range tables {
		lines = append(lines, fmt.Sprintf("nft table %d %s", tb.Family, tb.Name))
		chains, err := c.ListChainsOfTableFamily(tb.Family)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chains {
			if ch.Table.Name != tb.Name {
				continue
			}
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("nft chain %d %s %s rules=%d", tb.Family, tb.Name, ch.Name, len(rules)))
		}
	}
	return lines
}
