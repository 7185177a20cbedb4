package trace

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
)

// MaxPlaces bounds the labs a trace captures whole: beyond it, only the
// underlay, every node and the two ends are captured (a pod's eth0 is the
// other end of a veth its node sees anyway), so a trace in a large lab
// does not open a ring in every pod.
const MaxPlaces = 64

// ForLab prepares a trace in a running lab, from the lab's status (no
// live inspection needed): from a node, pod, external host or the router,
// to an address or any of those by name.
func ForLab(st *lab.Status, from, to string, probe Probe) (Request, error) {
	req := Request{Lab: st.Name, Probe: probe}
	if st.Topology == nil {
		return req, fmt.Errorf("trace in lab %q: its record holds no topology: %w", st.Name, lab.ErrBadRecord)
	}
	byName := map[string]lab.NamespaceStatus{}
	var names []string
	for _, ns := range st.Namespaces {
		if ns.Role == plan.RoleUnderlay {
			continue
		}
		byName[ns.Name] = ns
		names = append(names, ns.Name)
	}
	known := func() string {
		s := slices.Clone(names)
		slices.Sort(s)
		if len(s) > 20 {
			s = append(s[:20], "...")
		}
		return strings.Join(s, ", ")
	}
	src, ok := byName[from]
	if !ok {
		if from == "underlay" {
			return req, fmt.Errorf("trace in lab %q: the underlay is a switch and sends nothing: trace from a node, pod or external host", st.Name)
		}
		return req, fmt.Errorf("trace in lab %q: no node, pod or external host %q to send from (it has: %s): %w", st.Name, from, known(), lab.ErrNotFound)
	}
	if !src.Present {
		return req, fmt.Errorf("trace in lab %q: %s %q is %s (labctl up --repair): %w", st.Name, src.Role, from, src.State, lab.ErrDegraded)
	}
	req.From = Place{Name: src.Name, Role: src.Role, Namespace: netns.Path(src.Namespace)}
	req.FromIP, _ = netip.ParseAddr(src.IP)

	var dstNS string
	if ip, err := netip.ParseAddr(to); err == nil {
		req.To = ip.Unmap()
		for _, ns := range st.Namespaces {
			if ns.IP == req.To.String() {
				req.ToName, dstNS = ns.Name, ns.Namespace
			}
		}
	} else {
		dst, ok := byName[to]
		if !ok {
			return req, fmt.Errorf("trace in lab %q: %q is neither an IPv4 address nor a node, pod or external host (it has: %s): %w", st.Name, to, known(), lab.ErrNotFound)
		}
		if req.To, err = netip.ParseAddr(dst.IP); err != nil {
			return req, fmt.Errorf("trace in lab %q: %s %q has no address", st.Name, dst.Role, to)
		}
		req.ToName, dstNS = dst.Name, dst.Namespace
	}

	whole := len(st.Namespaces) <= MaxPlaces
	for _, ns := range st.Namespaces {
		if !ns.Present {
			continue
		}
		if whole || ns.Role != plan.RolePod || ns.Namespace == src.Namespace || ns.Namespace == dstNS {
			req.Places = append(req.Places, Place{Name: ns.Name, Role: ns.Role, Namespace: netns.Path(ns.Namespace)})
		}
	}
	if port := st.Topology.Network.VXLAN.Port; port != 0 {
		req.VXLANPorts = []uint16{uint16(port)}
	}
	return req, nil
}
