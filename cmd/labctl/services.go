package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
)

// writeServices renders a lab's services as `kubectl get services` and
// their endpoints would, one row per endpoint of each port, with the
// connections kube-proxy's rules sent to it (HITS, over every node; "-"
// when the counters were not read, as without root).
func writeServices(w io.Writer, s *lab.Status, wide bool) {
	if len(s.Services) == 0 {
		return
	}
	fmt.Fprintln(w)
	t := newTable(w, "")
	head := []string{"NAMESPACE", "SERVICE", "TYPE", "CLUSTER-IP", "PORT", "ENDPOINT", "POD", "NODE", "HITS"}
	if wide {
		head = append(head, "HITS-BY-NODE", "SELECTOR", "POLICY", "AFFINITY")
	}
	t.row(head...)
	for _, svc := range s.Services {
		for i, p := range svc.Ports {
			eps := p.Endpoints
			if len(eps) == 0 {
				eps = []lab.EndpointStatus{{}} // one row saying <none>
			}
			for j, e := range eps {
				row := make([]string, 5, len(head))
				if i == 0 && j == 0 {
					copy(row, []string{svc.Namespace, svc.Name, svc.Type, svc.ClusterIP})
				}
				if j == 0 {
					row[4] = portText(p)
				}
				if e.IP == "" {
					row = append(row, "<none>", "-", "-", "-")
				} else {
					row = append(row, fmt.Sprintf("%s:%d", e.IP, e.Port), dash(e.Pod), dash(e.Node), hitsText(e.Hits))
				}
				if wide {
					row = append(row, byNode(e))
					if i == 0 && j == 0 {
						row = append(row, selectorText(svc.Selector), svc.ExternalTrafficPolicy, svc.SessionAffinity)
					}
				}
				t.row(row...)
			}
		}
	}
	t.flush()
	for _, p := range s.ServiceProblems {
		fmt.Fprintf(w, "  endpoint counters unreadable: %s\n", p)
	}
}

// hitsText is an endpoint's count, or "-" when it was not read.
func hitsText(hits *uint64) string {
	if hits == nil {
		return "-"
	}
	return strconv.FormatUint(*hits, 10)
}

// portText is a service port as kubectl's PORT(S) column writes it,
// 8080/TCP or 80:30001/TCP for a node port, with the port's name.
func portText(p lab.ServicePortStatus) string {
	s := strconv.Itoa(p.Port)
	if p.NodePort != 0 {
		s += ":" + strconv.Itoa(p.NodePort)
	}
	s += "/" + p.Protocol
	if p.Name != "" {
		s += " (" + p.Name + ")"
	}
	return s
}

func selectorText(sel map[string]string) string {
	if len(sel) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + sel[k]
	}
	return strings.Join(keys, ",")
}

func byNode(e lab.EndpointStatus) string {
	switch {
	case e.Hits == nil:
		return "-"
	case len(e.HitsByNode) == 0:
		return "0"
	}
	nodes := make([]string, 0, len(e.HitsByNode))
	for n := range e.HitsByNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for i, n := range nodes {
		nodes[i] = fmt.Sprintf("%s=%d", n, e.HitsByNode[n])
	}
	return strings.Join(nodes, ",")
}

// clusterDNSText adds the cluster DNS address to the status header.
func clusterDNSText(t *spec.Topology) string {
	if !t.Network.ClusterDNS {
		return ""
	}
	return " (dns " + t.KubeDNSAddress().String() + ")"
}

// printWarnings shows what validation found legal but likely not meant,
// one per line, each pointing at the YAML like a problem.
func printWarnings(w io.Writer, t *spec.Topology) {
	for _, p := range t.Warnings {
		fmt.Fprintln(w, "warning: "+p.Error())
	}
}

// servicesText counts the services a topology declares for the validate
// summary; the cluster DNS service is told apart.
func servicesText(t *spec.Topology) string {
	n := 0
	for _, s := range t.Services {
		if !s.System {
			n++
		}
	}
	switch {
	case n == 0 && !t.Network.ClusterDNS:
		return ""
	case !t.Network.ClusterDNS:
		return fmt.Sprintf(", %d %s", n, plural(n, "service"))
	}
	return fmt.Sprintf(", %d %s and cluster DNS at %s", n, plural(n, "service"), t.KubeDNSAddress())
}
