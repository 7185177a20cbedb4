package kernel

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/labctl/labctl/internal/nstest"
)

// InspectAll reads back, through netlink, what iproute2's own commands
// built: a flannel-style VXLAN device with its onlink route, permanent
// neighbour and self FDB entries, a Calico-style blackhole, a bridge port,
// and a route in another table.
func TestInspectAllReadsWhatIproute2Built(t *testing.T) {
	nstest.NeedRoot(t)
	if _, err := exec.LookPath("bridge"); err != nil {
		nstest.NeedRoot(t, "/usr/sbin/bridge") // skips (or fails in CI) with the reason
	}
	ns := nstest.AddNamespace(t, nstest.Unique(nstest.Prefix("kern")))
	ip := func(args ...string) { t.Helper(); nstest.IP(t, append([]string{"-n", ns}, args...)...) }
	ip("link", "add", "br0", "type", "bridge")
	ip("link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b")
	ip("link", "set", "veth-a", "master", "br0")
	ip("addr", "add", "10.1.0.1/24", "dev", "br0")
	for _, l := range []string{"br0", "veth-a", "veth-b"} {
		ip("link", "set", l, "up")
	}
	ip("link", "add", "flannel.1", "mtu", "1450", "type", "vxlan", "id", "1", "dstport", "8472", "local", "10.1.0.1", "nolearning")
	ip("addr", "add", "10.244.0.0/32", "dev", "flannel.1")
	ip("link", "set", "flannel.1", "up")
	ip("route", "add", "10.244.1.0/24", "via", "10.244.1.0", "dev", "flannel.1", "onlink")
	ip("neigh", "add", "10.244.1.0", "lladdr", "0e:fa:0a:01:00:02", "dev", "flannel.1", "nud", "permanent")
	ip("route", "add", "blackhole", "10.244.0.0/24", "proto", "bird")
	ip("route", "add", "10.9.0.0/24", "dev", "br0", "table", "100")
	ip("route", "add", "10.244.0.5", "dev", "veth-a", "scope", "link") // Calico's per-pod route
	for _, args := range [][]string{
		{"fdb", "add", "0e:fa:0a:01:00:02", "dev", "flannel.1", "dst", "10.1.0.2", "self", "permanent"},
		{"fdb", "add", "0e:fa:0a:01:00:03", "dev", "flannel.1", "dst", "10.1.0.3", "vni", "7", "self", "permanent"},
	} {
		if out, err := exec.Command("bridge", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("bridge %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}

	s, err := InspectAll(ns)
	if err != nil {
		t.Fatal(err)
	}
	ifs := map[string]Interface{}
	for _, i := range s.Interfaces {
		ifs[i.Name] = i
	}
	if i := ifs["flannel.1"]; i.Kind != "vxlan" || i.MTU != 1450 || i.State != "up" || !slices.Equal(i.Addresses, []string{"10.244.0.0/32"}) || i.MAC == "" {
		t.Errorf("flannel.1 = %+v", i)
	}
	if i := ifs["veth-a"]; i.Master != "br0" || i.Kind != "veth" {
		t.Errorf("veth-a = %+v, want a veth port of br0", i)
	}

	wantRoutes := []Route{
		{Dst: "10.1.0.0/24", Device: "br0", Type: "unicast", Protocol: "kernel", Scope: "link", Table: "main", Src: "10.1.0.1"},
		{Dst: "10.244.0.0/24", Type: "blackhole", Protocol: "bird", Scope: "global", Table: "main"},
		{Dst: "10.244.1.0/24", Via: "10.244.1.0", Device: "flannel.1", Type: "unicast", Protocol: "boot", Scope: "global", Table: "main", Flags: []string{"onlink"}},
		{Dst: "10.9.0.0/24", Device: "br0", Type: "unicast", Protocol: "boot", Scope: "link", Table: "100"},
		{Dst: "10.244.0.5", Device: "veth-a", Type: "unicast", Protocol: "boot", Scope: "link", Table: "main"},
	}
	for _, want := range wantRoutes {
		if !slices.ContainsFunc(s.Routes, func(r Route) bool { return routeEqual(r, want) }) {
			t.Errorf("no route %+v in\n%+v", want, s.Routes)
		}
	}
	for _, r := range s.Routes {
		if r.Table == "local" {
			t.Errorf("local table route listed: %+v", r)
		}
	}

	wantNeigh := Neighbour{IP: "10.244.1.0", MAC: "0e:fa:0a:01:00:02", Device: "flannel.1", State: "permanent"}
	if !slices.ContainsFunc(s.Neighbours, func(n Neighbour) bool {
		return n.IP == wantNeigh.IP && n.MAC == wantNeigh.MAC && n.Device == wantNeigh.Device && n.State == wantNeigh.State
	}) {
		t.Errorf("no neighbour %+v in %+v", wantNeigh, s.Neighbours)
	}

	wantFDB := []FDBEntry{
		{MAC: "0e:fa:0a:01:00:02", Device: "flannel.1", Dst: "10.1.0.2", State: "permanent", Flags: []string{"self"}},
		{MAC: "0e:fa:0a:01:00:03", Device: "flannel.1", Dst: "10.1.0.3", VNI: 7, State: "permanent", Flags: []string{"self"}},
		{MAC: ifs["veth-a"].MAC, Device: "veth-a", Master: "br0", State: "permanent"},
	}
	for _, want := range wantFDB {
		if !slices.ContainsFunc(s.FDB, func(e FDBEntry) bool {
			return e.MAC == want.MAC && e.Device == want.Device && e.Master == want.Master && e.Dst == want.Dst &&
				e.VNI == want.VNI && e.State == want.State && slices.Equal(e.Flags, want.Flags)
		}) {
			t.Errorf("no fdb entry %+v in\n%+v", want, s.FDB)
		}
	}
}

func routeEqual(a, b Route) bool {
	return a.Dst == b.Dst && a.Via == b.Via && a.Device == b.Device && a.Type == b.Type && a.Protocol == b.Protocol &&
		a.Scope == b.Scope && a.Table == b.Table && a.Src == b.Src && slices.Equal(a.Flags, b.Flags)
}

// The names iproute2 prints for the numbers netlink reports.
func TestRouteAndNeighbourNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{routeProtocol(12), "bird"}, {routeProtocol(3), "boot"}, {routeProtocol(2), "kernel"}, {routeProtocol(250), "250"},
		{routeType(6), "blackhole"}, {routeType(1), "unicast"},
		{routeTable(254), "main"}, {routeTable(100), "100"},
		{routeScope(253), "link"}, {routeScope(0), "global"}, {routeScope(254), "host"},
		{neighState(0x80), "permanent"}, {neighState(0x04), "stale"}, {neighState(0), "none"},
		{fdbState(0x80), "permanent"}, {fdbState(0x40), "static"}, {fdbState(0x02), "dynamic"},
		{strings.Join(routeFlags(4|16), ","), "onlink,linkdown"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
