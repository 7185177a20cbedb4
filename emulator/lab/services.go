package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"sync"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/clusterdns"
	"github.com/labctl/labctl/emulator/conntrack"
	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// This file holds what a lab's services need from the library beyond the
// plan: the cluster DNS server's model, the host's bridge netfilter, the
// services and their counters in status, and a node's conntrack table.

// DNSModelFile is the file, in the state directory of a pod that runs the
// builtin DNS server, that holds what the server answers.
const DNSModelFile = "cluster-dns.json"

// DNSModel is what the lab's cluster DNS answers: every service with a
// cluster IP, and every pod.
func DNSModel(t *spec.Topology) clusterdns.Model {
	m := clusterdns.Model{Domain: spec.ClusterDomain}
	for _, s := range t.Services {
		cs := clusterdns.Service{Namespace: s.Namespace, Name: s.Name, ClusterIP: s.ClusterIP}
		for _, p := range s.Ports {
			cs.Ports = append(cs.Ports, clusterdns.Port{Name: p.Name, Protocol: p.Protocol, Port: uint16(p.Port)})
		}
		m.Services = append(m.Services, cs)
	}
	for _, p := range t.Pods() {
		m.Pods = append(m.Pods, clusterdns.Pod{Namespace: p.KubeNamespace(), Name: p.Name, IP: p.IP})
	}
	return m
}

// provideDNSModel writes the DNS model into the state directory of a pod
// with a builtin DNS container, and tells those containers where it is.
// Pods without one are left alone.
func (m Manager) provideDNSModel(rec *Record, ps *workload.PodSpec) error {
	var uses []int
	for i, c := range ps.Containers {
		if c.Builtin == builtin.DNS {
			uses = append(uses, i)
		}
	}
	if len(uses) == 0 {
		return nil
	}
	data, err := json.Marshal(DNSModel(rec.Topology))
	if err != nil {
		return err
	}
	d, err := m.state()
	if err != nil {
		return err
	}
	defer d.Close()
	dir := path.Join("pods", rec.Name, ps.Pod)
	if err := d.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod %q: %w", ps.Pod, err)
	}
	if err := d.WriteFile(path.Join(dir, DNSModelFile), data, 0o644); err != nil {
		return fmt.Errorf("pod %q: cluster DNS model: %w", ps.Pod, err)
	}
	file := d.Join(path.Join(dir, DNSModelFile))
	for _, i := range uses {
		ps.Containers[i].Env = append(ps.Containers[i].Env, workload.EnvVar{Name: builtin.DNSModelEnv, Value: file})
	}
	return nil
}

// checkServices: on bridge nodes, kube-proxy's rules need bridge netfilter
// (see plan.serviceOps), a sysctl that exists in a namespace only when the
// host has the br_netfilter module loaded. labctl does not load it: that
// would turn bridge netfilter on for the host's own bridges too.
func (h host) checkServices(t *spec.Topology, add func(string, string, ...any)) {
	if len(t.Services) == 0 || t.Calico() {
		return
	}
	if !h.exists("/proc/sys/net/bridge/bridge-nf-call-iptables") {
		add("services", "services need bridge netfilter in the nodes (so that a pod's connection to an endpoint on its own bridge is un-NATed), and this host has not loaded the br_netfilter module: run `modprobe br_netfilter` (kubeadm's preflight asks for it too); labctl does not load it itself, since that turns bridge netfilter on for the host's own bridges as well")
	}
}

// ServiceStatus is one service of a lab: what the topology made of it
// and, read live from the nodes, how many connections went to each
// endpoint.
type ServiceStatus struct {
	Namespace             string              `json:"namespace"`
	Name                  string              `json:"name"`
	Type                  string              `json:"type"`
	ClusterIP             string              `json:"clusterIP"`
	Ports                 []ServicePortStatus `json:"ports"`
	Selector              map[string]string   `json:"selector,omitempty"`
	ExternalTrafficPolicy string              `json:"externalTrafficPolicy"`
	SessionAffinity       string              `json:"sessionAffinity"`
	// System marks the cluster DNS service, which labctl adds itself.
	System bool `json:"system,omitempty"`
}

