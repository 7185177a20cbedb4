package graph

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/emulator/spec"
)

// Service is a service as the text form lists it: its address and ports,
// and the pods (or addresses) behind them.
type Service struct {
	Name      string // namespace/name
	ClusterIP netip.Addr
	Ports     []string // 8080/TCP, 80:30001/TCP for a node port
	Endpoints []string // pod (or address), once each, in address order
}

func servicesOf(t *spec.Topology) []Service {
	var out []Service
	for _, s := range t.Services {
		gs := Service{Name: s.Namespace + "/" + s.Name, ClusterIP: s.ClusterIP}
		seen := map[netip.Addr]bool{}
		for _, p := range s.Ports {
			port := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
			if p.NodePort != 0 {
				port = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
			}
			gs.Ports = append(gs.Ports, port)
			for _, e := range p.Endpoints {
				if seen[e.IP] {
					continue
				}
				seen[e.IP] = true
				name := e.IP.String()
				if e.Pod != "" {
					name = e.Pod
				}
				gs.Endpoints = append(gs.Endpoints, name)
			}
		}
		out = append(out, gs)
	}
	return out
}

// servicesText lists the services under the topology: each on a line,
// with the pods kube-proxy's rules spread its connections over.
func (g *Graph) servicesText() string {
	if len(g.Services) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nservices\n")
	rows := make([][3]string, 0, len(g.Services))
	for _, s := range g.Services {
		to := "no endpoints: refuses connections"
		if len(s.Endpoints) > 0 {
			to = "→ " + strings.Join(s.Endpoints, ", ")
		}
		rows = append(rows, [3]string{s.Name, s.ClusterIP.String() + " " + strings.Join(s.Ports, ","), to})
	}
	writeRows(&b, "  ", rows)
	return b.String()
}
