package plan

import (
	"bufio"
	"io"
	"net"
	"net/netip"
)

// Faults: operations that break a lab that is up, for break-fix exercises.
// They are planned and applied like the operations that build a lab, each
// from inside its namespace, and described as the commands a person would
// type to do the same damage (`labctl run --dry-run` prints them), so a
// teacher can read what an exercise breaks and a student what was broken.
// Flipping a sysctl (ip_forward, rp_filter) is a SetSysctl.

// FaultTable is the nftables table faults add their drop rules to, in the
// inet family, so they never touch a rule anything else made: removing the
// table (`nft delete table inet labctl-faults`) removes every injected drop.
const FaultTable = "labctl-faults"

// DeleteRoute removes a route of the main table (`ip route del`). Via and
// Device narrow which route is meant when several lead to Dst; a zero Dst
// is the default route.
type DeleteRoute struct {
	Namespace string
	Dst       netip.Prefix
	Via       netip.Addr
	Device    string
}

// ReplaceRoute sets the route to Dst, replacing the one there is (`ip
// route replace`): a route that points the wrong way.
type ReplaceRoute struct {
	Namespace string
	Dst       netip.Prefix
	Via       netip.Addr
	Device    string
	OnLink    bool
}

// SetLinkDown takes a device down.
type SetLinkDown struct {
	Namespace string
	Device    string
}

// SetMTU changes a device's MTU.
type SetMTU struct {
	Namespace string
	Device    string
	MTU       int
}

// Hooks a drop rule can sit on: traffic to the namespace itself, passing
// through it (a node routing pod traffic), or sent by it.
const (
	HookInput   = "input"
	HookForward = "forward"
	HookOutput  = "output"
)

// AddDropRule drops matching IPv4 packets at a netfilter hook, from a
// base chain named after the hook in FaultTable. Every field set must
// match; Port is the TCP or UDP destination port and needs Protocol tcp or
// udp. The rule counts what it drops (`nft list table inet labctl-faults`).
type AddDropRule struct {
	Namespace string
	Hook      string
	Protocol  string // "", "icmp", "tcp" or "udp"
	Src, Dst  netip.Prefix
	Port      int
}

// DeleteNeighbor removes a neighbour (ARP) entry.
type DeleteNeighbor struct {
	Namespace string
	Device    string
	IP        netip.Addr
}

// DeleteFDB removes an entry of a VXLAN device's own forwarding table: the
// device no longer knows which node a MAC lives behind.
type DeleteFDB struct {
	Namespace string
	Device    string
	MAC       net.HardwareAddr
	Dst       netip.Addr
}

// StopContainer stops one container of a running pod (SIGTERM, then
// SIGKILL after the grace period), as `ctr task kill` or a crash would.
// The pod's restart policy then decides whether it comes back. It is a
// process operation, not a kernel one: the lab facade performs it.
type StopContainer struct {
	Namespace string // the pod's
	Lab       string
	Pod       string
	Container string
}

func (o DeleteRoute) Where() string    { return o.Namespace }
func (o ReplaceRoute) Where() string   { return o.Namespace }
func (o SetLinkDown) Where() string    { return o.Namespace }
func (o SetMTU) Where() string         { return o.Namespace }
func (o AddDropRule) Where() string    { return o.Namespace }
func (o DeleteNeighbor) Where() string { return o.Namespace }
func (o DeleteFDB) Where() string      { return o.Namespace }
func (o StopContainer) Where() string  { return o.Namespace }

func (o DeleteRoute) Describe() Description {
	c := tool("ip", o.Namespace).words("route", "del", dstWord(o.Dst)).when(o.Via.IsValid(), "via", o.Via.String())
	if o.Device != "" {
		c = c.words("dev").name(o.Device)
	}
	return describe(c)
}

func (o ReplaceRoute) Describe() Description {
	c := tool("ip", o.Namespace).words("route", "replace", dstWord(o.Dst)).when(o.Via.IsValid(), "via", o.Via.String())
	if o.Device != "" {
		c = c.words("dev").name(o.Device)
	}
	return describe(c.when(o.OnLink, "onlink"))
}

func (o SetLinkDown) Describe() Description {
	return describe(tool("ip", o.Namespace).words("link", "set").name(o.Device).words("down"))
}

func (o SetMTU) Describe() Description {
	return describe(tool("ip", o.Namespace).words("link", "set").name(o.Device).words("mtu", itoa(o.MTU)))
}

func (o AddDropRule) Describe() Description {
	nft := func() Command { return tool("nft", o.Namespace) }
	return Description{
		Note: "A drop rule in labctl's own nftables table, apart from every other rule; " +
			"`nft delete table inet " + FaultTable + "` removes it.",
		Commands: []Command{
			nft().words("add", "table", "inet", FaultTable),
			nft().words("add", "chain", "inet", FaultTable, o.Hook,
				"'{ type filter hook "+o.Hook+" priority filter; policy accept; }'"),
			nft().words("add", "rule", "inet", FaultTable, o.Hook).words(o.MatchWords()...).words("counter", "drop"),
		},
	}
}

// MatchWords are the rule's matches as nft lists them, e.g. `ip daddr
// 192.168.2.0/24 tcp dport 80`. The rule matches IPv4 only: an address
// match says so by itself, otherwise `meta nfproto ipv4` does.
func (o AddDropRule) MatchWords() []string {
	var w []string
	if !o.Src.IsValid() && !o.Dst.IsValid() {
		w = append(w, "meta", "nfproto", "ipv4")
	}
	if o.Src.IsValid() {
		w = append(w, "ip", "saddr", prefixWord(o.Src))
	}
	if o.Dst.IsValid() {
		w = append(w, "ip", "daddr", prefixWord(o.Dst))
	}
	switch {
	case o.Port > 0:
		w = append(w, o.Protocol, "dport", itoa(o.Port))
	case o.Protocol != "":
		w = append(w, "ip", "protocol", o.Protocol)
	}
	return w
}

// prefixWord writes a prefix as nft does: a single address bare.
func prefixWord(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func (o DeleteNeighbor) Describe() Description {
	return describe(tool("ip", o.Namespace).words("neigh", "del", o.IP.String(), "dev").name(o.Device))
}

func (o DeleteFDB) Describe() Description {
	return describe(tool("bridge", o.Namespace).words("fdb", "del", o.MAC.String(), "dev").name(o.Device).
		words("dst", o.Dst.String(), "self"))
}

func (o StopContainer) Describe() Description {
	return Description{
		Note: "labctl stops the container's process (SIGTERM, SIGKILL after the grace period); " +
			"the pod's restart policy decides whether it starts again.",
		Commands: []Command{tool("labctl", "").words("stop", "--lab").name(o.Lab).name(o.Pod).words("-c").name(o.Container)},
	}
}

func dstWord(p netip.Prefix) string {
	if !p.IsValid() {
		return "default"
	}
	return p.String()
}

// WriteOps writes operations as script lines, each after a comment line
// with its note, for a script that continues one WriteScript began (the
// faults of a scenario after its lab).
func WriteOps(w io.Writer, title string, ops []Op) error {
	b := bufio.NewWriter(w)
	b.WriteString("\n# " + title + "\n")
	for _, op := range ops {
		op.Describe().writeScript(b)
	}
	return b.Flush()
}
