package kubeproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Protocol is a service port's transport protocol, spelled as in a Service.
type Protocol string

// The protocols a service port can use.
const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

// ServiceType is how far a service reaches: inside the cluster only, or
// also on a port of every node.
type ServiceType string

// The service types labctl builds.
const (
	ClusterIP ServiceType = "ClusterIP"
	NodePort  ServiceType = "NodePort"
)

// TrafficPolicy is a service's externalTrafficPolicy.
type TrafficPolicy string

// The external traffic policies: Cluster spreads NodePort traffic over every
// endpoint and masquerades it; Local keeps the client's address and uses
// only the node's own endpoints.
const (
	PolicyCluster TrafficPolicy = "Cluster"
	PolicyLocal   TrafficPolicy = "Local"
)

// SessionAffinity is a service's sessionAffinity.
type SessionAffinity string

// The session affinities: None picks an endpoint per connection; ClientIP
// sends a client to the endpoint it reached last, until the timeout passes.
const (
	AffinityNone     SessionAffinity = "None"
	AffinityClientIP SessionAffinity = "ClientIP"
)

// DefaultAffinityTimeout is Kubernetes' sessionAffinityConfig.clientIP
// timeoutSeconds default: three hours.
const DefaultAffinityTimeout = 10800 * time.Second

// maxAffinityTimeout is the longest timeout the API server accepts: a day.
const maxAffinityTimeout = 86400 * time.Second

// Node is what kube-proxy and flannel know of the node they run on.
type Node struct {
	// Name decides which endpoints are local: those whose NodeName equals it.
	Name string
	// IPs are the node's own addresses, the primary first.
	IPs []netip.Addr
	// PodCIDR is this node's pod subnet (flannel's lease).
	PodCIDR netip.Prefix
	// ClusterCIDR holds every pod subnet. kube-proxy (detect-local-mode
	// ClusterCIDR, as kubeadm configures it) tells pod traffic by it.
	ClusterCIDR netip.Prefix
	// ServiceCIDR, when set, makes traffic to an unallocated service
	// address drop instead of leaving the node.
	ServiceCIDR netip.Prefix
	// MasqueradeOutside adds flannel's ip-masq rules: pod traffic to
	// destinations outside ClusterCIDR leaves with the node's address.
	MasqueradeOutside bool
	// NodePortAddresses limits which of the node's addresses accept
	// NodePort traffic (kube-proxy's --nodeport-addresses). Empty means
	// every local address, matched with `fib daddr type local`.
	NodePortAddresses []netip.Prefix
}

// Service is one Kubernetes Service as kube-proxy sees it.
type Service struct {
	Namespace string // "" means "default"
	Name      string
	Type      ServiceType // "" means ClusterIP
	ClusterIP netip.Addr
	Ports     []ServicePort
	// ExternalTrafficPolicy applies to NodePort traffic; "" means Cluster.
	ExternalTrafficPolicy TrafficPolicy
	// SessionAffinity is "" or None, or ClientIP.
	SessionAffinity SessionAffinity
	// AffinityTimeout is ClientIP's timeout; 0 means DefaultAffinityTimeout.
	AffinityTimeout time.Duration
}

// ServicePort is one port of a service, with the endpoints behind it (what
// kube-proxy reads from the service's EndpointSlices).
type ServicePort struct {
	Name       string   // required when the service has more than one port
	Protocol   Protocol // "" means TCP
	Port       uint16
	TargetPort uint16 // the endpoints' port when they give none; 0 means Port
	NodePort   uint16 // required for a NodePort service
	Endpoints  []Endpoint
}

// Endpoint is one address serving a service port.
type Endpoint struct {
	IP       netip.Addr
	Port     uint16 // 0 means the service port's TargetPort
	NodeName string // the node the endpoint runs on; it is local there
	// NotReady is EndpointConditions.ready inverted, so that the zero
	// value is a ready endpoint. kube-proxy never sends traffic to an
	// endpoint that is not ready.
	NotReady bool
}

// namespace returns the service's namespace with Kubernetes' default.
func (s *Service) namespace() string {
	if s.Namespace == "" {
		return "default"
	}
	return s.Namespace
}

