package trace

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

// natLab is a client, a node that runs kube-proxy's rules for one service,
// and the service's endpoint, built by hand before services reach
// topologies:
//
//	client 10.131.1.2 ── 10.131.1.1 [node] 10.131.2.1 ── 10.131.2.2 server
//	outside 10.132.0.2 ── 10.132.0.1 [node]
//
// The cluster CIDR is 10.131.0.0/16, so the client is a pod to kube-proxy
// and keeps its address; "outside" is not, and kube-proxy masquerades it.
// Service web has cluster IP 10.133.0.10, port 80 (TCP and UDP) to the
// server's 8080; service empty (10.133.0.11) has no endpoints.
type natLab struct {
	client, outside, node, server Place
}

var (
	serviceIP = netip.MustParseAddr("10.133.0.10")
	serverIP  = netip.MustParseAddr("10.131.2.2")
	// emptyServiceIP is service empty's, which has no endpoints:
	// kube-proxy rejects what is sent to it.
	emptyServiceIP = netip.MustParseAddr("10.133.0.11")
)

func newNATLab(t *testing.T) *natLab {
	t.Helper()
	nstest.NeedRoot(t)
	base := nstest.Unique(nsPrefix) + "-"
	l := &natLab{}
	for _, p := range []struct {
		place *Place
		name  string
	}{{&l.client, "client"}, {&l.outside, "outside"}, {&l.node, "node"}, {&l.server, "server"}} {
		ns := nstest.AddNamespace(t, base+p.name)
		*p.place = Place{Name: p.name, Namespace: netns.Path(ns)}
	}
	n := nsName(l.node.Namespace)
	cmds := [][]string{
		{"link", "add", "eth0", "netns", nsName(l.client.Namespace), "type", "veth", "peer", "name", "vclient", "netns", n},
		{"link", "add", "eth0", "netns", nsName(l.outside.Namespace), "type", "veth", "peer", "name", "voutside", "netns", n},
		{"link", "add", "eth0", "netns", nsName(l.server.Namespace), "type", "veth", "peer", "name", "vserver", "netns", n},
	}
	for _, side := range []struct{ ns, dev, addr, gw string }{
		{nsName(l.client.Namespace), "eth0", "10.131.1.2/24", "10.131.1.1"},
		{nsName(l.outside.Namespace), "eth0", "10.132.0.2/24", "10.132.0.1"},
		{nsName(l.server.Namespace), "eth0", "10.131.2.2/24", "10.131.2.1"},
		{n, "vclient", "10.131.1.1/24", ""},
		{n, "voutside", "10.132.0.1/24", ""},
		{n, "vserver", "10.131.2.1/24", ""},
	} {
		cmds = append(cmds, []string{"-n", side.ns, "addr", "add", side.addr, "dev", side.dev}, []string{"-n", side.ns, "link", "set", side.dev, "up"})
		if side.gw != "" {
			cmds = append(cmds, []string{"-n", side.ns, "route", "add", "default", "via", side.gw})
		}
	}
	// A node's default route (to the outside world) covers the service
	// CIDR: a cluster IP with no endpoints must pass routing to reach
	// kube-proxy's reject.
	cmds = append(cmds, []string{"-n", n, "route", "add", "default", "via", "10.132.0.2"})
	for _, c := range cmds {
		nstest.IP(t, c...)
	}
	if err := netns.Do(l.node.Namespace, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	node := kubeproxy.Node{
		Name:        "node",
		IPs:         []netip.Addr{netip.MustParseAddr("10.131.1.1")},
		PodCIDR:     netip.MustParsePrefix("10.131.1.0/24"),
		ClusterCIDR: netip.MustParsePrefix("10.131.0.0/16"),
	}
	eps := []kubeproxy.Endpoint{{IP: serverIP, Port: 8080, NodeName: "other"}}
	rs, err := kubeproxy.Rules(node, []kubeproxy.Service{{
		Name:      "web",
		ClusterIP: serviceIP,
		Ports: []kubeproxy.ServicePort{
			{Name: "http", Protocol: kubeproxy.TCP, Port: 80, TargetPort: 8080, Endpoints: eps},
			{Name: "echo", Protocol: kubeproxy.UDP, Port: 80, TargetPort: 8080, Endpoints: eps},
		},
	}, {
		Name:      "empty",
		ClusterIP: emptyServiceIP,
		Ports:     []kubeproxy.ServicePort{{Protocol: kubeproxy.TCP, Port: 80}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := kubeproxy.Program(l.node.Namespace, rs); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *natLab) places() []Place { return []Place{l.client, l.outside, l.node, l.server} }

// serve answers TCP connections and echoes UDP datagrams on the server's
// port 8080 until the test ends.
func (l *natLab) serve(t *testing.T) {
	t.Helper()
	ln, err := probe.ListenTCP(l.server.Namespace, ":8080")
	if err != nil {
		t.Fatal(err)
	}
	uc, err := probe.ListenUDP(l.server.Namespace, ":8080")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 2048)
		for {
			n, from, err := uc.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			_, _ = uc.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		uc.Close()
		<-done
		<-done
	})
}

// A service's cluster IP is rewritten to the endpoint on the node (DNAT),
// and conntrack turns the answer's source back; traffic from outside the
// pod network is masqueraded too (SNAT). The trace follows the packets
// through both rewrites by what NAT leaves alone, and names each rewrite
// where it happened.
func TestNAT(t *testing.T) {
	l := newNATLab(t)
	l.serve(t)
	for _, tc := range []struct {
		name     string
		from     func() Place
		protocol Protocol
		request  []string // rewrites at the node, on the way there
		reply    []string // and on the way back
	}{
		{"pod client tcp", func() Place { return l.client }, TCP,
			[]string{"dnat 10.133.0.10:80 → 10.131.2.2:8080"},
			[]string{"snat 10.131.2.2:8080 → 10.133.0.10:80"}},
		{"pod client udp", func() Place { return l.client }, UDP,
			[]string{"dnat 10.133.0.10:80 → 10.131.2.2:8080"},
			[]string{"snat 10.131.2.2:8080 → 10.133.0.10:80"}},
		{"outside client tcp (masqueraded)", func() Place { return l.outside }, TCP,
			[]string{"dnat 10.133.0.10:80 → 10.131.2.2:8080", "snat 10.132.0.2:"},
			[]string{"dnat 10.131.2.1:", "snat 10.131.2.2:8080 → 10.133.0.10:80"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, rec := traceLive(t, Request{From: tc.from(), To: serviceIP, Probe: Probe{Protocol: tc.protocol, Port: 80}, Places: l.places()})
			text := j.Text(true)
			if j.Answer.Kind != AnswerReply || !j.Request.Arrived || j.Reply == nil || !j.Reply.Arrived {
				t.Fatalf("answer %q, request arrived %v, reply %v:\n%s", j.Answer.Kind, j.Request.Arrived, j.Reply, text)
			}
			places := func(p *Path) []string {
				var out []string
				for _, h := range p.Hops {
					out = append(out, h.Place+":"+h.Action)
				}
				return out
			}
			from := tc.from().Name
			if got, want := places(&j.Request), []string{from + ":sent", "node:routed", "server:delivered"}; !slices.Equal(got, want) {
				t.Errorf("request hops %v, want %v:\n%s", got, want, text)
			}
			if got, want := places(j.Reply), []string{"server:sent", "node:routed", from + ":delivered"}; !slices.Equal(got, want) {
				t.Errorf("reply hops %v, want %v:\n%s", got, want, text)
			}
			checkNAT(t, "request", j.Request.Hops[1].NAT, tc.request, text)
			checkNAT(t, "reply", j.Reply.Hops[1].NAT, tc.reply, text)
			for _, p := range []*Path{&j.Request, j.Reply} {
				for _, h := range []Hop{p.Hops[0], p.Hops[2]} {
					if len(h.NAT) > 0 {
						t.Errorf("%s rewrote %v: only the node NATs:\n%s", h.Place, h.NAT, text)
					}
				}
			}
			if *record != "" {
				saveRecording(t, rec, "nat-"+strings.ReplaceAll(strings.Fields(tc.name)[0]+"-"+string(tc.protocol), " ", "-"), l.renames())
			}
		})
	}
}

// traceLive runs a trace and keeps its recording, for -record.
func traceLive(t *testing.T, req Request) (*Journey, *Recording) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := Record(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	k := LiveKernel(rec)
	defer k.Close()
	return Analyze(rec, k), rec
}

// checkNAT compares rewrites with the expected ones, each a prefix (a
// masquerading node picks the port).
func checkNAT(t *testing.T, what string, got []Rewrite, want []string, text string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s rewrites %v, want %v:\n%s", what, got, want, text)
		return
	}
	for i, r := range got {
		if !strings.HasPrefix(r.String(), want[i]) {
			t.Errorf("%s rewrite %d is %q, want %q...:\n%s", what, i, r, want[i], text)
		}
	}
}

// renames maps the test's unique namespace names to the roles, so that a
// saved recording reads the same every time.
func (l *natLab) renames() []string {
	var out []string
	for _, p := range l.places() {
		out = append(out, nsName(p.Namespace), p.Name)
	}
	return out
}

// A probe a firewall stops: kube-proxy rejecting a service without
// endpoints (the node answers "port unreachable" for the service), and a
// rule of our own that drops and counts. The journey stops at the node for
// a drop rule, and says which.
func TestFirewallStops(t *testing.T) {
	l := newNATLab(t)
	dropUDP9(t, l.node.Namespace)
	for _, tc := range []struct {
		name     string
		to       netip.Addr
		probe    Probe
		answer   string
		evidence string
	}{
		{"reject", emptyServiceIP, Probe{Protocol: TCP, Port: 80}, AnswerError, "reject-chain"},
		{"drop", serverIP, Probe{Protocol: UDP, Port: 9}, AnswerNone, "counter +1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, rec := traceLive(t, Request{From: l.client, To: tc.to, Probe: tc.probe, Places: l.places(), Timeout: Duration(300 * time.Millisecond)})
			text := j.Text(false)
			s := j.Request.Stop
			if j.Answer.Kind != tc.answer || j.Request.Arrived || s == nil || s.Place != "node" || s.Reason != ReasonDropRule {
				t.Fatalf("answer %q (want %q), stop %+v, want node for a drop rule:\n%s", j.Answer.Kind, tc.answer, s, text)
			}
			if !strings.Contains(strings.Join(s.Evidence, "\n"), tc.evidence) {
				t.Errorf("evidence %q does not name %q:\n%s", s.Evidence, tc.evidence, text)
			}
			if *record != "" {
				saveRecording(t, rec, "firewall-"+tc.name, l.renames())
			}
		})
	}
}

// dropUDP9 adds, in the namespace at ns, a forward chain whose one rule
// counts and drops UDP to port 9: `nft add rule inet tracetest forward
// udp dport 9 counter drop`.
func dropUDP9(t *testing.T, ns string) {
	t.Helper()
	f, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	table := c.AddTable(&nftables.Table{Name: "tracetest", Family: nftables.TableFamilyINet})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{
		Name: "forward", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(9)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}
