package kernel

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// rtnl is a route-netlink socket bound to the namespace it was opened in,
// speaking just the messages a lab needs. It builds each message itself
// rather than going through netlink.Handle.LinkAdd, which looks the new link
// up by name afterwards and sets its master in a second request: both wrong
// when the link is created straight into another namespace, and slower.
//
// Each message is built by a function of its own (the *Msg functions,
// which only encode), so tests can pin its bytes; the methods look up
// what the message needs and send it.
type rtnl struct {
	sock  *nl.SocketHandle
	index map[string]int // device name -> ifindex in this socket's namespace
}

// openRTNL opens a socket in the calling thread's current namespace.
func openRTNL() (*rtnl, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	// Extended acks carry the kernel's own explanation of a refusal.
	_ = s.SetExtAck(true)
	return &rtnl{sock: &nl.SocketHandle{Socket: s}, index: map[string]int{}}, nil
}

func (c *rtnl) Close() { c.sock.Socket.Close() }

// cookie is the kernel's never-reused number for this socket's namespace.
func (c *rtnl) cookie() (uint64, error) { return netns.SocketCookie(c.sock.Socket.GetFd()) }

// request starts a message that asks for an acknowledgement.
func request(msgType, flags int) *nl.NetlinkRequest {
	return nl.NewNetlinkRequest(msgType, flags|unix.NLM_F_ACK)
}

// exec sends a message through this socket and waits for its ack.
func (c *rtnl) exec(req *nl.NetlinkRequest) error {
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: c.sock}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// setMarker writes the marker as lo's alias (see netns.Marker).
func (c *rtnl) setMarker(m netns.Marker) error {
	if err := c.exec(markerMsg(m)); err != nil {
		return fmt.Errorf("mark namespace (lo alias): %w", err)
	}
	return nil
}

func markerMsg(m netns.Marker) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("lo")))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(m.String())))
	return req
}

// linkIndex returns the ifindex of a device in this namespace.
func (c *rtnl) linkIndex(name string) (int, error) {
	if i, ok := c.index[name]; ok {
		return i, nil
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: c.sock}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, fmt.Errorf("find device %q: %w", name, err)
	}
	if len(msgs) == 0 {
		return 0, fmt.Errorf("find device %q: no answer", name)
	}
	i := int(nl.DeserializeIfInfomsg(msgs[0]).Index)
	c.index[name] = i
	return i, nil
}

// setUp brings a device up by name.
func (c *rtnl) setUp(name string) error { return c.exec(setUpMsg(name)) }

func setUpMsg(name string) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	return req
}

// addBridge creates a bridge, up, in this namespace.
func (c *rtnl) addBridge(name string, mtu int) error { return c.exec(bridgeMsg(name, mtu)) }

func bridgeMsg(name string, mtu int) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	req.AddData(info)
	return req
}

// vethEnd describes the first end of a veth pair. nsFD < 0 means "this
// socket's namespace"; master is an ifindex in the end's own namespace (0:
// none).
type vethEnd struct {
	name   string
	nsFD   int
	master int
	up     bool
	mac    []byte // nil: the kernel's random one
}

// vethPeer is the other end: a name and a namespace, nothing more. The
// kernel configures the peer before it joins the pair, so it refuses to
// bring the peer up then (ENOTCONN) and ignores a master given for it; the
// peer's own namespace configures it afterwards.
type vethPeer struct {
	name string
	nsFD int
}

// addVeth creates a veth pair with both ends already in their namespaces,
// the first attached and up as asked, in one request.
func (c *rtnl) addVeth(a vethEnd, b vethPeer, mtu int) error { return c.exec(vethMsg(a, b, mtu)) }

func vethMsg(a vethEnd, b vethPeer, mtu int) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	if a.up {
		msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	}
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(a.name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	if a.mac != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, a.mac))
	}
	if a.master > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(a.master))))
	}
	if a.nsFD >= 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(a.nsFD))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(b.name))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu)))
	if b.nsFD >= 0 {
		peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(b.nsFD)))
	}
	req.AddData(info)
	return req
}