// String names the service as kubectl does: namespace/name.
func (s *Service) String() string { return s.namespace() + "/" + s.Name }

func (s *Service) serviceType() ServiceType {
	if s.Type == "" {
		return ClusterIP
	}
	return s.Type
}

func (s *Service) externalPolicyLocal() bool { return s.ExternalTrafficPolicy == PolicyLocal }

func (s *Service) clientIPAffinity() bool { return s.SessionAffinity == AffinityClientIP }

func (s *Service) affinityTimeout() time.Duration {
	if s.AffinityTimeout == 0 {
		return DefaultAffinityTimeout
	}
	return s.AffinityTimeout
}

func (p *ServicePort) protocol() Protocol {
	if p.Protocol == "" {
		return TCP
	}
	return p.Protocol
}

func (p *ServicePort) targetPort() uint16 {
	if p.TargetPort == 0 {
		return p.Port
	}
	return p.TargetPort
}

// endpointPort is where an endpoint listens for this service port.
func (p *ServicePort) endpointPort(ep Endpoint) uint16 {
	if ep.Port == 0 {
		return p.targetPort()
	}
	return ep.Port
}

// dnsLabel is what Kubernetes allows in namespace, service and port names;
// it is also what makes them safe inside nftables chain names.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// problems collects every problem of an input, each prefixed by where it is.
type problems []error

