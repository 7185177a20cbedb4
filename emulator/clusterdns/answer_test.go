package clusterdns

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// labModel is the article's service lab with kubeadm's kube-dns.
var labModel = Model{
	Services: []Service{
		{Name: "kube-svc-1", ClusterIP: netip.MustParseAddr("10.96.0.2"),
			Ports: []Port{{Name: "http", Port: 8080}}},
		{Namespace: "kube-system", Name: "kube-dns", ClusterIP: netip.MustParseAddr("10.96.0.10"),
			Ports: []Port{{Name: "dns", Protocol: "UDP", Port: 53}, {Name: "dns-tcp", Protocol: "TCP", Port: 53}, {Name: "metrics", Port: 9153}}},
		{Namespace: "shop", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.3"), Ports: []Port{{Port: 80}}},
	},
	Pods: []Pod{{Name: "pod1a", IP: netip.MustParseAddr("10.244.1.2")}, {Namespace: "batch", Name: "job", IP: netip.MustParseAddr("10.244.2.7")}},
}

// rrs renders a section compactly: "name type data", TTLs and classes aside.
func rrs(section []dns.RR) string {
	var out []string
	for _, rr := range section {
		f := strings.Fields(rr.String())
		out = append(out, f[0]+" "+strings.Join(f[3:], " "))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func ask(z *zone, name string, t uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, t)
	return z.answer(q)
}

// TestAnswers covers the Kubernetes DNS schema as CoreDNS answers it.
func TestAnswers(t *testing.T) {
	z, err := build(labModel)
	if err != nil {
		t.Fatal(err)
	}
	const soa = "cluster.local. SOA ns.dns.cluster.local. hostmaster.cluster.local."
	for _, c := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string
		extra  string
		ns     string // the start of the authority section
	}{
		{"kube-svc-1.default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "kube-svc-1.default.svc.cluster.local. A 10.96.0.2", "", ""},
		{"KUBE-SVC-1.Default.SVC.cluster.local.", dns.TypeA, dns.RcodeSuccess, "KUBE-SVC-1.Default.SVC.cluster.local. A 10.96.0.2", "", ""},
		{"kube-dns.kube-system.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "kube-dns.kube-system.svc.cluster.local. A 10.96.0.10", "", ""},
		{"web.shop.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "web.shop.svc.cluster.local. A 10.96.0.3", "", ""},
		{"kube-svc-1.default.svc.cluster.local.", dns.TypeAAAA, dns.RcodeSuccess, "", "", soa},
		{"_http._tcp.kube-svc-1.default.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			"_http._tcp.kube-svc-1.default.svc.cluster.local. SRV 0 100 8080 kube-svc-1.default.svc.cluster.local.",
			"kube-svc-1.default.svc.cluster.local. A 10.96.0.2", ""},
		{"_dns._udp.kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			"_dns._udp.kube-dns.kube-system.svc.cluster.local. SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",
			"kube-dns.kube-system.svc.cluster.local. A 10.96.0.10", ""},
		{"_dns._tcp.kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeNameError, "", "", soa},
		{"_tcp.kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess, "", "", soa},
		{"kube-dns.kube-system.svc.cluster.local.", dns.TypeSRV, dns.RcodeSuccess,
			"kube-dns.kube-system.svc.cluster.local. SRV 0 50 53 kube-dns.kube-system.svc.cluster.local.; " +
				"kube-dns.kube-system.svc.cluster.local. SRV 0 50 9153 kube-dns.kube-system.svc.cluster.local.",
			"kube-dns.kube-system.svc.cluster.local. A 10.96.0.10", ""},
		{"10-244-1-2.default.pod.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10-244-1-2.default.pod.cluster.local. A 10.244.1.2", "", ""},
		{"10-1-2-3.anywhere.pod.cluster.local.", dns.TypeA, dns.RcodeSuccess, "10-1-2-3.anywhere.pod.cluster.local. A 10.1.2.3", "", ""},
		{"10-244-1.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, "", "", soa},
		{"pod1a.default.pod.cluster.local.", dns.TypeA, dns.RcodeNameError, "", "", soa},
		{"nothing.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, "", "", soa},
		{"kube-svc-1.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, "", "", soa},
		{"default.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "", "", soa},
		{"batch.svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "", "", soa},
		{"svc.cluster.local.", dns.TypeA, dns.RcodeSuccess, "", "", soa},
		{"kube-svc-1.default.svc.cluster.local.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, "", "", soa},
		{"cluster.local.", dns.TypeSOA, dns.RcodeSuccess, soa + " " + strconv.FormatUint(uint64(z.serial), 10) + " 7200 1800 86400 30", "", ""},
		{"cluster.local.", dns.TypeNS, dns.RcodeSuccess, "cluster.local. NS ns.dns.cluster.local.", "", ""},
		{"ns.dns.cluster.local.", dns.TypeA, dns.RcodeSuccess, "ns.dns.cluster.local. A 10.96.0.10", "", ""},
		{"dns-version.cluster.local.", dns.TypeTXT, dns.RcodeSuccess, `dns-version.cluster.local. TXT "1.1.0"`, "", ""},
		{"2.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "2.0.96.10.in-addr.arpa. PTR kube-svc-1.default.svc.cluster.local.", "", ""},
		{"9.9.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "", ""},
		{"example.com.", dns.TypeA, dns.RcodeRefused, "", "", ""},
		{"kube-svc-1.", dns.TypeA, dns.RcodeRefused, "", "", ""},
		{"local.", dns.TypeA, dns.RcodeRefused, "", "", ""},
	} {
		m := ask(z, c.name, c.qtype)
		if m.Rcode != c.rcode || rrs(m.Answer) != c.answer || rrs(m.Extra) != c.extra || !strings.HasPrefix(rrs(m.Ns), c.ns) {
			t.Errorf("%s %s: %s %q extra %q ns %q\nwant %s %q extra %q ns %q...", c.name, dns.TypeToString[c.qtype],
				dns.RcodeToString[m.Rcode], rrs(m.Answer), rrs(m.Extra), rrs(m.Ns),
				dns.RcodeToString[c.rcode], c.answer, c.extra, c.ns)
		}
		if c.rcode != dns.RcodeRefused && !m.Authoritative {
			t.Errorf("%s: not authoritative", c.name)
		}
	}
}

// TestMalformedQueries: what is not a single standard query gets an error.
func TestMalformedQueries(t *testing.T) {
	z, err := build(labModel)
	if err != nil {
		t.Fatal(err)
	}
	two := new(dns.Msg)
	two.Question = []dns.Question{{Name: "a.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, {Name: "b.cluster.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
	if m := z.answer(two); m.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %s", dns.RcodeToString[m.Rcode])
	}
	notify := new(dns.Msg)
	notify.SetNotify("cluster.local.")
	if m := z.answer(notify); m.Rcode != dns.RcodeNotImplemented {
		t.Errorf("notify: %s", dns.RcodeToString[m.Rcode])
	}
	chaos := new(dns.Msg)
	chaos.SetQuestion("kube-svc-1.default.svc.cluster.local.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	if m := z.answer(chaos); m.Rcode != dns.RcodeRefused {
		t.Errorf("class CHAOS: %s", dns.RcodeToString[m.Rcode])
	}
	edns := new(dns.Msg)
	edns.SetQuestion("kube-svc-1.default.svc.cluster.local.", dns.TypeA)
	edns.SetEdns0(1232, false)
	if m := z.answer(edns); m.IsEdns0() == nil || m.IsEdns0().UDPSize() != 1232 {
		t.Errorf("EDNS0 not echoed: %v", m.IsEdns0())
	}
}

func TestOtherDomainAndReload(t *testing.T) {
	s, err := NewServer(Model{Domain: "Lab.Example.", Services: labModel.Services[:1]})
	if err != nil {
		t.Fatal(err)
	}
	z := s.zone.Load()
	if m := ask(z, "kube-svc-1.default.svc.lab.example.", dns.TypeA); rrs(m.Answer) != "kube-svc-1.default.svc.lab.example. A 10.96.0.2" {
		t.Errorf("custom domain: %s", m)
	}
	if m := ask(z, "kube-svc-1.default.svc.cluster.local.", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("cluster.local under another domain: %s", dns.RcodeToString[m.Rcode])
	}
	if err := s.Reload(Model{Services: []Service{{Name: "Bad_Name", ClusterIP: netip.MustParseAddr("10.96.0.2")}}}); err == nil {
		t.Fatal("a bad model loaded")
	}
	if s.zone.Load() != z {
		t.Error("a bad model replaced the good one")
	}
	if err := s.Reload(labModel); err != nil {
		t.Fatal(err)
	}
	if m := ask(s.zone.Load(), "web.shop.svc.cluster.local.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("after reload: %s", m)
	}
}

func TestModelProblems(t *testing.T) {
	_, err := NewServer(Model{
		Domain: "bad domain",
		Services: []Service{
			{Name: "web", ClusterIP: netip.MustParseAddr("fd00::1"), Ports: []Port{{Name: "Http", Protocol: "SCTP"}}},
			{Name: "web"},
		},
		Pods: []Pod{{Name: "p", Namespace: "NS"}},
	})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`cluster domain "bad domain" is not a DNS name`,
		`service "default/web": cluster IP fd00::1 is not IPv4`,
		`service "default/web": ports[0]: name "Http" is not a DNS label`,
		`ports[0]: protocol "SCTP" is not TCP or UDP`,
		`ports[0]: has no port`,
		`service "default/web": defined twice`,
		`pods[0]: namespace "NS" is not a DNS label`,
		`pods[0] "p": address invalid IP is not IPv4`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