// ServicePortStatus is one port of a service.
type ServicePortStatus struct {
	Name       string           `json:"name,omitempty"`
	Protocol   string           `json:"protocol"`
	Port       int              `json:"port"`
	TargetPort string           `json:"targetPort"`
	NodePort   int              `json:"nodePort,omitempty"`
	Endpoints  []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint of a service port. Hits counts the
// connections (UDP flows) kube-proxy's rules sent to it, on every node
// together, with the count of each node in HitsByNode: the counter of the
// endpoint's chain in the node where the connection entered a service.
// Both are read only with StatusOptions.Live, as root; Hits is nil
// otherwise.
type EndpointStatus struct {
	IP         string            `json:"ip"`
	Port       int               `json:"port"`
	Pod        string            `json:"pod,omitempty"`
	Node       string            `json:"node,omitempty"`
	Hits       *uint64           `json:"hits,omitempty"` // nil: not read
	HitsByNode map[string]uint64 `json:"hitsByNode,omitempty"`
}

// servicesStatus lists the lab's services; live, it adds every node's
// endpoint counters, read in parallel. A node whose counters cannot be
// read is named in the returned problems.
func (m Manager) servicesStatus(r *Record, live bool, h Health) ([]ServiceStatus, []string) {
	t := r.Topology
	if len(t.Services) == 0 {
		return nil, nil
	}
	type key struct {
		servicePort string
		proto       string
		ep          netip.AddrPort
	}
	hits := map[key]map[string]uint64{}
	var problems []string
	if live {
		type result struct {
			node string
			hits []kubeproxy.EndpointHits
			err  error
		}
		results := make([]result, len(t.Nodes))
		var wg sync.WaitGroup
		for i, n := range t.Nodes {
			ns := plan.NamespaceName(r.Name, n.Name)
			results[i].node = n.Name
			if h.Namespaces[ns] != netns.Ours {
				continue
			}
			wg.Go(func() {
				results[i].hits, results[i].err = kubeproxy.Counters(netns.Path(ns))
			})
		}
		wg.Wait()
		for _, res := range results {
			if res.err != nil {
				problems = append(problems, fmt.Sprintf("node %q: %v", res.node, res.err))
				continue
			}
			for _, eh := range res.hits {
				if eh.Packets == 0 {
					continue
				}
				k := key{eh.ServicePort, string(eh.Protocol), eh.Endpoint}
				if hits[k] == nil {
					hits[k] = map[string]uint64{}
				}
				hits[k][res.node] += eh.Packets
			}
		}
	}
	out := make([]ServiceStatus, 0, len(t.Services))
	for _, s := range t.Services {
		ss := ServiceStatus{
			Namespace: s.Namespace, Name: s.Name, Type: string(s.Type), ClusterIP: s.ClusterIP.String(),
			Selector: s.Selector, ExternalTrafficPolicy: s.ExternalTrafficPolicy, SessionAffinity: s.SessionAffinity, System: s.System,
		}
		for _, p := range s.Ports {
			ps := ServicePortStatus{Name: p.Name, Protocol: p.Protocol, Port: p.Port, TargetPort: p.TargetPortString(), NodePort: p.NodePort,
				Endpoints: []EndpointStatus{}}
			sp := s.Namespace + "/" + s.Name
			if p.Name != "" {
				sp += ":" + p.Name
			}
			for _, e := range p.Endpoints {
				es := EndpointStatus{IP: e.IP.String(), Port: e.Port, Pod: e.Pod, Node: e.Node}
				if live {
					byNode := hits[key{sp, p.Protocol, netip.AddrPortFrom(e.IP, uint16(e.Port))}]
					var sum uint64
					for _, n := range byNode {
						sum += n
					}
					es.Hits, es.HitsByNode = &sum, byNode
				}
				ps.Endpoints = append(ps.Endpoints, es)
			}
			ss.Ports = append(ss.Ports, ps)
		}
		out = append(out, ss)
	}
	return out, problems
}

// Conntrack lists the connection tracking table of a node of a lab, as
// `conntrack -L` in the node's namespace does: each flow's original tuple
// and the reply tuple, where NAT shows. It needs root.
func (m Manager) Conntrack(labName, node string) (Target, []conntrack.Flow, error) {
	t, err := m.Resolve(labName, node, "")
	if err != nil {
		return Target{}, nil, err
	}
	if t.Role != plan.RoleNode && t.Role != plan.RolePod {
		return t, nil, fmt.Errorf("%s has no connection tracking table of interest (give a node or a pod): %w", t, ErrNotFound)
	}
	flows, err := conntrack.List(t.NamespacePath())
	if err != nil {
		return t, nil, fmt.Errorf("%s: %w", t, err)
	}
	return t, flows, nil
}
