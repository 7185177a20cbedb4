// Package clusterdns is a lab's cluster DNS, as kubeadm sets it up: a
// server answering the Kubernetes DNS schema the way CoreDNS's kubernetes
// plugin does (Corefile `kubernetes cluster.local in-addr.arpa ip6.arpa {
// pods insecure; ttl 30 }`), and the files the kubelet gives a pod to use
// it: /etc/resolv.conf for dnsPolicy ClusterFirst, and /etc/hosts.
//
// The server answers only for the cluster domain and for the reverse
// names of service addresses. It never forwards: a lab has no outside to
// forward to, so any other name is refused.
package clusterdns

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// DefaultDomain is the cluster domain kubeadm configures.
const DefaultDomain = "cluster.local"

// TTL is the time to live of every answer, in seconds: kubeadm's
// Corefile says `ttl 30`.
const TTL = 30

// Model is what the DNS server knows of the cluster.
type Model struct {
	Domain   string // "" means DefaultDomain
	Services []Service
	Pods     []Pod
}

// Service is a ClusterIP or NodePort service: it has a cluster IP.
type Service struct {
	Namespace string // "" means "default"
	Name      string
	ClusterIP netip.Addr
	Ports     []Port
}

// Port is a service port; only named ports get SRV records.
type Port struct {
	Name     string
	Protocol string // "TCP" or "UDP"; "" means TCP
	Port     uint16
}

// Pod is a pod. With `pods insecure` any dashed address gets an answer,
// so the pods matter only for the namespaces they make exist.
type Pod struct {
	Namespace string // "" means "default"
	Name      string
	IP        netip.Addr
}

func (m *Model) domain() string {
	if m.Domain == "" {
		return DefaultDomain
	}
	return strings.TrimSuffix(strings.ToLower(m.Domain), ".")
}

func orDefault(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func (p Port) protocol() string {
	if p.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(p.Protocol)
}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsDomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// validate reports every problem of the model at once.
func (m *Model) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !dnsDomain.MatchString(m.domain()) {
		add("cluster domain %q is not a DNS name", m.Domain)
	}
	seen := map[string]bool{}
	for i, s := range m.Services {
		where := fmt.Sprintf("service %q", orDefault(s.Namespace)+"/"+s.Name)
		if !dnsLabel.MatchString(s.Name) {
			add("services[%d]: name %q is not a DNS label", i, s.Name)
		}
		if !dnsLabel.MatchString(orDefault(s.Namespace)) {
			add("%s: namespace %q is not a DNS label", where, s.Namespace)
		}
		if seen[where] {
			add("%s: defined twice", where)
		}
		seen[where] = true
		if !s.ClusterIP.Is4() {
			add("%s: cluster IP %s is not IPv4", where, s.ClusterIP)
		}
		for j, p := range s.Ports {
			if p.Name != "" && !dnsLabel.MatchString(p.Name) {
				add("%s: ports[%d]: name %q is not a DNS label", where, j, p.Name)
			}
			if proto := p.protocol(); proto != "tcp" && proto != "udp" {
				add("%s: ports[%d]: protocol %q is not TCP or UDP", where, j, p.Protocol)
			}
			if p.Port == 0 {
				add("%s: ports[%d]: has no port", where, j)
			}
		}
	}
	for i, p := range m.Pods {
		if !dnsLabel.MatchString(orDefault(p.Namespace)) {
			add("pods[%d]: namespace %q is not a DNS label", i, p.Namespace)
		}
		if !p.IP.Is4() {
			add("pods[%d] %q: address %s is not IPv4", i, p.Name, p.IP)
		}
	}
	return errors.Join(errs...)
}

// KubeDNSAddress is the kube-dns service's address kubeadm picks: the
// tenth address of the service CIDR (10.96.0.10 in 10.96.0.0/12).
func KubeDNSAddress(serviceCIDR netip.Prefix) (netip.Addr, error) {
	if !serviceCIDR.Addr().Is4() || serviceCIDR.Bits() > 28 {
		return netip.Addr{}, fmt.Errorf("service CIDR %s has no tenth address (an IPv4 prefix of /28 or wider is needed)", serviceCIDR)
	}
	a := serviceCIDR.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	return a, nil
}
