package clusterdns

import (
	"fmt"
	"net/netip"
	"strings"
)

// ResolvConf is a pod's /etc/resolv.conf for dnsPolicy ClusterFirst: the
// kubelet asks the runtime for the cluster DNS server, the search list of
// the pod's namespace and ndots:5, and containerd writes them in this
// order. The node's own search domains would follow the cluster's; lab
// nodes have none. An empty namespace means "default", an empty domain
// DefaultDomain.
func ResolvConf(namespace string, nameserver netip.Addr, domain string) string {
	if domain == "" {
		domain = DefaultDomain
	}
	ns := orDefault(namespace)
	return fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n", ns, domain, domain, domain, nameserver)
}

// HostAlias is an entry of a pod's spec.hostAliases.
type HostAlias struct {
	IP        netip.Addr
	Hostnames []string
}

// HostsFile is what the kubelet's /etc/hosts for a pod is made of.
type HostsFile struct {
	PodIPs    []netip.Addr
	Hostname  string // spec.hostname, or the pod's name
	Subdomain string // spec.subdomain; with it the pod gets a fully qualified name
	Namespace string // "" means "default"
	Domain    string // "" means DefaultDomain
	Aliases   []HostAlias
}

// Hosts is a pod's /etc/hosts as the kubelet writes it for a pod outside
// the host network: its header, the localhost lines, a line for each pod
// address, and the host aliases.
func Hosts(h HostsFile) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range h.PodIPs {
		if h.Subdomain != "" {
			domain := h.Domain
			if domain == "" {
				domain = DefaultDomain
			}
			fqdn := fmt.Sprintf("%s.%s.%s.svc.%s", h.Hostname, h.Subdomain, orDefault(h.Namespace), domain)
			fmt.Fprintf(&b, "%s\t%s\t%s\n", ip, fqdn, h.Hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, h.Hostname)
		}
	}
	if len(h.Aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range h.Aliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.String()
}