// addAddress assigns addr/len to a device in this namespace.
func (c *rtnl) addAddress(dev string, p netip.Prefix) error {
	idx, err := c.linkIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(addressMsg(idx, p))
}

func addressMsg(index int, p netip.Prefix) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := nl.NewIfAddrmsg(unix.AF_INET)
	msg.Prefixlen = uint8(p.Bits())
	msg.Index = uint32(index)
	req.AddData(msg)
	a := p.Addr().AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, a))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, a))
	if p.Bits() < 31 {
		b := broadcastOf(p)
		req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, b.AsSlice()))
	}
	return req
}

// addRoute adds a unicast route in the main table; an invalid dst means the
// default route, an invalid via a device route (scope link).
func (c *rtnl) addRoute(dst netip.Prefix, via netip.Addr, dev string, onlink bool) error {
	return c.addRouteSpec(dev, routeSpec{dst: dst, via: via, onlink: onlink})
}

// routeSpec is a route of the main table; an invalid dst is the default
// route, an invalid via a device route (scope link). A blackhole has no
// gateway and no device.
type routeSpec struct {
	dst       netip.Prefix
	via       netip.Addr
	oif       int // output device; 0: none
	onlink    bool
	proto     uint8 // RTPROT_*; 0: boot, as ip route add
	mtu       int   // mtu metric; 0: none
	blackhole bool
}

// addRouteSpec adds r through dev (by name, "" for none).
func (c *rtnl) addRouteSpec(dev string, r routeSpec) error {
	if dev != "" {
		idx, err := c.linkIndex(dev)
		if err != nil {
			return err
		}
		r.oif = idx
	}
	return c.exec(routeSpecMsg(r))
}

// routeMsg builds a plain route; oif 0 means no output device.
func routeMsg(dst netip.Prefix, via netip.Addr, oif int, onlink bool) *nl.NetlinkRequest {
	return routeSpecMsg(routeSpec{dst: dst, via: via, oif: oif, onlink: onlink})
}

func routeSpecMsg(r routeSpec) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := nl.NewRtMsg() // main table, boot protocol, universe scope, unicast
	msg.Family = unix.AF_INET
	if r.dst.IsValid() {
		msg.Dst_len = uint8(r.dst.Bits())
	}
	if !r.via.IsValid() && !r.blackhole {
		msg.Scope = unix.RT_SCOPE_LINK
	}
	if r.blackhole {
		msg.Type = unix.RTN_BLACKHOLE
	}
	if r.proto != 0 {
		msg.Protocol = r.proto
	}
	if r.onlink {
		msg.Flags |= unix.RTNH_F_ONLINK
	}
	req.AddData(msg)
	if r.dst.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_DST, r.dst.Addr().AsSlice()))
	}
	if r.via.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, r.via.AsSlice()))
	}
	if r.oif > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(r.oif))))
	}
	if r.mtu > 0 {
		metrics := nl.NewRtAttr(unix.RTA_METRICS, nil)
		metrics.AddRtAttr(unix.RTAX_MTU, nl.Uint32Attr(uint32(r.mtu)))
		req.AddData(metrics)
	}
	return req
}

func broadcastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// vxlanSpec is what addVXLAN needs; indexes are in this namespace.
type vxlanSpec struct {
	name     string
	vni      int
	port     int
	local    netip.Addr
	link     int // underlay device index
	learning bool
	group    netip.Addr
	mac      []byte
	master   int
	mtu      int
}

// addVXLAN creates a VXLAN device, up.
func (c *rtnl) addVXLAN(v vxlanSpec) error { return c.exec(vxlanMsg(v)) }

func vxlanMsg(v vxlanSpec) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(v.name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(v.mtu))))
	if v.mac != nil {
		req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, v.mac))
	}
	if v.master > 0 {
		req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(v.master))))
	}
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("vxlan"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_VXLAN_ID, nl.Uint32Attr(uint32(v.vni)))
	data.AddRtAttr(nl.IFLA_VXLAN_LOCAL, v.local.AsSlice())
	data.AddRtAttr(nl.IFLA_VXLAN_LINK, nl.Uint32Attr(uint32(v.link)))
	data.AddRtAttr(nl.IFLA_VXLAN_PORT, htons(uint16(v.port)))
	learning := uint8(0)
	if v.learning {
		learning = 1
	}
	data.AddRtAttr(nl.IFLA_VXLAN_LEARNING, nl.Uint8Attr(learning))
	if v.group.IsValid() {
		data.AddRtAttr(nl.IFLA_VXLAN_GROUP, v.group.AsSlice())
	}
	req.AddData(info)
	return req
}

