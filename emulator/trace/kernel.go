package trace

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// Kernel answers what the analysis asks the namespaces a packet crossed:
// their interfaces, their routes for its destination, their neighbours.
// The live one asks netlink and writes every answer into the recording;
// a recording answers the same questions again without a lab (Replay),
// which is how the rendering is tested.
type Kernel interface {
	Links(ns string) ([]Link, error)
	Route(ns string, q RouteQuery) Route
	Neighbours(ns string) ([]Neighbour, error)
}

// Link is a network device as the analysis needs it.
type Link struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Kind   string `json:"kind"` // veth, bridge, vxlan, tuntap, ipip, ...
	MTU    int    `json:"mtu"`
	Master string `json:"master,omitempty"`
	MAC    string `json:"mac,omitempty"`
	Up     bool   `json:"up"`
}

// RouteQuery is a route lookup: `ip route get DST from SRC iif IIF`.
type RouteQuery struct {
	Dst netip.Addr `json:"dst"`
	Src netip.Addr `json:"src,omitzero"`
	Iif string     `json:"iif,omitempty"`
}

// Neighbour is an entry of a namespace's ARP table.
type Neighbour struct {
	IP    netip.Addr `json:"ip"`
	Dev   string     `json:"dev"`
	MAC   string     `json:"mac,omitempty"`
	State string     `json:"state"` // reachable, stale, failed, incomplete, permanent, ...
}

// liveKernel asks the namespaces through netlink, one socket each, and
// records every answer.
type liveKernel struct {
	rec     *Recording
	mu      sync.Mutex
	handles map[string]*netlink.Handle
}

// LiveKernel answers from the running namespaces and adds every answer to
// rec, so that rec replays the same analysis later. Close it when done.
func LiveKernel(rec *Recording) *liveKernel {
	return &liveKernel{rec: rec, handles: map[string]*netlink.Handle{}}
}

// Close closes the netlink sockets.
func (k *liveKernel) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range k.handles {
		h.Close()
	}
	k.handles = map[string]*netlink.Handle{}
}

// open opens the netlink sockets of these places at once.
func (k *liveKernel) open(places []Place) {
	var wg sync.WaitGroup
	for _, pl := range places {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = k.handle(pl.Namespace) // an error shows again when it is asked
		}()
	}
	wg.Wait()
}

// handle returns the netlink socket of the namespace at path ns.
func (k *liveKernel) handle(ns string) (*netlink.Handle, error) {
	k.mu.Lock()
	h, ok := k.handles[ns]
	k.mu.Unlock()
	if ok {
		return h, nil
	}
	nsh, err := netns.Open(ns)
	if err != nil {
		return nil, fmt.Errorf("open namespace %q: %w", ns, err)
	}
	defer nsh.Close()
	h, err = netns.NetlinkHandle(nsh)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", ns, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.handles[ns]; ok {
		h.Close() // opened twice at once: keep the first
		return old, nil
	}
	k.handles[ns] = h
	return h, nil
}

func (k *liveKernel) Links(ns string) ([]Link, error) {
	if links, ok := k.rec.Kernel.Links[ns]; ok {
		return links, nil
	}
	h, err := k.handle(ns)
	if err != nil {
		return nil, err
	}
	list, err := netns.RetryDump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list links: %w", ns, err)
	}
	names := map[int]string{}
	for _, l := range list {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var links []Link
	for _, l := range list {
		a := l.Attrs()
		link := Link{Name: a.Name, Index: a.Index, Kind: l.Type(), MTU: a.MTU, Master: names[a.MasterIndex], Up: a.Flags&net.FlagUp != 0}
		if len(a.HardwareAddr) == 6 {
			link.MAC = a.HardwareAddr.String()
		}
		links = append(links, link)
	}
	k.mu.Lock()
	k.rec.Kernel.Links[ns] = links
	k.mu.Unlock()
	return links, nil
}

func (k *liveKernel) Route(ns string, q RouteQuery) Route {
	for _, a := range k.rec.Kernel.Routes {
		if a.Namespace == ns && a.Query == q {
			return a.Route
		}
	}
	r := k.route(ns, q)
	k.mu.Lock()
	k.rec.Kernel.Routes = append(k.rec.Kernel.Routes, RouteAnswer{Namespace: ns, Query: q, Route: r})
	k.mu.Unlock()
	return r
}

