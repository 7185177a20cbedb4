package kernel

import (
	"fmt"
	"net"
	"sort"
	"strconv"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// Interface is a device as seen inside a namespace.
type Interface struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	State     string   `json:"state"`
	MTU       int      `json:"mtu"`
	MAC       string   `json:"mac,omitempty"`
	Master    string   `json:"master,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
}

// Route is an IPv4 route, in `ip route` words (a host route's Dst without
// /32). Routes of every table but local (the kernel's own addresses and
// broadcasts) are listed.
type Route struct {
	Dst    string `json:"dst"`
	Via    string `json:"via,omitempty"`
	Device string `json:"dev,omitempty"`
	// Type is unicast, or blackhole, unreachable, prohibit, throw...
	Type string `json:"type"`
	// Protocol says who installed it: kernel (for an address's subnet),
	// boot (ip route add's default, what labctl uses), static, bird...
	Protocol string `json:"protocol"`
	// Scope is global, link (directly reachable) or host.
	Scope  string   `json:"scope"`
	Table  string   `json:"table"`
	Src    string   `json:"prefsrc,omitempty"`
	Metric int      `json:"metric,omitempty"`
	Flags  []string `json:"flags,omitempty"` // onlink, linkdown, dead...
}

// Neighbour is an IPv4 neighbour (ARP) entry, in `ip neigh` words.
type Neighbour struct {
	IP     string `json:"ip"`
	MAC    string `json:"lladdr,omitempty"`
	Device string `json:"dev"`
	// State is the NUD state: permanent, reachable, stale, delay, probe,
	// failed, incomplete, noarp.
	State string   `json:"state"`
	Flags []string `json:"flags,omitempty"` // router, extern_learn
}

// FDBEntry is a forwarding database entry, in `bridge fdb` words: of a
// bridge (flag master: where the bridge sends frames for MAC) or of a
// device itself (flag self: a VXLAN device's remote VTEP for MAC).
type FDBEntry struct {
	MAC    string `json:"mac"`
	Device string `json:"dev"`
	Master string `json:"master,omitempty"`
	// Dst is a VXLAN entry's remote VTEP.
	Dst  string `json:"dst,omitempty"`
	VNI  int    `json:"vni,omitempty"`
	VLAN int    `json:"vlan,omitempty"`
	// State is permanent (the device's own address, or added so),
	// static, dynamic (learned) or stale.
	State string   `json:"state"`
	Flags []string `json:"flags,omitempty"` // self, master, extern_learn
}

// Snapshot is what one namespace's network stack holds.
type Snapshot struct {
	Interfaces []Interface `json:"interfaces"`
	Routes     []Route     `json:"routes"`
	Neighbours []Neighbour `json:"neighbours"`
	FDB        []FDBEntry  `json:"fdb"`
}

// Inspect lists the interfaces and IPv4 routes of a namespace, read through
// a netlink socket opened in it; nothing is changed.
func Inspect(name string) ([]Interface, []Route, error) {
	s, err := inspect(name, false)
	if err != nil {
		return nil, nil, err
	}
	return s.Interfaces, s.Routes, nil
}

// InspectAll reads everything Snapshot holds from a namespace: its
// interfaces, routes, neighbours and FDB entries. Nothing is changed.
func InspectAll(name string) (*Snapshot, error) {
	return inspect(name, true)
}

func inspect(name string, all bool) (*Snapshot, error) {
	h, err := vnetns.GetFromPath(netns.Path(name))
	if err != nil {
		return nil, fmt.Errorf("open namespace %q: %w", name, err)
	}
	defer h.Close()
	nh, err := netns.NetlinkHandle(h)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", name, err)
	}
	defer nh.Close()
	s := &Snapshot{}
	byIndex, err := s.readInterfaces(nh)
	if err == nil {
		err = s.readRoutes(nh, byIndex)
	}
	if err == nil && all {
		err = s.readNeighbours(nh, byIndex)
	}
	if err == nil && all {
		err = s.readFDB(nh, byIndex)
	}
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", name, err)
	}
	return s, nil
}

// readInterfaces lists the links with their IPv4 addresses and returns
// their names by index.
func (s *Snapshot) readInterfaces(nh *netlink.Handle) (map[int]string, error) {
	links, err := netns.RetryDump(nh.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := netns.RetryDump(func() ([]netlink.Addr, error) { return nh.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	addrsOf := map[int][]string{}
	for _, a := range addrs {
		addrsOf[a.LinkIndex] = append(addrsOf[a.LinkIndex], a.IPNet.String())
	}
	for _, l := range links {
		at := l.Attrs()
		i := Interface{
			Name: at.Name, Kind: l.Type(), MTU: at.MTU, State: "down",
			Addresses: addrsOf[at.Index],
		}
		if at.Flags&net.FlagUp != 0 {
			i.State = "up"
		}
		if len(at.HardwareAddr) > 0 && at.Name != "lo" {
			i.MAC = at.HardwareAddr.String()
		}
		if at.MasterIndex != 0 {
			i.Master = byIndex[at.MasterIndex]
		}
		s.Interfaces = append(s.Interfaces, i)
	}
	return byIndex, nil
}

func (s *Snapshot) readRoutes(nh *netlink.Handle, byIndex map[int]string) error {
	routes, err := netns.RetryDump(func() ([]netlink.Route, error) {
		return nh.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Table == unix.RT_TABLE_LOCAL {
			continue
		}
		s.Routes = append(s.Routes, routeOf(r, byIndex))
	}
	sort.SliceStable(s.Routes, func(i, j int) bool { return s.Routes[i].Dst == "default" && s.Routes[j].Dst != "default" })
	return nil
}

// routeOf describes a route as `ip route` prints it.
func routeOf(r netlink.Route, byIndex map[int]string) Route {
	rt := Route{
		Dst: "default", Device: byIndex[r.LinkIndex], Metric: r.Priority,
		Type: routeType(r.Type), Protocol: routeProtocol(int(r.Protocol)),
		Scope: routeScope(r.Scope), Table: routeTable(r.Table), Flags: routeFlags(r.Flags),
	}
	if r.Dst != nil && r.Dst.IP != nil {
		switch ones, bits := r.Dst.Mask.Size(); {
		case ones == bits:
			rt.Dst = r.Dst.IP.String() // a host route, without /32 as ip route prints it
		case ones > 0 || !r.Dst.IP.IsUnspecified():
			rt.Dst = r.Dst.String()
		}
	}
	if r.Gw != nil {
		rt.Via = r.Gw.String()
	}
	if r.Src != nil {
		rt.Src = r.Src.String()
	}
	return rt
}

func (s *Snapshot) readNeighbours(nh *netlink.Handle, byIndex map[int]string) error {
	neighs, err := netns.RetryDump(func() ([]netlink.Neigh, error) { return nh.NeighList(0, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	for _, n := range neighs {
		// As `ip neigh`: entries that never resolve (loopback,
		// broadcast and multicast addresses) are not shown.
		if n.State&unix.NUD_NOARP != 0 || n.State == unix.NUD_NONE {
			continue
		}
		nb := Neighbour{IP: n.IP.String(), Device: byIndex[n.LinkIndex], State: neighState(n.State), Flags: neighFlags(n.Flags)}
		if len(n.HardwareAddr) > 0 {
			nb.MAC = n.HardwareAddr.String()
		}
		s.Neighbours = append(s.Neighbours, nb)
	}
	return nil
}

func (s *Snapshot) readFDB(nh *netlink.Handle, byIndex map[int]string) error {
	entries, err := netns.RetryDump(func() ([]netlink.Neigh, error) { return nh.NeighList(0, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("list fdb entries: %w", err)
	}
	for _, n := range entries {
		e := FDBEntry{
			MAC: n.HardwareAddr.String(), Device: byIndex[n.LinkIndex], VNI: n.VNI, VLAN: n.Vlan,
			State: fdbState(n.State), Flags: fdbFlags(n.Flags),
		}
		if n.MasterIndex != 0 {
			e.Master = byIndex[n.MasterIndex]
		}
		if n.IP != nil {
			e.Dst = n.IP.String()
		}
		s.FDB = append(s.FDB, e)
	}
	return nil
}

// The names iproute2 gives these numbers (include/uapi/linux/rtnetlink.h,
// neighbour.h and /etc/iproute2/rt_protos).
var (
	routeTypes = map[int]string{
		unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast",
		unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole",
		unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw",
		unix.RTN_NAT: "nat",
	}
	routeProtocols = map[int]string{
		unix.RTPROT_UNSPEC: "unspec", unix.RTPROT_REDIRECT: "redirect", unix.RTPROT_KERNEL: "kernel",
		unix.RTPROT_BOOT: "boot", unix.RTPROT_STATIC: "static", unix.RTPROT_GATED: "gated",
		unix.RTPROT_RA: "ra", unix.RTPROT_MRT: "mrt", unix.RTPROT_ZEBRA: "zebra", unix.RTPROT_BIRD: "bird",
		unix.RTPROT_DNROUTED: "dnrouted", unix.RTPROT_XORP: "xorp", unix.RTPROT_NTK: "ntk",
		unix.RTPROT_DHCP: "dhcp", unix.RTPROT_KEEPALIVED: "keepalived", unix.RTPROT_BABEL: "babel",
		unix.RTPROT_BGP: "bgp", unix.RTPROT_ISIS: "isis", unix.RTPROT_OSPF: "ospf", unix.RTPROT_RIP: "rip",
		unix.RTPROT_EIGRP: "eigrp",
	}
	routeScopes = map[netlink.Scope]string{
		netlink.SCOPE_UNIVERSE: "global", netlink.SCOPE_SITE: "site", netlink.SCOPE_LINK: "link",
		netlink.SCOPE_HOST: "host", netlink.SCOPE_NOWHERE: "nowhere",
	}
	routeTables = map[int]string{
		unix.RT_TABLE_MAIN: "main", unix.RT_TABLE_DEFAULT: "default", unix.RT_TABLE_LOCAL: "local",
	}
	nextHopFlags = []bitName{
		{unix.RTNH_F_DEAD, "dead"}, {unix.RTNH_F_PERVASIVE, "pervasive"}, {unix.RTNH_F_ONLINK, "onlink"},
		{unix.RTNH_F_OFFLOAD, "offload"}, {unix.RTNH_F_LINKDOWN, "linkdown"},
	}
	neighStates = []bitName{
		{unix.NUD_INCOMPLETE, "incomplete"}, {unix.NUD_REACHABLE, "reachable"}, {unix.NUD_STALE, "stale"},
		{unix.NUD_DELAY, "delay"}, {unix.NUD_PROBE, "probe"}, {unix.NUD_FAILED, "failed"},
		{unix.NUD_NOARP, "noarp"}, {unix.NUD_PERMANENT, "permanent"},
	}
)

type bitName struct {
	bit  int
	name string
}

func named(m map[int]string, v int) string {
	if s, ok := m[v]; ok {
		return s
	}
	return strconv.Itoa(v)
}

func routeType(t int) string      { return named(routeTypes, t) }
func routeProtocol(p int) string  { return named(routeProtocols, p) }
func routeTable(table int) string { return named(routeTables, table) }

func routeScope(s netlink.Scope) string {
	if n, ok := routeScopes[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

func namesOf(v int, names []bitName) []string {
	var out []string
	for _, f := range names {
		if v&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

func routeFlags(f int) []string { return namesOf(f, nextHopFlags) }

func neighState(s int) string {
	if names := namesOf(s, neighStates); len(names) > 0 {
		return names[0]
	}
	return "none"
}

func neighFlags(flags int) []string {
	var out []string
	if flags&unix.NTF_ROUTER != 0 {
		out = append(out, "router")
	}
	if flags&unix.NTF_EXT_LEARNED != 0 {
		out = append(out, "extern_learn")
	}
	return out
}

// fdbState names an FDB entry's state as `bridge fdb` does, except that
// a learned entry is called dynamic rather than left unnamed.
func fdbState(s int) string {
	switch {
	case s&unix.NUD_PERMANENT != 0:
		return "permanent"
	case s&unix.NUD_NOARP != 0:
		return "static"
	case s&unix.NUD_STALE != 0:
		return "stale"
	}
	return "dynamic"
}

func fdbFlags(flags int) []string {
	var out []string
	if flags&unix.NTF_SELF != 0 {
		out = append(out, "self")
	}
	if flags&unix.NTF_MASTER != 0 {
		out = append(out, "master")
	}
	if flags&unix.NTF_EXT_LEARNED != 0 {
		out = append(out, "extern_learn")
	}
	return out
}
