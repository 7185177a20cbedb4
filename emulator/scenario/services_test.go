package scenario

import (
	"net/netip"
	"testing"
)

// TestServiceEndpoints: a service resolves to its cluster IP (and its port
// when it has one number), a node port to the node's address and the node
// port; checks take the implied port unless they give one.
func TestServiceEndpoints(t *testing.T) {
	src := `title: services
topology: testdata/services-lab.yaml
sections:
  - name: s
    checks:
      - {id: by-name, http: {from: pod1, to: {service: web-np}}}
      - {id: given-port, http: {from: pod1, to: {service: web}, port: 81, path: /x}}
      - {id: dns, udp: {from: pod1, to: {service: kube-system/kube-dns}, payload: x}}
      - {id: node-port, tcp: {from: pod1, to: {nodePort: {node: node2, service: web-np}}}}
      - {id: node-port-named, http: {from: node1, to: {nodePort: {node: node1, service: web-np, port: http}}}}
`
	s, err := Parse("inline.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   string
		to   Endpoint
		port int
		url  string
		text string
	}{
		{id: "by-name", to: Endpoint{Kind: EndpointService, Service: "default/web-np", Addr: addr("10.96.0.2"), Port: 80},
			url: "http://10.96.0.2/", text: "service default/web-np"},
		{id: "given-port", to: Endpoint{Kind: EndpointService, Service: "default/web", Addr: addr("10.96.0.20")},
			url: "http://10.96.0.20:81/x"},
		{id: "dns", to: Endpoint{Kind: EndpointService, Service: "kube-system/kube-dns", Addr: addr("10.96.0.10"), Port: 53}, port: 53},
		{id: "node-port", to: Endpoint{Kind: EndpointNodePort, Name: "node2", Service: "default/web-np", Addr: addr("10.30.45.200"), Port: 30001},
			port: 30001, text: "node2's node port of service default/web-np"},
		{id: "node-port-named", to: Endpoint{Kind: EndpointNodePort, Name: "node1", Service: "default/web-np", Addr: addr("10.30.45.100"), Port: 30001},
			url: "http://10.30.45.100:30001/"},
	} {
		var c *Check
		for _, x := range s.Checks() {
			if x.ID == tc.id {
				c = x
			}
		}
		if c == nil {
			t.Fatalf("no check %s", tc.id)
		}
		var to Endpoint
		port, url := 0, ""
		switch {
		case c.HTTP != nil:
			to, url = c.HTTP.To, c.HTTP.URL
		case c.TCP != nil:
			to, port = c.TCP.To, c.TCP.Port
		case c.UDP != nil:
			to, port = c.UDP.To, c.UDP.Port
		}
		if to != tc.to || port != tc.port || url != tc.url {
			t.Errorf("%s: to %+v port %d url %q; want %+v port %d url %q", tc.id, to, port, url, tc.to, tc.port, tc.url)
		}
		if tc.text != "" && to.String() != tc.text {
			t.Errorf("%s: names its endpoint %q, want %q", tc.id, to.String(), tc.text)
		}
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