// route asks twice: once for the route as the FIB holds it (its prefix,
// gateway, flags: what `ip route` lists) and once for the lookup's result
// (the source address the kernel picks).
func (k *liveKernel) route(ns string, q RouteQuery) Route {
	r := Route{Iif: q.Iif}
	h, err := k.handle(ns)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	opts := &netlink.RouteGetOptions{Iif: q.Iif, FIBMatch: true}
	if q.Src.IsValid() {
		opts.SrcAddr = net.IP(q.Src.AsSlice())
	}
	dst := net.IP(q.Dst.AsSlice())
	fib, err := h.RouteGetWithOptions(dst, opts)
	if err != nil || len(fib) == 0 {
		r.Err = routeErr(err)
		return r
	}
	f := fib[0]
	r.Type = routeType(f.Type)
	r.Dst = "default"
	if f.Dst != nil {
		if ones, _ := f.Dst.Mask.Size(); ones > 0 {
			r.Dst = f.Dst.String()
		}
	}
	if f.Gw != nil {
		r.Via = f.Gw.String()
	}
	r.Onlink = f.Flags&unix.RTNH_F_ONLINK != 0
	if links, err := k.Links(ns); err == nil {
		if i := slices.IndexFunc(links, func(l Link) bool { return l.Index == f.LinkIndex }); i >= 0 {
			r.Dev = links[i].Name
		}
	}
	opts.FIBMatch = false
	if got, err := h.RouteGetWithOptions(dst, opts); err == nil && len(got) > 0 {
		if got[0].Src != nil {
			r.Src = got[0].Src.String()
		}
	} else if err != nil && r.Type == "unicast" {
		// The FIB has a route, but using it fails: say why.
		r.Err = routeErr(err)
	}
	return r
}

