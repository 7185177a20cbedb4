package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// SchemaVersion is the Kubernetes DNS schema version the server answers
// for dns-version.<domain> (TXT), as the specification asks.
const SchemaVersion = "1.1.0"

// Server answers cluster DNS queries from a Model, over UDP and TCP.
// Reload swaps the model while it serves.
type Server struct {
	zone atomic.Pointer[zone]
}

// zone is one model, indexed for answering; it never changes once built.
type zone struct {
	domain     string // "cluster.local", lower case, no final dot
	serial     uint32
	records    map[string][]dns.RR // owner name (lower case, final dot) -> records
	namespaces map[string]bool
	nameserver netip.Addr // kube-system/kube-dns's address, for ns.dns.<domain>
}

// NewServer returns a server for the model, or every problem of it.
func NewServer(m Model) (*Server, error) {
	s := &Server{}
	if err := s.Reload(m); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload makes the server answer from m from now on; a bad model changes
// nothing.
func (s *Server) Reload(m Model) error {
	z, err := build(m)
	if err != nil {
		return fmt.Errorf("cluster dns: %w", err)
	}
	s.zone.Store(z)
	return nil
}

func build(m Model) (*zone, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	z := &zone{
		domain:     m.domain(),
		serial:     uint32(time.Now().Unix()),
		records:    map[string][]dns.RR{},
		namespaces: map[string]bool{"default": true, "kube-system": true},
	}
	for _, p := range m.Pods {
		z.namespaces[orDefault(p.Namespace)] = true
	}
	for _, svc := range m.Services {
		ns := orDefault(svc.Namespace)
		z.namespaces[ns] = true
		if ns == "kube-system" && svc.Name == "kube-dns" {
			z.nameserver = svc.ClusterIP
		}
		name := svc.Name + "." + ns + ".svc." + z.domain + "."
		z.add(&dns.A{Hdr: hdr(name, dns.TypeA), A: svc.ClusterIP.AsSlice()})
		for _, p := range svc.Ports {
			srv := &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: 0, Weight: 100, Port: p.Port, Target: name}
			z.add(srv) // CoreDNS answers SRV for the service name itself with every port
			if p.Name != "" {
				named := *srv
				named.Hdr = hdr("_"+p.Name+"._"+p.protocol()+"."+name, dns.TypeSRV)
				z.add(&named)
			}
		}
		rev, err := dns.ReverseAddr(svc.ClusterIP.String())
		if err == nil {
			z.add(&dns.PTR{Hdr: hdr(rev, dns.TypePTR), Ptr: name})
		}
	}
	z.weighSRV()
	if z.nameserver.IsValid() {
		z.add(&dns.A{Hdr: hdr("ns.dns."+z.domain+".", dns.TypeA), A: z.nameserver.AsSlice()})
	}
	z.add(&dns.TXT{Hdr: hdr("dns-version."+z.domain+".", dns.TypeTXT), Txt: []string{SchemaVersion}})
	z.add(&dns.NS{Hdr: hdr(z.domain+".", dns.TypeNS), Ns: "ns.dns." + z.domain + "."})
	z.add(z.soa())
	return z, nil
}

func hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: TTL}
}

// add adds rr to its owner name, unless the name has it already (a
// service's UDP and TCP ports 53 make the same SRV at the service's name).
func (z *zone) add(rr dns.RR) {
	name := rr.Header().Name
	if slices.ContainsFunc(z.records[name], func(x dns.RR) bool { return dns.IsDuplicate(x, rr) }) {
		return
	}
	z.records[name] = append(z.records[name], rr)
}

// weighSRV shares the weight among the SRV records of a name, as CoreDNS
// does: 100 split evenly, rounded down.
func (z *zone) weighSRV() {
	for _, rrs := range z.records {
		var srvs []*dns.SRV
		for _, rr := range rrs {
			if srv, ok := rr.(*dns.SRV); ok {
				srvs = append(srvs, srv)
			}
		}
		for _, srv := range srvs {
			srv.Weight = uint16(100 / len(srvs))
		}
	}
}

// soa is the zone's SOA, as CoreDNS's kubernetes plugin writes it.
func (z *zone) soa() *dns.SOA {
	return &dns.SOA{Hdr: hdr(z.domain+".", dns.TypeSOA), Ns: "ns.dns." + z.domain + ".",
		Mbox: "hostmaster." + z.domain + ".", Serial: z.serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: TTL}
}

