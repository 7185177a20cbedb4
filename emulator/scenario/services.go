package scenario

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/yamldoc"
)

// Endpoint kinds of the lab's services.
const (
	// EndpointService is a service's cluster IP: `to: {service: web}`,
	// or kube-system/kube-dns, a service of another namespace.
	EndpointService = "service"
	// EndpointNodePort is a node's address at a NodePort service's node
	// port: `to: {nodePort: {node: node1, service: web}}`.
	EndpointNodePort = "nodePort"
)

// serviceEndpoint reads `service: NAME` (or NAMESPACE/NAME): the service's
// cluster IP, and its port when all its ports have one number.
func (d *decoder) serviceEndpoint(n *yaml.Node, path string) Endpoint {
	s, ok := d.service(n, path)
	if !ok {
		return Endpoint{Kind: EndpointService}
	}
	e := Endpoint{Kind: EndpointService, Service: s.Namespace + "/" + s.Name, Addr: s.ClusterIP}
	for i, p := range s.Ports {
		switch {
		case i == 0:
			e.Port = p.Port
		case p.Port != e.Port:
			e.Port = 0 // several ports: a check gives its own
			return e
		}
	}
	return e
}

// nodePortEndpoint reads `nodePort: {node: NODE, service: NAME, port:
// PORT}`: the node's address at the node port of the service's port
// (named, or by number; it may be left out when the service has one node
// port).
func (d *decoder) nodePortEndpoint(n *yaml.Node, path string) Endpoint {
	e := Endpoint{Kind: EndpointNodePort}
	var node, svc, port *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"node":    func(v *yaml.Node) { node = v },
		"service": func(v *yaml.Node) { svc = v },
		"port":    func(v *yaml.Node) { port = v },
	}) {
		return e
	}
	if node == nil {
		d.Missing(n, path, "node", "a node port endpoint needs node: the node whose address is dialled")
	} else if ne, ok := d.named(node, path+".node", EndpointNode); ok {
		e.Name, e.Addr = ne.Name, ne.Addr
	}
	if svc == nil {
		d.Missing(n, path, "service", "a node port endpoint needs service: a service of type NodePort")
		return e
	}
	s, ok := d.service(svc, path+".service")
	if !ok {
		return e
	}
	e.Service = s.Namespace + "/" + s.Name
	if s.Type != spec.ServiceNodePort {
		d.Addf(svc, path+".service", "service %s is of type %s and has no node port (it needs type: NodePort)", e.Service, s.Type)
		e.Addr = netip.Addr{}
		return e
	}
	var chosen []spec.ServicePort
	want, named := "", port != nil
	if named {
		want, named = d.String(port, path+".port")
	}
	for _, p := range s.Ports {
		if !named || p.Name == want || strconv.Itoa(p.Port) == want {
			chosen = append(chosen, p)
		}
	}
	distinct := map[int]bool{}
	for _, p := range chosen {
		distinct[p.NodePort] = true
	}
	switch {
	case named && len(chosen) == 0:
		var names []string
		for _, p := range s.Ports {
			names = append(names, fmt.Sprintf("%s (%d)", p.Name, p.Port))
		}
		d.Addf(port, path+".port", "service %s has no port %q (it has %s)", e.Service, want, strings.Join(names, ", "))
	case len(distinct) > 1:
		d.Addf(n, path+".port", "service %s has several node ports: say which with port: NAME", e.Service)
	case len(chosen) > 0:
		e.Port = chosen[0].NodePort
	}
	return e
}

// service looks a service up by NAME (namespace default) or
// NAMESPACE/NAME. Without a topology (already reported) nothing is found.
func (d *decoder) service(n *yaml.Node, path string) (spec.Service, bool) {
	s, ok := d.String(n, path)
	if !ok || d.topo == nil {
		return spec.Service{}, false
	}
	ns, name, qualified := strings.Cut(s, "/")
	if !qualified {
		ns, name = "", s
	}
	if svc, found := d.topo.Service(ns, name); found {
		return svc, true
	}
	var known []string
	for _, svc := range d.topo.Services {
		if svc.Namespace == spec.DefaultNamespace {
			known = append(known, svc.Name)
		} else {
			known = append(known, svc.Namespace+"/"+svc.Name)
		}
	}
	d.unknownName(n, path, "service", s, known)
	return spec.Service{}, false
}

// impliesPort reports whether an endpoint is of a kind that can give a
// check its port: a service, or a node port.
func impliesPort(e Endpoint) bool { return e.Kind == EndpointService || e.Kind == EndpointNodePort }