func routeErr(err error) string {
	var errno unix.Errno
	switch {
	case err == nil:
		return "the kernel returned no route"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

func routeType(t int) string {
	switch t {
	case unix.RTN_UNICAST:
		return "unicast"
	case unix.RTN_LOCAL:
		return "local"
	case unix.RTN_BROADCAST:
		return "broadcast"
	case unix.RTN_MULTICAST:
		return "multicast"
	case unix.RTN_BLACKHOLE:
		return "blackhole"
	case unix.RTN_UNREACHABLE:
		return "unreachable"
	case unix.RTN_PROHIBIT:
		return "prohibit"
	case unix.RTN_THROW:
		return "throw"
	}
	return fmt.Sprintf("type %d", t)
}

func (k *liveKernel) Neighbours(ns string) ([]Neighbour, error) {
	if n, ok := k.rec.Kernel.Neighbours[ns]; ok {
		return n, nil
	}
	h, err := k.handle(ns)
	if err != nil {
		return nil, err
	}
	list, err := netns.RetryDump(func() ([]netlink.Neigh, error) { return h.NeighList(0, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("namespace %q: list neighbours: %w", ns, err)
	}
	links, _ := k.Links(ns)
	var out []Neighbour
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		nb := Neighbour{IP: ip.Unmap(), State: neighState(n.State)}
		if len(n.HardwareAddr) == 6 {
			nb.MAC = n.HardwareAddr.String()
		}
		if i := slices.IndexFunc(links, func(l Link) bool { return l.Index == n.LinkIndex }); i >= 0 {
			nb.Dev = links[i].Name
		}
		out = append(out, nb)
	}
	k.mu.Lock()
	k.rec.Kernel.Neighbours[ns] = out
	k.mu.Unlock()
	return out, nil
}

func neighState(s int) string {
	switch {
	case s&netlink.NUD_PERMANENT != 0:
		return "permanent"
	case s&netlink.NUD_REACHABLE != 0:
		return "reachable"
	case s&netlink.NUD_STALE != 0:
		return "stale"
	case s&netlink.NUD_DELAY != 0:
		return "delay"
	case s&netlink.NUD_PROBE != 0:
		return "probe"
	case s&netlink.NUD_FAILED != 0:
		return "failed"
	case s&netlink.NUD_INCOMPLETE != 0:
		return "incomplete"
	case s&netlink.NUD_NOARP != 0:
		return "noarp"
	}
	return "none"
}

// replay answers from a recording alone.
type replay struct{ rec *Recording }

// Replay answers the analysis from what the recording holds; a question it
// holds no answer for gets an error saying so.
func (rec *Recording) Replay() Kernel { return replay{rec} }

func (r replay) Links(ns string) ([]Link, error) {
	links, ok := r.rec.Kernel.Links[ns]
	if !ok {
		return nil, fmt.Errorf("the recording holds no interfaces of %q", ns)
	}
	return links, nil
}

func (r replay) Route(ns string, q RouteQuery) Route {
	for _, a := range r.rec.Kernel.Routes {
		if a.Namespace == ns && a.Query == q {
			return a.Route
		}
	}
	return Route{Iif: q.Iif, Err: "not recorded"}
}

func (r replay) Neighbours(ns string) ([]Neighbour, error) {
	n, ok := r.rec.Kernel.Neighbours[ns]
	if !ok {
		return nil, fmt.Errorf("the recording holds no neighbours of %q", ns)
	}
	return n, nil
}

// RuleCount is an nftables rule that counts, drops or rejects: what it
// does to packets and how many it counted.
type RuleCount struct {
	Family  string `json:"family"`
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle"`
	Verdict string `json:"verdict"` // drop, reject, accept, jump <chain>, ... ("" for none)
	// Counted says the rule has a counter; Packets is what it counted.
	Counted bool   `json:"counted,omitempty"`
	Packets uint64 `json:"packets"`
	Comment string `json:"comment,omitempty"`
}

func (r RuleCount) String() string {
	s := fmt.Sprintf("table %s %s chain %s handle %d (%s)", r.Family, r.Table, r.Chain, r.Handle, r.Verdict)
	if r.Comment != "" {
		s += fmt.Sprintf(" comment %q", r.Comment)
	}
	return s
}

// ChainPolicy is a base chain whose policy drops what no rule accepts.
type ChainPolicy struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Chain  string `json:"chain"`
	Hook   string `json:"hook"`
}

// Firewall is what a namespace's nftables rules counted: every rule with a
// counter or that drops or rejects, and the base chains that drop by
// default.
type Firewall struct {
	Rules    []RuleCount   `json:"rules,omitempty"`
	Dropping []ChainPolicy `json:"dropping,omitempty"`
}

// readFirewall reads the counters of the namespace at path ns. A namespace
// without nftables rules has none; one whose rules cannot be read is
// reported by the error.
func readFirewall(ns string) (*Firewall, error) {
	f, err := os.Open(ns)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		return nil, fmt.Errorf("open nftables in %q: %w", ns, err)
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains in %q: %w", ns, err)
	}
	fw := &Firewall{}
	for _, ch := range chains {
		family := familyName(ch.Table.Family)
		if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop && ch.Hooknum != nil {
			fw.Dropping = append(fw.Dropping, ChainPolicy{Family: family, Table: ch.Table.Name, Chain: ch.Name, Hook: hookName(*ch.Hooknum)})
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("read nftables chain %q in %q: %w", ch.Name, ns, err)
		}
		for _, r := range rules {
			rc := RuleCount{Family: family, Table: ch.Table.Name, Chain: ch.Name, Handle: r.Handle}
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Counter:
					rc.Packets += e.Packets
					rc.Counted = true
				case *expr.Verdict:
					rc.Verdict = verdictName(e)
				case *expr.Reject:
					rc.Verdict = "reject"
				}
			}
			if rc.Counted || rc.Verdict == "drop" || rc.Verdict == "reject" {
				if comment, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok {
					rc.Comment = comment
				}
				fw.Rules = append(fw.Rules, rc)
			}
		}
	}
	return fw, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprintf("family %d", f)
}

func hookName(h nftables.ChainHook) string {
	switch h {
	case *nftables.ChainHookPrerouting:
		return "prerouting"
	case *nftables.ChainHookInput:
		return "input"
	case *nftables.ChainHookForward:
		return "forward"
	case *nftables.ChainHookOutput:
		return "output"
	case *nftables.ChainHookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook %d", h)
}

func verdictName(v *expr.Verdict) string {
	switch v.Kind {
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + v.Chain
	case expr.VerdictGoto:
		return "goto " + v.Chain
	case expr.VerdictContinue:
		return "continue"
	case expr.VerdictQueue:
		return "queue"
	case expr.VerdictStolen:
		return "stolen"
	}
	return fmt.Sprintf("verdict %d", v.Kind)
}