func htons(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

// addNeighbor adds a permanent ARP entry.
func (c *rtnl) addNeighbor(dev string, ip netip.Addr, mac []byte) error {
	idx, err := c.linkIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(neighborMsg(idx, ip, mac))
}

func neighborMsg(index int, ip netip.Addr, mac []byte) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_INET, Index: uint32(index), State: unix.NUD_PERMANENT, Type: unix.RTN_UNICAST})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip.AsSlice()))
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
	return req
}

// addFDB adds a permanent entry to a VXLAN device's own forwarding table
// (`bridge fdb add|append ... self permanent`).
func (c *rtnl) addFDB(dev string, mac []byte, dst netip.Addr, appendEntry bool) error {
	idx, err := c.linkIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(fdbMsg(idx, mac, dst, appendEntry))
}

func fdbMsg(index int, mac []byte, dst netip.Addr, appendEntry bool) *nl.NetlinkRequest {
	flags := unix.NLM_F_CREATE | unix.NLM_F_EXCL
	if appendEntry {
		flags = unix.NLM_F_CREATE | unix.NLM_F_APPEND
	}
	req := request(unix.RTM_NEWNEIGH, flags)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE, Index: uint32(index), State: unix.NUD_PERMANENT, Flags: unix.NTF_SELF})
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
	req.AddData(nl.NewRtAttr(unix.NDA_DST, dst.AsSlice()))
	return req
}

// addIPIP creates an ipip device. With an invalid local it is the
// any-to-any kind, like the module's fallback tunl0.
func (c *rtnl) addIPIP(name string, local netip.Addr) error { return c.exec(ipipMsg(name, local)) }

func ipipMsg(name string, local netip.Addr) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("ipip"))
	if local.IsValid() {
		data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
		data.AddRtAttr(nl.IFLA_IPTUN_LOCAL, local.AsSlice())
		data.AddRtAttr(nl.IFLA_IPTUN_PMTUDISC, nl.Uint8Attr(1))
	}
	req.AddData(info)
	return req
}

// setMAC sets a device's MAC; on a bridge it pins it (the kernel marks the
// address as set and stops taking the lowest MAC of the ports).
func (c *rtnl) setMAC(name string, mac []byte) error { return c.exec(macMsg(name, mac)) }

func macMsg(name string, mac []byte) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, mac))
	return req
}

// setHairpin turns hairpin mode on for a bridge port, as `bridge link set
// dev NAME hairpin on` does: the bridge's own setlink, which finds the port
// by index only.
func (c *rtnl) setHairpin(port string) error {
	idx, err := c.linkIndex(port)
	if err != nil {
		return err
	}
	return c.exec(hairpinMsg(idx))
}

func hairpinMsg(index int) *nl.NetlinkRequest {
	req := request(unix.RTM_SETLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(index)
	req.AddData(msg)
	protinfo := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	protinfo.AddRtAttr(nl.IFLA_BRPORT_MODE, nl.Uint8Attr(1))
	req.AddData(protinfo)
	return req
}

// setMTUUp sets a device's MTU and brings it up.
func (c *rtnl) setMTUUp(name string, mtu int) error { return c.exec(mtuUpMsg(name, mtu)) }

func mtuUpMsg(name string, mtu int) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = unix.IFF_UP, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	return req
}

// delLink deletes a device by name; a device that does not exist is not an
// error.
func (c *rtnl) delLink(name string) error {
	if err := c.exec(delLinkMsg(name)); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete device %q: %w", name, err)
	}
	return nil
}

func delLinkMsg(name string) *nl.NetlinkRequest {
	req := request(unix.RTM_DELLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	return req
}
