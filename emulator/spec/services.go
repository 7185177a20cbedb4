package spec

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

// This file holds the lab's Kubernetes Services (`services:`) and its
// cluster DNS (`network.clusterDNS`): what they are in the model, how the
// YAML says them, and how every omitted value is filled in: cluster IPs
// from the service CIDR, node ports from 30000-32767, endpoints from the
// pods a selector matches.

// ServiceType is how far a service reaches.
type ServiceType string

const (
	// ServiceClusterIP is reachable inside the cluster, at its cluster IP.
	ServiceClusterIP ServiceType = "ClusterIP"
	// ServiceNodePort is a ClusterIP service that also answers on a port
	// of every node's address.
	ServiceNodePort ServiceType = "NodePort"
)

// Traffic policies and session affinities, spelled as in a Service.
const (
	PolicyCluster    = "Cluster" // NodePort traffic spreads over every endpoint, masqueraded
	PolicyLocal      = "Local"   // only the node's own endpoints; the client address is kept
	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"
)

// Defaults and ranges of Kubernetes' API server.
const (
	DefaultNamespace         = "default"
	NodePortMin, NodePortMax = 30000, 32767 // --service-node-port-range
	DefaultAffinityTimeout   = 10800        // sessionAffinityConfig.clientIP.timeoutSeconds: 3 hours
	MaxAffinityTimeout       = 86400
	MaxServices              = 5000 // a typo's guard; kube-proxy's rules grow with each
	maxEndpointsPerService   = 1000 // one EndpointSlice's worth
	kubernetesServiceOffset  = 1    // the kubernetes API service's address: the CIDR's first
	clusterDNSLabelKey       = "k8s-app"
	clusterDNSLabelValue     = "kube-dns"
)

// Cluster DNS, as kubeadm sets it up: the kube-dns service of namespace
// kube-system at the tenth address of the service CIDR, selecting the
// CoreDNS pods by their label k8s-app=kube-dns.
const (
	ClusterDNSPod       = "coredns" // the pod labctl adds on the first node
	ClusterDNSContainer = "coredns"
	ClusterDNSNamespace = "kube-system"
	ClusterDNSService   = "kube-dns"
	BuiltinDNS          = "dns" // the builtin DNS server the pod runs
	ClusterDomain       = "cluster.local"
)

// Service is a Kubernetes Service with everything filled in: its cluster
// IP, node ports and, per port, the endpoints kube-proxy sends traffic to.
type Service struct {
	Name      string        `json:"name"`
	Namespace string        `json:"namespace"` // "default" unless given
	Type      ServiceType   `json:"type"`
	ClusterIP netip.Addr    `json:"clusterIP"`
	Ports     []ServicePort `json:"ports"`
	// Selector picks the endpoints among the pods of the service's
	// namespace; nil when the file lists endpoints itself.
	Selector map[string]string `json:"selector"`
	// ExternalTrafficPolicy is Cluster or Local (NodePort only).
	ExternalTrafficPolicy string `json:"externalTrafficPolicy"`
	// SessionAffinity is None or ClientIP, with its timeout in seconds.
	SessionAffinity        string `json:"sessionAffinity"`
	AffinityTimeoutSeconds int    `json:"affinityTimeoutSeconds"`
	// System marks what labctl adds itself (the cluster DNS service).
	System bool `json:"system"`
}

// ServicePort is one port of a service and the endpoints serving it.
type ServicePort struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"` // TCP or UDP
	Port     int    `json:"port"`
	// TargetPort is the endpoints' port, or 0 when TargetPortName names a
	// container port, which each pod resolves for itself.
	TargetPort     int    `json:"targetPort"`
	TargetPortName string `json:"targetPortName"`
	NodePort       int    `json:"nodePort"` // NodePort services only
	// Endpoints serve this port, in address order.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is an address serving a service port, as an EndpointSlice
// lists it.
type Endpoint struct {
	IP   netip.Addr `json:"ip"`
	Port int        `json:"port"`
	Pod  string     `json:"pod"`  // "" for an address no pod of the lab has
	Node string     `json:"node"` // the pod's node: endpoints there are local to it
}

// TargetPortString is the target port as a Service spells it: a number, or
// a container port's name.
func (p ServicePort) TargetPortString() string {
	if p.TargetPortName != "" {
		return p.TargetPortName
	}
	return strconv.Itoa(p.TargetPort)
}

// KubeNamespace is the Kubernetes namespace of a pod: the pods a topology
// lists are in "default"; the cluster DNS pod is in kube-system.
func (p Pod) KubeNamespace() string {
	if p.Namespace == "" {
		return DefaultNamespace
	}
	return p.Namespace
}

