package kernel

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/plan"
)

// The faults of break-fix exercises (plan/fault.go): each undoes or bends
// something a lab is built from, through the same route-netlink socket, or
// through nftables netlink for drop rules.

// delRoute removes a route of the main table.
func (c *rtnl) delRoute(dst netip.Prefix, via netip.Addr, dev string) error {
	oif, err := c.optionalIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(delRouteMsg(dst, via, oif))
}

// delRouteMsg asks for the route as `ip route del` does: protocol, scope
// and type left open, so the route matches whoever added it.
func delRouteMsg(dst netip.Prefix, via netip.Addr, oif int) *nl.NetlinkRequest {
	req := request(unix.RTM_DELROUTE, 0)
	msg := &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Scope: unix.RT_SCOPE_NOWHERE}}
	if dst.IsValid() {
		msg.Dst_len = uint8(dst.Bits())
	}
	req.AddData(msg)
	if dst.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_DST, dst.Addr().AsSlice()))
	}
	if via.IsValid() {
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, via.AsSlice()))
	}
	if oif > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(oif))))
	}
	return req
}

// replaceRoute sets the route to dst, replacing the one there is.
func (c *rtnl) replaceRoute(dst netip.Prefix, via netip.Addr, dev string, onlink bool) error {
	oif, err := c.optionalIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(replaceRouteMsg(dst, via, oif, onlink))
}

// replaceRouteMsg is routeMsg with `ip route replace`'s flags.
func replaceRouteMsg(dst netip.Prefix, via netip.Addr, oif int, onlink bool) *nl.NetlinkRequest {
	req := routeMsg(dst, via, oif, onlink)
	req.Flags = unix.NLM_F_REQUEST | unix.NLM_F_ACK | unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	return req
}

// optionalIndex is the ifindex of dev, 0 for no device.
func (c *rtnl) optionalIndex(dev string) (int, error) {
	if dev == "" {
		return 0, nil
	}
	return c.linkIndex(dev)
}

// setDown takes a device down.
func (c *rtnl) setDown(name string) error { return c.exec(setDownMsg(name)) }

func setDownMsg(name string) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Flags, msg.Change = 0, unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	return req
}

// setMTU changes a device's MTU, leaving it up or down as it is.
func (c *rtnl) setMTU(name string, mtu int) error { return c.exec(mtuMsg(name, mtu)) }

func mtuMsg(name string, mtu int) *nl.NetlinkRequest {
	req := request(unix.RTM_NEWLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	return req
}

// onDevice sends the message built for device dev's ifindex.
func (c *rtnl) onDevice(dev string, build func(index int) *nl.NetlinkRequest) error {
	idx, err := c.linkIndex(dev)
	if err != nil {
		return err
	}
	return c.exec(build(idx))
}

// delNeighbor removes an ARP entry.
func (c *rtnl) delNeighbor(dev string, ip netip.Addr) error {
	return c.onDevice(dev, func(i int) *nl.NetlinkRequest { return delNeighborMsg(i, ip) })
}

func delNeighborMsg(index int, ip netip.Addr) *nl.NetlinkRequest {
	req := request(unix.RTM_DELNEIGH, 0)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_INET, Index: uint32(index)})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, ip.AsSlice()))
	return req
}

// delFDB removes one destination of a MAC from a VXLAN device's own FDB.
func (c *rtnl) delFDB(dev string, mac []byte, dst netip.Addr) error {
	return c.onDevice(dev, func(i int) *nl.NetlinkRequest { return delFDBMsg(i, mac, dst) })
}

func delFDBMsg(index int, mac []byte, dst netip.Addr) *nl.NetlinkRequest {
	req := request(unix.RTM_DELNEIGH, 0)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE, Index: uint32(index), Flags: unix.NTF_SELF})
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
	req.AddData(nl.NewRtAttr(unix.NDA_DST, dst.AsSlice()))
	return req
}

// addDropRule adds a drop rule to labctl's fault table, creating the table
// and the hook's chain as `nft add` does (nothing happens to them if they
// exist). It must run on a thread inside the namespace: the nftables
// socket is made where the calling thread is.
func addDropRule(o plan.AddDropRule) error {
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return fmt.Errorf("open nftables socket: %w", err)
	}
	defer conn.CloseLasting()
	hook, err := chainHook(o.Hook)
	if err != nil {
		return err
	}
	exprs, err := dropExprs(o)
	if err != nil {
		return err
	}
	t := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: plan.FaultTable})
	accept := nftables.ChainPolicyAccept
	ch := conn.AddChain(&nftables.Chain{
		Name: o.Hook, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	conn.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	return conn.Flush()
}

func chainHook(name string) (*nftables.ChainHook, error) {
	switch name {
	case plan.HookInput:
		return nftables.ChainHookInput, nil
	case plan.HookForward:
		return nftables.ChainHookForward, nil
	case plan.HookOutput:
		return nftables.ChainHookOutput, nil
	}
	return nil, fmt.Errorf("unknown netfilter hook %q", name)
}

// dropExprs compiles the rule as nft compiles `ip saddr S ip daddr D tcp
// dport P counter drop` in an inet table: IPv4 only, each match a load
// into register 1 and a comparison.
func dropExprs(o plan.AddDropRule) ([]expr.Any, error) {
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
	prefix := func(offset uint32, p netip.Prefix) {
		exprs = append(exprs, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4})
		if p.Bits() < 32 {
			mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
			exprs = append(exprs, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)})
		}
		exprs = append(exprs, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()})
	}
	if o.Src.IsValid() {
		prefix(12, o.Src)
	}
	if o.Dst.IsValid() {
		prefix(16, o.Dst)
	}
	proto, ok := map[string]byte{"": 0, "icmp": unix.IPPROTO_ICMP, "tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP}[o.Protocol]
	switch {
	case !ok:
		return nil, fmt.Errorf("unknown protocol %q", o.Protocol)
	case o.Port > 0:
		// `tcp dport 80`: nft checks the layer 4 protocol, then the port.
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
	case proto != 0:
		// `ip protocol icmp`: the IPv4 header's protocol field.
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
	}
	if o.Port > 0 {
		if o.Protocol != "tcp" && o.Protocol != "udp" {
			return nil, fmt.Errorf("a port needs protocol tcp or udp, not %q", o.Protocol)
		}
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, uint16(o.Port))})
	}
	return append(exprs, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}), nil
}
