package kernel

import (
	"errors"
	"fmt"
	"net"
	"sort"

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

// Route is a route of the main table, in `ip route` words.
type Route struct {
	Dst    string `json:"dst"`
	Via    string `json:"via,omitempty"`
	Device string `json:"dev,omitempty"`
}

// Inspect lists the interfaces and IPv4 routes of a namespace, read through
// a netlink socket opened in it; nothing is changed.
func Inspect(name string) ([]Interface, []Route, error) {
	h, err := vnetns.GetFromPath(netns.Path(name))
	if err != nil {
		return nil, nil, fmt.Errorf("open namespace %q: %w", name, err)
	}
	defer h.Close()
	nh, err := netns.NetlinkHandle(h)
	if err != nil {
		return nil, nil, fmt.Errorf("namespace %q: %w", name, err)
	}
	defer nh.Close()
	links, err := retry(nh.LinkList)
	if err != nil {
		return nil, nil, fmt.Errorf("namespace %q: list links: %w", name, err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := retry(func() ([]netlink.Addr, error) { return nh.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil, nil, fmt.Errorf("namespace %q: list addresses: %w", name, err)
	}
	addrsOf := map[int][]string{}
	for _, a := range addrs {
		addrsOf[a.LinkIndex] = append(addrsOf[a.LinkIndex], a.IPNet.String())
	}
	var ifs []Interface
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
		ifs = append(ifs, i)
	}
	routes, err := retry(func() ([]netlink.Route, error) { return nh.RouteList(nil, unix.AF_INET) })
	if err != nil {
		return nil, nil, fmt.Errorf("namespace %q: list routes: %w", name, err)
	}
	var rs []Route
	for _, r := range routes {
		rt := Route{Dst: "default", Device: byIndex[r.LinkIndex]}
		if r.Dst != nil && r.Dst.IP != nil {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 || !r.Dst.IP.IsUnspecified() {
				rt.Dst = r.Dst.String()
			}
		}
		if r.Gw != nil {
			rt.Via = r.Gw.String()
		}
		rs = append(rs, rt)
	}
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Dst == "default" && rs[j].Dst != "default" })
	return ifs, rs, nil
}

// retry repeats a netlink dump the kernel interrupted because the table
// changed under it.
func retry[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}