func (p *problems) add(where, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

func (p problems) err() error { return errors.Join(p...) }

// validate reports every problem of the node and the services at once.
func validate(node *Node, services []Service) error {
	var p problems
	validateNode(&p, node)
	seen := map[string]bool{}
	nodePorts := map[string]string{}
	for i := range services {
		s := &services[i]
		where := fmt.Sprintf("service %q", s.String())
		if s.Name == "" {
			where = fmt.Sprintf("services[%d]", i)
		}
		if seen[s.String()] {
			p.add(where, "defined twice")
		}
		seen[s.String()] = true
		validateService(&p, where, node, s, nodePorts)
	}
	return p.err()
}

func validateNode(p *problems, n *Node) {
	where := fmt.Sprintf("node %q", n.Name)
	if n.Name == "" {
		p.add("node", "has no name")
	}
	if len(n.IPs) == 0 {
		p.add(where, "has no IP address")
	}
	for _, ip := range n.IPs {
		if !ip.Is4() {
			p.add(where, "address %s is not IPv4 (services are IPv4 only)", ip)
		}
	}
	for _, c := range []struct {
		name     string
		prefix   netip.Prefix
		optional bool
	}{{"pod CIDR", n.PodCIDR, false}, {"cluster CIDR", n.ClusterCIDR, false}, {"service CIDR", n.ServiceCIDR, true}} {
		switch {
		case !c.prefix.IsValid() && c.optional:
		case !c.prefix.IsValid():
			p.add(where, "has no %s", c.name)
		case !c.prefix.Addr().Is4():
			p.add(where, "%s %s is not IPv4", c.name, c.prefix)
		case c.prefix.Masked() != c.prefix:
			p.add(where, "%s %s has host bits set (did you mean %s?)", c.name, c.prefix, c.prefix.Masked())
		}
	}
	if n.PodCIDR.IsValid() && n.ClusterCIDR.IsValid() && !contains(n.ClusterCIDR, n.PodCIDR) {
		p.add(where, "pod CIDR %s is outside cluster CIDR %s", n.PodCIDR, n.ClusterCIDR)
	}
	for _, a := range n.NodePortAddresses {
		if !a.IsValid() || !a.Addr().Is4() {
			p.add(where, "nodePort address range %s is not an IPv4 prefix", a)
		}
	}
}

// contains reports whether inner lies wholly inside outer.
func contains(outer, inner netip.Prefix) bool {
	return inner.Bits() >= outer.Bits() && outer.Contains(inner.Addr())
}

func validateService(p *problems, where string, node *Node, s *Service, nodePorts map[string]string) {
	if !dnsLabel.MatchString(s.namespace()) {
		p.add(where, "namespace %q is not a DNS label (lower case letters, digits and '-')", s.namespace())
	}
	if !dnsLabel.MatchString(s.Name) {
		p.add(where, "name %q is not a DNS label (lower case letters, digits and '-')", s.Name)
	}
	typ := s.serviceType()
	if typ != ClusterIP && typ != NodePort {
		p.add(where, "type %q is not ClusterIP or NodePort", s.Type)
	}
	switch {
	case !s.ClusterIP.IsValid():
		p.add(where, "has no cluster IP")
	case !s.ClusterIP.Is4():
		p.add(where, "cluster IP %s is not IPv4", s.ClusterIP)
	case node.ServiceCIDR.IsValid() && !node.ServiceCIDR.Contains(s.ClusterIP):
		p.add(where, "cluster IP %s is outside the service CIDR %s", s.ClusterIP, node.ServiceCIDR)
	}
	switch s.ExternalTrafficPolicy {
	case "", PolicyCluster:
	case PolicyLocal:
		if typ != NodePort {
			p.add(where, "externalTrafficPolicy Local needs type NodePort (it only applies to traffic from outside the cluster)")
		}
	default:
		p.add(where, "externalTrafficPolicy %q is not Cluster or Local", s.ExternalTrafficPolicy)
	}
	switch s.SessionAffinity {
	case "", AffinityNone:
		if s.AffinityTimeout != 0 {
			p.add(where, "affinity timeout set without sessionAffinity ClientIP")
		}
	case AffinityClientIP:
		if t := s.AffinityTimeout; t < 0 || t > maxAffinityTimeout || t%time.Second != 0 {
			p.add(where, "affinity timeout %s is not a whole number of seconds between 1 and 86400", t)
		}
	default:
		p.add(where, "sessionAffinity %q is not None or ClientIP", s.SessionAffinity)
	}
	if len(s.Ports) == 0 {
		p.add(where, "has no ports")
	}
	names := map[string]bool{}
	ports := map[string]bool{}
	for i := range s.Ports {
		sp := &s.Ports[i]
		pw := fmt.Sprintf("%s: ports[%d]", where, i)
		if sp.Name == "" && len(s.Ports) > 1 {
			p.add(pw, "has no name (a service with several ports must name each)")
		}
		if sp.Name != "" && !dnsLabel.MatchString(sp.Name) {
			p.add(pw, "name %q is not a DNS label (lower case letters, digits and '-')", sp.Name)
		}
		if names[sp.Name] && sp.Name != "" {
			p.add(pw, "name %q is used twice", sp.Name)
		}
		names[sp.Name] = true
		proto := sp.protocol()
		if proto != TCP && proto != UDP {
			p.add(pw, "protocol %q is not TCP or UDP", sp.Protocol)
		}
		if sp.Port == 0 {
			p.add(pw, "has no port")
		}
		key := fmt.Sprintf("%s/%d", proto, sp.Port)
		if ports[key] {
			p.add(pw, "port %d/%s is used twice", sp.Port, proto)
		}
		ports[key] = true
		switch {
		case typ == NodePort && sp.NodePort == 0:
			p.add(pw, "has no nodePort (type NodePort needs one)")
		case typ != NodePort && sp.NodePort != 0:
			p.add(pw, "nodePort %d needs type NodePort", sp.NodePort)
		case sp.NodePort != 0:
			key := fmt.Sprintf("%s/%d", proto, sp.NodePort)
			if other, ok := nodePorts[key]; ok {
				p.add(pw, "nodePort %d/%s is taken by service %q", sp.NodePort, proto, other)
			}
			nodePorts[key] = s.String()
		}
		for j, ep := range sp.Endpoints {
			ew := fmt.Sprintf("%s: endpoints[%d]", pw, j)
			if !ep.IP.IsValid() || !ep.IP.Is4() {
				p.add(ew, "address %s is not IPv4", ep.IP)
			}
			if sp.endpointPort(ep) == 0 {
				p.add(ew, "has no port")
			}
		}
	}
}

// sortedServices returns the services in a stable order (namespace, name):
// kube-proxy walks a Go map, so its order is arbitrary; ours must not be,
// for golden files and for diffs between two renderings.
func sortedServices(services []Service) []Service {
	out := slices.Clone(services)
	slices.SortStableFunc(out, func(a, b Service) int {
		return strings.Compare(a.String(), b.String())
	})
	return out
}
