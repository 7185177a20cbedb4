package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"strings"
)

// The names kube-proxy gives its per-service objects. A chain name is a
// prefix, then a hash of the rest (so that names differing in one digit
// still look different), then the service port spelled out:
//
//	service-ULMVA6XW-ns1/svc1/tcp/p80
//	endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
const (
	servicePrefix  = "service-"  // the Cluster policy chain: every endpoint
	localPrefix    = "local-"    // the Local policy chain: this node's endpoints
	externalPrefix = "external-" // NodePort traffic enters here
	endpointPrefix = "endpoint-" // one endpoint: mark hairpin, DNAT
	affinityPrefix = "affinity-" // ClientIP affinity: clients that chose this endpoint
)

// nameMax is nftables' limit on chain and set names (NFT_NAME_MAXLEN less
// its terminating zero); prefixMax leaves room for the longest prefix.
const (
	nameMax   = 256
	prefixMax = 16
)

// hashed puts the first 8 base32 characters of name's SHA-256 in front of it
// and truncates the result to fit nftables' limit after a prefix. Names of
// Kubernetes objects are DNS labels, so the result is a valid chain name.
func hashed(name string) string {
	sum := sha256.Sum256([]byte(name))
	out := base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if limit := nameMax - prefixMax; len(out) > limit {
		out = out[:limit-3] + "..."
	}
	return out
}

// portName is the "namespace/service/protocol/port-name" kube-proxy hashes
// for every chain of one service port.
func portName(s *Service, p *ServicePort) string {
	return fmt.Sprintf("%s/%s/%s/%s", s.namespace(), s.Name, strings.ToLower(string(p.protocol())), p.Name)
}

// servicePortString is how kube-proxy writes a service port in comments:
// namespace/name, then ":port-name" when the port has a name.
func servicePortString(s *Service, p *ServicePort) string {
	if p.Name == "" {
		return s.String()
	}
	return s.String() + ":" + p.Name
}

func serviceChain(s *Service, p *ServicePort) string {
	return servicePrefix + hashed(portName(s, p))
}

func localChain(s *Service, p *ServicePort) string {
	return localPrefix + hashed(portName(s, p))
}

func externalChain(s *Service, p *ServicePort) string {
	return externalPrefix + hashed(portName(s, p))
}

// endpointBase is the hashed name shared by an endpoint's chain and its
// affinity set: the service port, "__", then the endpoint as ip/port.
func endpointBase(s *Service, p *ServicePort, ep netip.AddrPort) string {
	return hashed(fmt.Sprintf("%s__%s/%d", portName(s, p), ep.Addr(), ep.Port()))
}

func endpointChain(s *Service, p *ServicePort, ep netip.AddrPort) string {
	return endpointPrefix + endpointBase(s, p, ep)
}

func affinitySet(s *Service, p *ServicePort, ep netip.AddrPort) string {
	return affinityPrefix + endpointBase(s, p, ep)
}

// EndpointOf reads back which service port and endpoint an endpoint chain
// serves from its name, as in "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80".
// ok is false for any other chain.
func EndpointOf(chain string) (servicePort string, proto Protocol, ep netip.AddrPort, ok bool) {
	rest, found := strings.CutPrefix(chain, endpointPrefix)
	if !found || len(rest) < 9 || rest[8] != '-' {
		return "", "", netip.AddrPort{}, false
	}
	svc, addr, found := strings.Cut(rest[9:], "__")
	if !found {
		return "", "", netip.AddrPort{}, false
	}
	parts := strings.Split(svc, "/") // namespace, service, protocol, port name
	ipText, portText, found := strings.Cut(addr, "/")
	if len(parts) != 4 || !found {
		return "", "", netip.AddrPort{}, false
	}
	ep, err := netip.ParseAddrPort(ipText + ":" + portText)
	if err != nil {
		return "", "", netip.AddrPort{}, false
	}
	servicePort = parts[0] + "/" + parts[1]
	if parts[3] != "" {
		servicePort += ":" + parts[3]
	}
	return servicePort, Protocol(strings.ToUpper(parts[2])), ep, true
}