// ServeDNS answers one query; it is the handler both listeners use.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	_ = w.WriteMsg(s.zone.Load().answer(r))
}

// answer builds the response to r.
func (z *zone) answer(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
	}
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	name := strings.ToLower(dns.Fqdn(q.Name))
	inZone := dns.IsSubDomain(z.domain+".", name)
	reverse := dns.IsSubDomain("in-addr.arpa.", name) || dns.IsSubDomain("ip6.arpa.", name)
	if q.Qclass != dns.ClassINET || !inZone && !reverse {
		// Nothing outside the cluster exists in a lab: no forwarding.
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	records, exists := z.lookup(name)
	for _, rr := range records {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			rr = dns.Copy(rr)
			rr.Header().Name = q.Name // answer in the case the client asked
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		if inZone {
			m.Ns = []dns.RR{z.soa()}
		}
		return m
	}
	// An SRV answer comes with the address of its target.
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			for _, a := range z.records[srv.Target] {
				if a.Header().Rrtype == dns.TypeA && !slices.ContainsFunc(m.Extra, func(x dns.RR) bool { return dns.IsDuplicate(x, a) }) {
					m.Extra = append(m.Extra, a)
				}
			}
		}
	}
	return m
}

// lookup returns the records of name, and whether the name exists at all
// (a name with no records of the asked type is NODATA, not NXDOMAIN).
func (z *zone) lookup(name string) ([]dns.RR, bool) {
	if rrs, ok := z.records[name]; ok {
		return rrs, true
	}
	labels := dns.SplitDomainName(strings.TrimSuffix(name, z.domain+"."))
	switch {
	case len(labels) == 0:
		return nil, false
	case len(labels) == 1 && (labels[0] == "svc" || labels[0] == "pod" || labels[0] == "dns"):
		return nil, true
	case len(labels) == 2 && (labels[1] == "svc" || labels[1] == "pod"):
		return nil, z.namespaces[labels[0]]
	case len(labels) == 3 && labels[2] == "pod":
		// pods insecure: a dashed IPv4 address in any namespace is an A
		// record of that address, whether a pod has it or not.
		ip, err := netip.ParseAddr(strings.ReplaceAll(labels[0], "-", "."))
		if err != nil || !ip.Is4() || strings.Count(labels[0], "-") != 3 {
			return nil, false
		}
		return []dns.RR{&dns.A{Hdr: hdr(name, dns.TypeA), A: ip.AsSlice()}}, true
	case len(labels) >= 3 && labels[len(labels)-1] == "svc":
		// An empty non-terminal: _tcp.<svc>.<ns>.svc exists if its SRV does.
		for owner := range z.records {
			if strings.HasSuffix(owner, "."+name) {
				return nil, true
			}
		}
	}
	return nil, false
}

// Serve answers queries arriving on pc (UDP) and ln (TCP), either of which
// may be nil, until ctx ends or a listener fails; it closes both. The
// sockets decide the network namespace: create them inside the pod's.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	var servers []*dns.Server
	if pc != nil {
		defer pc.Close()
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s})
	}
	if ln != nil {
		defer ln.Close()
		servers = append(servers, &dns.Server{Listener: ln, Handler: s})
	}
	if len(servers) == 0 {
		return errors.New("cluster dns: nothing to serve on")
	}
	errc := make(chan error, len(servers))
	var started sync.WaitGroup
	for _, srv := range servers {
		// Shutdown is only valid once a server has started: count a
		// server that fails to start as started too.
		var once sync.Once
		started.Add(1)
		srv.NotifyStartedFunc = func() { once.Do(started.Done) }
		go func() {
			err := srv.ActivateAndServe()
			once.Do(started.Done)
			errc <- err
		}()
	}
	var err error
	consumed := 0
	select {
	case <-ctx.Done():
	case err = <-errc:
		consumed = 1
	}
	started.Wait()
	stop, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(stop) // "not started" for one that already returned
	}
	for range len(servers) - consumed {
		<-errc
	}
	if err != nil {
		return fmt.Errorf("cluster dns: %w", err)
	}
	return nil
}

// ListenAndServe listens on addr, such as ":53", over UDP and TCP in the
// calling process's network namespace (a pod container's own), and serves
// until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return fmt.Errorf("cluster dns: %w", err)
	}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("cluster dns: %w", err)
	}
	return s.Serve(ctx, pc, ln)
}
