package scenario

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/labctl/labctl/emulator/plan"
)

// Fault kinds, as the scenario names them.
const (
	FaultDeleteRoute    = "deleteRoute"
	FaultReplaceRoute   = "replaceRoute"
	FaultLinkDown       = "linkDown"
	FaultMTU            = "mtu"
	FaultSysctl         = "sysctl"
	FaultDropRule       = "dropRule"
	FaultDeleteNeighbor = "deleteNeighbor"
	FaultDeleteFDB      = "deleteFDB"
	FaultStopContainer  = "stopContainer"
)

// FaultKinds lists the kinds in the order messages name them.
var FaultKinds = []string{FaultDeleteRoute, FaultReplaceRoute, FaultLinkDown, FaultMTU, FaultSysctl,
	FaultDropRule, FaultDeleteNeighbor, FaultDeleteFDB, FaultStopContainer}

// Fault is one fault of a break-fix exercise: a single change, or several
// variants of which a seed picks one per student (which node, which route).
type Fault struct {
	ID       string
	Line     int
	Variants []FaultVariant
}

// FaultVariant is one concrete change. Its operations are planned for a
// lab name at run time, so one scenario serves a class of labs.
type FaultVariant struct {
	Kind   string
	In     Place
	Device string
	// Routes: Dst (DefaultRoute for the default route), Via, OnLink.
	Dst          netip.Prefix
	DefaultRoute bool
	Via          netip.Addr
	OnLink       bool
	MTU          int
	// Sysctl.
	Key, Value string
	// Drop rule.
	Hook, Protocol string
	Src, DstNet    netip.Prefix
	Port           int
	// Neighbour and FDB entries.
	IP  netip.Addr
	MAC net.HardwareAddr
	// Container.
	Container string
}

// Ops plans the change for the lab called lab.
func (v FaultVariant) Ops(lab string) []plan.Op {
	ns := plan.NamespaceName(lab, v.In.Name)
	switch v.Kind {
	case FaultDeleteRoute:
		return []plan.Op{plan.DeleteRoute{Namespace: ns, Dst: v.Dst, Via: v.Via, Device: v.Device}}
	case FaultReplaceRoute:
		return []plan.Op{plan.ReplaceRoute{Namespace: ns, Dst: v.Dst, Via: v.Via, Device: v.Device, OnLink: v.OnLink}}
	case FaultLinkDown:
		return []plan.Op{plan.SetLinkDown{Namespace: ns, Device: v.Device}}
	case FaultMTU:
		return []plan.Op{plan.SetMTU{Namespace: ns, Device: v.Device, MTU: v.MTU}}
	case FaultSysctl:
		return []plan.Op{plan.SetSysctl{Namespace: ns, Settings: []plan.Sysctl{{Key: v.Key, Value: v.Value}}}}
	case FaultDropRule:
		return []plan.Op{plan.AddDropRule{Namespace: ns, Hook: v.Hook, Protocol: v.Protocol, Src: v.Src, Dst: v.DstNet, Port: v.Port}}
	case FaultDeleteNeighbor:
		return []plan.Op{plan.DeleteNeighbor{Namespace: ns, Device: v.Device, IP: v.IP}}
	case FaultDeleteFDB:
		return []plan.Op{plan.DeleteFDB{Namespace: ns, Device: v.Device, MAC: v.MAC, Dst: v.IP}}
	case FaultStopContainer:
		return []plan.Op{plan.StopContainer{Namespace: ns, Lab: lab, Pod: v.In.Name, Container: v.Container}}
	}
	return nil
}

// String says what the variant breaks, in the scenario's words: `sysctl
// in node2: net.ipv4.ip_forward=0`.
func (v FaultVariant) String() string {
	var what string
	switch v.Kind {
	case FaultDeleteRoute, FaultReplaceRoute:
		what = "default"
		if !v.DefaultRoute {
			what = v.Dst.String()
		}
		if v.Via.IsValid() {
			what += " via " + v.Via.String()
		}
		if v.Device != "" {
			what += " dev " + v.Device
		}
		if v.OnLink {
			what += " onlink"
		}
	case FaultLinkDown:
		what = v.Device
	case FaultMTU:
		what = v.Device + " mtu " + strconv.Itoa(v.MTU)
	case FaultSysctl:
		what = v.Key + "=" + v.Value
	case FaultDropRule:
		what = v.Hook + " " + strings.Join(plan.AddDropRule{Protocol: v.Protocol, Src: v.Src, Dst: v.DstNet, Port: v.Port}.MatchWords(), " ")
	case FaultDeleteNeighbor:
		what = v.IP.String() + " dev " + v.Device
	case FaultDeleteFDB:
		what = v.MAC.String() + " dst " + v.IP.String() + " dev " + v.Device
	case FaultStopContainer:
		what = "container " + v.Container
	}
	return fmt.Sprintf("%s in %s: %s", v.Kind, v.In.Name, what)
}

// Chosen is a fault with the variant a seed picked.
type Chosen struct {
	Fault   *Fault
	Variant int
}

// FaultVariant returns the variant picked.
func (c Chosen) FaultVariant() FaultVariant { return c.Fault.Variants[c.Variant] }

// Choose picks each fault's variant for a seed: the same seed always
// picks the same ones, and a fault's pick depends only on the seed and the
// fault's id, so adding a fault does not reshuffle the others.
func (s *Scenario) Choose(seed int64) []Chosen {
	out := make([]Chosen, len(s.Faults))
	for i := range s.Faults {
		f := &s.Faults[i]
		out[i] = Chosen{Fault: f, Variant: pick(seed, f.ID, len(f.Variants))}
	}
	return out
}

// pick is a stable choice among n for (seed, id): FNV-1a, not math/rand,
// whose sequences are not promised to stay the same across Go releases.
func pick(seed int64, id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", seed, id)
	return int(h.Sum64() % uint64(n))
}

// FaultOps plans the chosen faults for the lab called lab, in order.
func FaultOps(lab string, chosen []Chosen) []plan.Op {
	var ops []plan.Op
	for _, c := range chosen {
		ops = append(ops, c.FaultVariant().Ops(lab)...)
	}
	return ops
}