// Service returns the service of the given namespace ("" for default) and
// name.
func (t *Topology) Service(namespace, name string) (Service, bool) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	for _, s := range t.Services {
		if s.Namespace == namespace && s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// KubeDNSAddress is where the cluster DNS service is, valid when the lab
// has cluster DNS: the tenth address of the service CIDR, as kubeadm
// chooses it (10.96.0.10 in 10.96.0.0/12).
func (t *Topology) KubeDNSAddress() netip.Addr {
	if !t.Network.ClusterDNS {
		return netip.Addr{}
	}
	return nthAddress(t.Network.ServiceCIDR, 10)
}

// nthAddress is the address n after p's network address.
func nthAddress(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// The raw form of services, as the YAML says them.
type rawService struct {
	at, name, namespace, typ, clusterIP, selector, endpoints *yaml.Node
	externalTrafficPolicy, sessionAffinity, affinityConfig   *yaml.Node
	ports                                                    []rawServicePort
	portsAt                                                  *yaml.Node
	path                                                     string
	ok                                                       bool
}

type rawServicePort struct {
	at, name, protocol, port, targetPort, nodePort *yaml.Node
	path                                           string
	ok                                             bool
}

// decodeServices reads `services:`, a list of Service-like mappings.
func (d *decoder) decodeServices(v *yaml.Node, t *rawTopology) {
	t.servicesAt = v
	if v.Kind == yaml.SequenceNode && len(v.Content) > MaxServices {
		d.Addf(v, "services", "%d services are more than labctl programs (at most %d)", len(v.Content), MaxServices)
		return
	}
	d.List(v, "services", func(i int, item *yaml.Node, path string) {
		s := rawService{at: item, path: path}
		s.ok = d.Mapping(item, path, yamldoc.Keys{
			"name":                  func(v *yaml.Node) { s.name = v },
			"namespace":             func(v *yaml.Node) { s.namespace = v },
			"type":                  func(v *yaml.Node) { s.typ = v },
			"clusterIP":             func(v *yaml.Node) { s.clusterIP = v },
			"selector":              func(v *yaml.Node) { s.selector = v },
			"endpoints":             func(v *yaml.Node) { s.endpoints = v },
			"externalTrafficPolicy": func(v *yaml.Node) { s.externalTrafficPolicy = v },
			"sessionAffinity":       func(v *yaml.Node) { s.sessionAffinity = v },
			"sessionAffinityConfig": func(v *yaml.Node) { s.affinityConfig = v },
			"ports": func(v *yaml.Node) {
				s.portsAt = v
				d.List(v, path+".ports", func(j int, item *yaml.Node, ppath string) {
					p := rawServicePort{at: item, path: ppath}
					p.ok = d.Mapping(item, ppath, yamldoc.Keys{
						"name":       func(v *yaml.Node) { p.name = v },
						"protocol":   func(v *yaml.Node) { p.protocol = v },
						"port":       func(v *yaml.Node) { p.port = v },
						"targetPort": func(v *yaml.Node) { p.targetPort = v },
						"nodePort":   func(v *yaml.Node) { p.nodePort = v },
					}, yamldoc.Reserved(map[string]string{"appProtocol": "application protocols (appProtocol)"}))
					s.ports = append(s.ports, p)
				})
			},
		}, yamldoc.Reserved(futureServiceKeys))
		t.services = append(t.services, s)
	})
}

// futureServiceKeys are Service fields labctl does not build (yet).
var futureServiceKeys = map[string]string{
	"externalIPs":              "external IPs",
	"loadBalancerIP":           "LoadBalancer services",
	"loadBalancerSourceRanges": "LoadBalancer services",
	"internalTrafficPolicy":    "internalTrafficPolicy",
	"ipFamilies":               "IPv6 services",
	"ipFamilyPolicy":           "IPv6 services",
	"clusterIPs":               "dual-stack services (use clusterIP)",
	"publishNotReadyAddresses": "readiness (every selected pod is an endpoint)",
}

// serviceNameRE is what Kubernetes accepts as a Service name (RFC 1035
// label: it becomes a DNS name and a part of environment variable names).
var serviceNameRE = lazyRegexp(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// dnsLabelRE is a namespace name and a port name (RFC 1123 label).
var dnsLabelRE = lazyRegexp(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// portNameRE is an IANA service name: what a named targetPort refers to.
var portNameRE = lazyRegexp(`^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$`)

// serviceBuilder checks the services of a topology whose nodes and pods
// are built, and fills in what they omit.
type serviceBuilder struct {
	*validator
	t *Topology
	// ipsOK: the service CIDR is good, so addresses are checked against it.
	ipsOK bool
	// takenIPs and nodePorts hold what explicit services claimed, for the
	// automatic ones to step around.
	takenIPs  map[netip.Addr]string
	nodePorts map[int]string // node port -> owner ("service \"x\" (path)")
	pods      []Pod
}

// buildServices is the last pass of validation: services need every pod's
// name, labels, address and ports. The cluster DNS service, when the lab
// has cluster DNS, comes first, as kubeadm creates it before any user's.
func (v *validator) buildServices(t *Topology, raw rawTopology, ok netCheck) {
	b := &serviceBuilder{validator: v, t: t, ipsOK: ok.service, takenIPs: map[netip.Addr]string{}, nodePorts: map[int]string{}, pods: t.Pods()}
	if t.Network.ClusterDNS && ok.service {
		dns := clusterDNSService(t)
		b.takenIPs[dns.ClusterIP] = "the cluster DNS service kube-system/kube-dns"
		t.Services = append(t.Services, dns)
	}
	if len(raw.services) == 0 {
		return
	}
	type pending struct {
		s   *Service
		raw rawService
	}
	var todo []pending
	seen := map[string]string{}
	// Pass 1: everything explicit, so that automatic values step around
	// what any service, earlier or later, asked for.
	for _, rs := range raw.services {
		if !rs.ok {
			continue
		}
		s, good := b.explicitService(rs, seen)
		if good {
			todo = append(todo, pending{s, rs})
		}
	}
	// Pass 2: automatic cluster IPs and node ports, in file order; then
	// endpoints.
	ips := b.ipAllocator()
	nextNodePort := NodePortMin
	for _, p := range todo {
		s := p.s
		if !s.ClusterIP.IsValid() && b.ipsOK {
			ip, found := ips()
			if !found {
				v.Addf(p.raw.at, p.raw.path+".clusterIP", "the service CIDR %s has no address left for this service", t.Network.ServiceCIDR)
				continue
			}
			s.ClusterIP = ip
		}
		for j := range s.Ports {
			sp := &s.Ports[j]
			if s.Type != ServiceNodePort || sp.NodePort != 0 {
				continue
			}
			for nextNodePort <= NodePortMax && b.nodePorts[nextNodePort] != "" {
				nextNodePort++
			}
			if nextNodePort > NodePortMax {
				v.Addf(p.raw.ports[j].at, p.raw.ports[j].path+".nodePort", "no node port is left in %d-%d", NodePortMin, NodePortMax)
				continue
			}
			sp.NodePort = nextNodePort
			b.nodePorts[nextNodePort] = fmt.Sprintf("service %q", s.Name)
		}
		b.endpoints(s, p.raw)
		t.Services = append(t.Services, *s)
	}
}

// clusterDNSService is kube-system/kube-dns as kubeadm creates it, less
// its metrics port (9153), which labctl's DNS server does not serve.
func clusterDNSService(t *Topology) Service {
	s := Service{
		Name: ClusterDNSService, Namespace: ClusterDNSNamespace, Type: ServiceClusterIP, System: true,
		ClusterIP: nthAddress(t.Network.ServiceCIDR, 10),
		Selector:  map[string]string{clusterDNSLabelKey: clusterDNSLabelValue},
		Ports: []ServicePort{
			{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: 53},
			{Name: "dns-tcp", Protocol: "TCP", Port: 53, TargetPort: 53},
		},
		ExternalTrafficPolicy: PolicyCluster, SessionAffinity: AffinityNone,
	}
	for _, pod := range t.Pods() {
		if pod.KubeNamespace() == s.Namespace && matches(pod.Labels, s.Selector) {
			for j := range s.Ports {
				s.Ports[j].Endpoints = append(s.Ports[j].Endpoints, Endpoint{IP: pod.IP, Port: 53, Pod: pod.Name, Node: pod.Node})
			}
		}
	}
	return s
}

// explicitService checks one service on its own and claims what it sets
// explicitly: its name in its namespace, its cluster IP and node ports.
func (b *serviceBuilder) explicitService(rs rawService, seen map[string]string) (*Service, bool) {
	s := &Service{Namespace: DefaultNamespace, Type: ServiceClusterIP, ExternalTrafficPolicy: PolicyCluster, SessionAffinity: AffinityNone}
	good := true
	if rs.name == nil {
		b.Missing(rs.at, rs.path, "name", "every service needs a name")
		good = false
	} else if name, ok := b.String(rs.name, rs.path+".name"); ok {
		if serviceNameRE().MatchString(name) {
			s.Name = name
		} else {
			b.Addf(rs.name, rs.path+".name", "service name %q must be at most 63 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (it becomes a DNS name)", name)
			good = false
		}
	} else {
		good = false
	}
	nsKnown := true
	if ns, ok := b.String(rs.namespace, rs.path+".namespace"); ok {
		if dnsLabelRE().MatchString(ns) {
			s.Namespace = ns
		} else {
			b.Addf(rs.namespace, rs.path+".namespace", "namespace %q must be at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", ns)
			good, nsKnown = false, false
		}
	} else if rs.namespace != nil {
		good, nsKnown = false, false
	}
	if s.Name != "" && nsKnown {
		key := s.Namespace + "/" + s.Name
		switch prev, dup := seen[key]; {
		case dup:
			b.Addf(rs.name, rs.path+".name", "service %s is already defined at %s", key, prev)
			good = false
		case b.t.Network.ClusterDNS && key == ClusterDNSNamespace+"/"+ClusterDNSService:
			b.Addf(rs.name, rs.path+".name", "service %s is the lab's cluster DNS (set network.clusterDNS: false to define your own)", key)
			good = false
		default:
			seen[key] = rs.path
		}
	}
	if typ, ok := b.String(rs.typ, rs.path+".type"); ok {
		switch ServiceType(typ) {
		case ServiceClusterIP, ServiceNodePort:
			s.Type = ServiceType(typ)
		case "LoadBalancer", "ExternalName":
			b.Addf(rs.typ, rs.path+".type", "type %s is not supported (use %s or %s)", typ, ServiceClusterIP, ServiceNodePort)
			good = false
		default:
			b.Addf(rs.typ, rs.path+".type", "unknown service type %q (use %q or %q)", typ, ServiceClusterIP, ServiceNodePort)
			good = false
		}
	}
	good = b.clusterIP(s, rs) && good
	good = b.policies(s, rs) && good
	good = b.ports(s, rs) && good
	return s, good
}

// clusterIP claims an explicit cluster IP: an address of the service CIDR
// that no other service has.
func (b *serviceBuilder) clusterIP(s *Service, rs rawService) bool {
	if rs.clusterIP == nil {
		return true
	}
	path := rs.path + ".clusterIP"
	if str, ok := b.String(rs.clusterIP, path); ok && (str == "None" || str == "") {
		b.Addf(rs.clusterIP, path, "headless services (clusterIP: None) are not supported: give an address of the service CIDR, or leave clusterIP out")
		return false
	}
	ip, ok := b.Addr(rs.clusterIP, path)
	if !ok {
		return false
	}
	cidr := b.t.Network.ServiceCIDR
	switch {
	case !b.ipsOK:
		return true // the CIDR is wrong (already reported)
	case !cidr.Contains(ip):
		b.Addf(rs.clusterIP, path, "%s is outside the service CIDR %s (network.serviceCIDR)", ip, cidr)
	case ip == cidr.Addr():
		b.Addf(rs.clusterIP, path, "%s is the network address of the service CIDR %s", ip, cidr)
	case ip == broadcast(cidr):
		b.Addf(rs.clusterIP, path, "%s is the broadcast address of the service CIDR %s", ip, cidr)
	default:
		if prev, taken := b.takenIPs[ip]; taken {
			b.Addf(rs.clusterIP, path, "%s is already the cluster IP of %s", ip, prev)
			return false
		}
		b.takenIPs[ip] = fmt.Sprintf("service %q (%s)", s.Name, path)
		s.ClusterIP = ip
		return true
	}
	return false
}

// ipAllocator hands out cluster IPs in address order from the CIDR's
// second address (its first is the kubernetes API service's in every
// cluster; labctl has none and leaves it free), stepping around explicit
// ones and kube-dns's. Kubernetes picks them at random; labctl's are the
// same for the same file.
func (b *serviceBuilder) ipAllocator() func() (netip.Addr, bool) {
	cidr := b.t.Network.ServiceCIDR
	next := nthAddress(cidr, kubernetesServiceOffset+1)
	last := broadcast(cidr)
	return func() (netip.Addr, bool) {
		for next.IsValid() && next.Less(last) {
			ip := next
			next = next.Next()
			if _, taken := b.takenIPs[ip]; !taken {
				b.takenIPs[ip] = "an automatic cluster IP"
				return ip, true
			}
		}
		return netip.Addr{}, false
	}
}

// policies reads externalTrafficPolicy and session affinity.
func (b *serviceBuilder) policies(s *Service, rs rawService) bool {
	good := true
	if p, ok := b.Enum(rs.externalTrafficPolicy, rs.path+".externalTrafficPolicy", "externalTrafficPolicy", PolicyCluster, PolicyLocal); ok {
		if p == PolicyLocal && s.Type != ServiceNodePort {
			b.Addf(rs.externalTrafficPolicy, rs.path+".externalTrafficPolicy", "externalTrafficPolicy Local applies to traffic from outside the cluster, which reaches only a NodePort service (add type: NodePort)")
			good = false
		}
		s.ExternalTrafficPolicy = p
	} else if rs.externalTrafficPolicy != nil {
		good = false
	}
	if a, ok := b.Enum(rs.sessionAffinity, rs.path+".sessionAffinity", "sessionAffinity", AffinityNone, AffinityClientIP); ok {
		s.SessionAffinity = a
	} else if rs.sessionAffinity != nil {
		good = false
	}
	if s.SessionAffinity == AffinityClientIP {
		s.AffinityTimeoutSeconds = DefaultAffinityTimeout
	}
	if rs.affinityConfig == nil {
		return good
	}
	path := rs.path + ".sessionAffinityConfig"
	if s.SessionAffinity != AffinityClientIP {
		b.Addf(rs.affinityConfig, path, "sessionAffinityConfig applies only to sessionAffinity: ClientIP")
		return false
	}
	var clientIP, timeout *yaml.Node
	b.Mapping(rs.affinityConfig, path, yamldoc.Keys{"clientIP": func(v *yaml.Node) { clientIP = v }})
	b.Mapping(clientIP, path+".clientIP", yamldoc.Keys{"timeoutSeconds": func(v *yaml.Node) { timeout = v }})
	if n, ok := b.integer(timeout, path+".clientIP.timeoutSeconds"); ok {
		if n < 1 || n > MaxAffinityTimeout {
			b.Addf(timeout, path+".clientIP.timeoutSeconds", "timeout %d is out of range (1 to %d seconds)", n, MaxAffinityTimeout)
			return false
		}
		s.AffinityTimeoutSeconds = n
	} else if timeout != nil {
		good = false
	}
	return good
}

// ports reads a service's ports: named when there are several, each port
// once per protocol, node ports only for NodePort services and unique
// across the lab.
func (b *serviceBuilder) ports(s *Service, rs rawService) bool {
	if len(rs.ports) == 0 {
		at := rs.portsAt
		if at == nil {
			at = rs.at
		}
		b.Addf(at, rs.path+".ports", "a service needs at least one port, e.g. ports: [{port: 80, targetPort: 8080}]")
		return false
	}
	good := true
	names := map[string]string{}
	ports := map[string]string{}
	ownNodePorts := map[int]string{} // node port -> protocol, within the service
	for _, rp := range rs.ports {
		if !rp.ok {
			good = false
			continue
		}
		p, ok := b.port(s, rp, len(rs.ports))
		if !ok {
			good = false
			continue
		}
		if p.Name != "" {
			if prev, dup := names[p.Name]; dup {
				b.Addf(rp.name, rp.path+".name", "port name %q is already used at %s", p.Name, prev)
				good = false
				continue
			}
			names[p.Name] = rp.path
		}
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if prev, dup := ports[key]; dup {
			b.Addf(rp.port, rp.path+".port", "port %s is already served at %s", key, prev)
			good = false
			continue
		}
		ports[key] = rp.path
		if p.NodePort != 0 {
			// The same node port may serve a port over TCP and over UDP
			// (as kube-dns's 53 does); otherwise it is the lab's once.
			if proto, own := ownNodePorts[p.NodePort]; own && proto != p.Protocol {
				// shared within the service: fine
			} else if prev := b.nodePorts[p.NodePort]; prev != "" {
				b.Addf(rp.nodePort, rp.path+".nodePort", "node port %d is already taken by %s", p.NodePort, prev)
				good = false
				continue
			}
			ownNodePorts[p.NodePort] = p.Protocol
			b.nodePorts[p.NodePort] = fmt.Sprintf("service %q (%s)", s.Name, rp.path+".nodePort")
		}
		s.Ports = append(s.Ports, p)
	}
	return good
}

// port reads one service port.
func (b *serviceBuilder) port(s *Service, rp rawServicePort, of int) (ServicePort, bool) {
	p := ServicePort{Protocol: "TCP"}
	good := true
	if name, ok := b.String(rp.name, rp.path+".name"); ok {
		if dnsLabelRE().MatchString(name) {
			p.Name = name
		} else {
			b.Addf(rp.name, rp.path+".name", "port name %q must be at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
			good = false
		}
	} else if rp.name == nil && of > 1 {
		b.Addf(rp.at, rp.path+".name", "a service with several ports must name each (name: http)")
		good = false
	}
	if proto, ok := b.String(rp.protocol, rp.path+".protocol"); ok {
		switch proto {
		case "TCP", "UDP":
			p.Protocol = proto
		case "SCTP":
			b.Addf(rp.protocol, rp.path+".protocol", "protocol SCTP is not supported (use TCP or UDP)")
			good = false
		default:
			b.Addf(rp.protocol, rp.path+".protocol", "protocol %q must be TCP or UDP", proto)
			good = false
		}
	}
	if rp.port == nil {
		b.Addf(rp.at, rp.path+".port", "a service port needs port: the port of the cluster IP")
		good = false
	} else if n, ok := b.integer(rp.port, rp.path+".port"); ok {
		if n < 1 || n > 65535 {
			b.Addf(rp.port, rp.path+".port", "port %d is out of range (1 to 65535)", n)
			good = false
		}
		p.Port = n
	} else {
		good = false
	}
	p.TargetPort = p.Port
	if rp.targetPort != nil {
		good = b.targetPort(&p, rp) && good
	}
	if rp.nodePort != nil {
		if s.Type != ServiceNodePort {
			b.Addf(rp.nodePort, rp.path+".nodePort", "nodePort needs type: NodePort")
			good = false
		} else if n, ok := b.integer(rp.nodePort, rp.path+".nodePort"); ok {
			if n < NodePortMin || n > NodePortMax {
				b.Addf(rp.nodePort, rp.path+".nodePort", "node port %d is outside the node port range %d-%d", n, NodePortMin, NodePortMax)
				good = false
			} else {
				p.NodePort = n
			}
		} else {
			good = false
		}
	}
	return p, good
}

// targetPort reads a target port: a number, or the name of a container
// port of the endpoints (an IANA service name: it has a letter).
func (b *serviceBuilder) targetPort(p *ServicePort, rp rawServicePort) bool {
	path := rp.path + ".targetPort"
	str, ok := b.String(rp.targetPort, path)
	if !ok {
		return false
	}
	if n, err := strconv.Atoi(str); err == nil {
		if n < 1 || n > 65535 {
			b.Addf(rp.targetPort, path, "target port %d is out of range (1 to 65535)", n)
			return false
		}
		p.TargetPort = n
		return true
	}
	if !portNameRE().MatchString(str) || !strings.ContainsAny(str, "abcdefghijklmnopqrstuvwxyz") || strings.Contains(str, "--") {
		b.Addf(rp.targetPort, path, "target port %q is neither a port number nor a container port name (at most 15 lower-case letters, digits and '-', with a letter)", str)
		return false
	}
	p.TargetPort, p.TargetPortName = 0, str
	return true
}

// endpoints fills in every port's endpoints: the pods of the service's
// namespace its selector matches, or the endpoints the file lists. A
// service that ends with none is legal, as in Kubernetes, and refuses
// connections: it gets a warning.
func (b *serviceBuilder) endpoints(s *Service, rs rawService) {
	switch {
	case rs.selector != nil && rs.endpoints != nil:
		b.Addf(rs.endpoints, rs.path+".endpoints", "give selector or endpoints, not both (with a selector, the endpoints are the pods it matches)")
		return
	case rs.selector != nil:
		b.selected(s, rs)
	case rs.endpoints != nil:
		b.listed(s, rs)
	default:
		b.Warnf(rs.at, rs.path, "service %q has neither a selector nor endpoints: it has no endpoints and refuses connections", s.Name)
		return
	}
	for j := range s.Ports {
		sort.Slice(s.Ports[j].Endpoints, func(a, c int) bool {
			return s.Ports[j].Endpoints[a].IP.Less(s.Ports[j].Endpoints[c].IP)
		})
	}
}

// selected makes the pods a selector matches the endpoints. A named target
// port is looked up in each pod's containers, with the port's protocol;
// pods without it do not serve that port.
func (b *serviceBuilder) selected(s *Service, rs rawService) {
	path := rs.path + ".selector"
	sel := b.labels(rs.selector, path)
	if len(sel) == 0 {
		if rs.selector.Kind == yaml.MappingNode && len(rs.selector.Content) == 0 {
			b.Addf(rs.selector, path, "an empty selector would match every pod; list the labels to match, e.g. {app: web}")
		}
		return
	}
	s.Selector = sel
	var matched []Pod
	for _, pod := range b.pods {
		if pod.KubeNamespace() == s.Namespace && matches(pod.Labels, sel) {
			matched = append(matched, pod)
		}
	}
	if len(matched) == 0 {
		b.Warnf(rs.selector, path, "selector %s matches no pod%s: service %q has no endpoints and refuses connections",
			formatLabelsSorted(sel), b.namespaceHint(s.Namespace), s.Name)
		return
	}
	if len(matched) > maxEndpointsPerService {
		b.Addf(rs.selector, path, "selector %s matches %d pods; a service takes at most %d endpoints", formatLabelsSorted(sel), len(matched), maxEndpointsPerService)
		return
	}
	for j := range s.Ports {
		sp := &s.Ports[j]
		for _, pod := range matched {
			port := sp.TargetPort
			if sp.TargetPortName != "" {
				port = namedPort(pod, sp.TargetPortName, sp.Protocol)
				if port == 0 {
					continue
				}
			}
			sp.Endpoints = append(sp.Endpoints, Endpoint{IP: pod.IP, Port: port, Pod: pod.Name, Node: pod.Node})
		}
		if len(sp.Endpoints) == 0 {
			b.Warnf(rs.ports[j].targetPort, rs.ports[j].path+".targetPort", "no pod the selector matches has a container port named %q (%s): port %d of service %q has no endpoints and refuses connections",
				sp.TargetPortName, sp.Protocol, sp.Port, s.Name)
		}
	}
}

// namespaceHint explains why the pods of a lab cannot match a service of
// another namespace than theirs.
func (b *serviceBuilder) namespaceHint(ns string) string {
	if ns == DefaultNamespace {
		return ""
	}
	return fmt.Sprintf(" in namespace %s (a selector matches pods of its service's namespace; the pods a topology lists are in %s)", ns, DefaultNamespace)
}

// namedPort is the number of pod's container port called name, with the
// given protocol, or 0.
func namedPort(pod Pod, name, protocol string) int {
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			if p.Name == name && p.Protocol == protocol {
				return p.ContainerPort
			}
		}
	}
	return 0
}

// listed reads the endpoints a file lists: pod names, or addresses
// ({ip: ...}), as a Service without a selector gets them from an
// EndpointSlice written by hand. An address a pod has is that pod.
func (b *serviceBuilder) listed(s *Service, rs rawService) {
	byName := map[string]Pod{}
	byIP := map[netip.Addr]Pod{}
	for _, pod := range b.pods {
		byName[pod.Name] = pod
		byIP[pod.IP] = pod
	}
	var eps []Endpoint
	seen := map[netip.Addr]string{}
	named := slices.ContainsFunc(s.Ports, func(p ServicePort) bool { return p.TargetPortName != "" })
	ok := b.List(rs.endpoints, rs.path+".endpoints", func(i int, item *yaml.Node, path string) {
		var podName, ip *yaml.Node
		if item.Kind == yaml.ScalarNode {
			podName = item
		} else if !b.Mapping(item, path, yamldoc.Keys{
			"pod": func(v *yaml.Node) { podName = v },
			"ip":  func(v *yaml.Node) { ip = v },
		}) {
			return
		}
		var ep Endpoint
		switch {
		case podName != nil && ip != nil:
			b.Addf(item, path, "give pod or ip, not both")
			return
		case podName != nil:
			name, good := b.String(podName, path)
			if !good {
				return
			}
			pod, found := byName[name]
			if !found {
				b.Addf(podName, path, "no pod is named %q", name)
				return
			}
			ep = Endpoint{IP: pod.IP, Pod: pod.Name, Node: pod.Node}
		case ip != nil:
			addr, good := b.Addr(ip, path+".ip")
			if !good {
				return
			}
			if named {
				b.Addf(ip, path+".ip", "%s is an address, and a named targetPort needs pods whose container ports name it (list the pod, or give targetPort a number)", addr)
				return
			}
			ep = Endpoint{IP: addr}
			if pod, found := byIP[addr]; found {
				ep.Pod, ep.Node = pod.Name, pod.Node
			} else if b.ipsOK && b.t.Network.ServiceCIDR.Contains(addr) {
				b.Addf(ip, path+".ip", "%s is in the service CIDR %s: an endpoint is where traffic goes after kube-proxy, never another service's address", addr, b.t.Network.ServiceCIDR)
				return
			}
		default:
			b.Addf(item, path, "an endpoint is a pod name, {pod: NAME} or {ip: ADDRESS}")
			return
		}
		if prev, dup := seen[ep.IP]; dup {
			b.Addf(item, path, "%s is already listed at %s", ep.IP, prev)
			return
		}
		seen[ep.IP] = path
		eps = append(eps, ep)
	})
	if !ok {
		return
	}
	if len(eps) > maxEndpointsPerService {
		b.Addf(rs.endpoints, rs.path+".endpoints", "%d endpoints are more than a service takes (at most %d)", len(eps), maxEndpointsPerService)
		return
	}
	if len(eps) == 0 {
		b.Warnf(rs.endpoints, rs.path+".endpoints", "service %q lists no endpoints: it refuses connections", s.Name)
	}
	for j := range s.Ports {
		sp := &s.Ports[j]
		for _, ep := range eps {
			ep.Port = sp.TargetPort
			if sp.TargetPortName != "" {
				if ep.Port = namedPort(byName[ep.Pod], sp.TargetPortName, sp.Protocol); ep.Port == 0 {
					continue
				}
			}
			sp.Endpoints = append(sp.Endpoints, ep)
		}
	}
}

// formatLabelsSorted writes labels as a selector, in a stable order.
func formatLabelsSorted(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// clusterDNSPod is the CoreDNS pod kubeadm's coredns deployment runs, as
// labctl adds it to the first node: namespace kube-system, label
// k8s-app=kube-dns, one container serving DNS on port 53 over UDP and TCP
// with labctl's builtin DNS server. kubeadm runs two replicas named
// coredns-<hash>-<hash>; labctl runs one, named coredns.
func clusterDNSPod() podTemplate {
	return podTemplate{
		labels:        map[string]string{clusterDNSLabelKey: clusterDNSLabelValue},
		restartPolicy: RestartAlways,
		containers: []Container{{
			Name: ClusterDNSContainer, Builtin: BuiltinDNS,
			Ports: []Port{{Name: "dns", ContainerPort: 53, Protocol: "UDP"}, {Name: "dns-tcp", ContainerPort: 53, Protocol: "TCP"}},
		}},
	}
}

// clusterDNSTemplate is the name under which the cluster DNS pod's
// template is kept among the deployments' (no deployment can have it: a
// deployment's name is a pod name, which has no spaces).
const clusterDNSTemplate = "cluster dns"

// addClusterDNSPod decides whether the lab has cluster DNS (network.
// clusterDNS, by default whenever it has services) and, if so, places the
// CoreDNS pod on the first node, after the pods the file gives it, so that
// theirs keep the addresses they would have without it.
func (v *validator) addClusterDNSPod(t *Topology, raw *rawTopology, ok netCheck) {
	on, set := v.Bool(raw.network.clusterDNS, "network.clusterDNS")
	if !set {
		on = raw.servicesAt != nil && raw.servicesAt.Kind == yaml.SequenceNode && len(raw.servicesAt.Content) > 0
	}
	if on && ok.service && t.Network.ServiceCIDR.Bits() > 28 {
		at := raw.network.serviceCIDR
		if at == nil {
			at = raw.network.clusterDNS
		}
		v.Addf(at, "network.serviceCIDR", "cluster DNS is at the tenth address of the service CIDR, which %s does not have (use a /28 or larger, or network.clusterDNS: false)", t.Network.ServiceCIDR)
		return
	}
	t.Network.ClusterDNS = on && ok.service
	if !t.Network.ClusterDNS || len(raw.nodes) == 0 || !raw.nodes[0].ok {
		return
	}
	for _, rn := range raw.nodes {
		for _, rp := range rn.pods {
			if rp.name != nil && rp.name.Value == ClusterDNSPod {
				v.Addf(rp.name, rp.path+".name", "pod name %q is the cluster DNS pod's, which labctl adds to the first node (rename the pod, or set network.clusterDNS: false)", ClusterDNSPod)
				return
			}
		}
	}
	if v.templates == nil {
		v.templates = map[string]podTemplate{}
	}
	v.templates[clusterDNSTemplate] = clusterDNSPod()
	at := raw.network.clusterDNS
	if at == nil {
		at = raw.servicesAt
	}
	raw.nodes[0].pods = append(raw.nodes[0].pods, rawPod{
		at: at, ok: true, path: "network.clusterDNS", generated: ClusterDNSPod, deployment: clusterDNSTemplate,
	})
}

// newWarnings returns the warnings of ws (in file order) that are not
// among prior, those found before: a topology written inline in a scenario
// shares its decoder with the scenario. Nil when there are none.
func newWarnings(ws, prior []yamldoc.Problem) []yamldoc.Problem {
	left := map[yamldoc.Problem]int{}
	for _, w := range prior {
		left[w]++
	}
	var out []yamldoc.Problem
	for _, w := range ws {
		if left[w] > 0 {
			left[w]--
			continue
		}
		out = append(out, w)
	}
	return out
}
