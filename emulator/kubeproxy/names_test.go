package kubeproxy

import (
	"net/netip"
	"strings"
	"testing"
)

// TestNamesMatchKubeProxy checks our chain names against names kube-proxy's
// own tests expect, so a student can look one up in either.
func TestNamesMatchKubeProxy(t *testing.T) {
	svc := func(ns, name string) *Service { return &Service{Namespace: ns, Name: name} }
	p80 := &ServicePort{Name: "p80"}
	ep := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	for _, c := range []struct{ got, want string }{
		{serviceChain(svc("ns1", "svc1"), p80), "service-ULMVA6XW-ns1/svc1/tcp/p80"},
		{serviceChain(svc("ns2", "svc2"), p80), "service-42NFTM6N-ns2/svc2/tcp/p80"},
		{externalChain(svc("ns2", "svc2"), p80), "external-42NFTM6N-ns2/svc2/tcp/p80"},
		{localChain(svc("ns2", "svc2"), p80), "local-42NFTM6N-ns2/svc2/tcp/p80"},
		{endpointChain(svc("ns1", "svc1"), p80, ep("10.180.0.1:80")), "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
		{endpointChain(svc("ns4", "svc4"), p80, ep("10.180.0.5:80")), "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"},
		{affinitySet(svc("ns5", "svc5"), p80, ep("10.180.0.3:80")), "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func TestHashedTruncatesLongNames(t *testing.T) {
	long := strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63) + "/tcp/" + strings.Repeat("c", 63) + "__10.1.2.3/8080" + strings.Repeat("x", 60)
	got := endpointPrefix + hashed(long)
	if len(got) > nameMax {
		t.Errorf("name of %d bytes, over nftables' %d", len(got), nameMax)
	}
	if !strings.HasSuffix(got, "...") {
		t.Errorf("a truncated name should end in ...: %s", got)
	}
}

func TestEndpointOf(t *testing.T) {
	for _, c := range []struct {
		chain, svc string
		proto      Protocol
		ep         string
		ok         bool
	}{
		{"endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80", "ns1/svc1:p80", TCP, "10.180.0.1:80", true},
		{"endpoint-ABCDEFGH-default/kube-dns/udp/__10.244.1.2/53", "default/kube-dns", UDP, "10.244.1.2:53", true},
		{"service-ULMVA6XW-ns1/svc1/tcp/p80", "", "", "", false},
		{"endpoint-short", "", "", "", false},
		{"endpoint-ABCDEFGH-ns/svc/tcp/p__10.1.2.3", "", "", "", false},
	} {
		svc, proto, ep, ok := EndpointOf(c.chain)
		if ok != c.ok || svc != c.svc || proto != c.proto || (ok && ep.String() != c.ep) {
			t.Errorf("EndpointOf(%q) = %q %q %v %v, want %q %q %s %v", c.chain, svc, proto, ep, ok, c.svc, c.proto, c.ep, c.ok)
		}
	}
}
