package kubeproxy

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/internal/nstest"
)

// bigServices is n ClusterIP services of 3 endpoints each, spread over
// three nodes: the size the benchmark asks for is 1000.
func bigServices(n int) []Service {
	out := make([]Service, n)
	for i := range out {
		eps := make([]Endpoint, 3)
		for j := range eps {
			eps[j] = Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(j + 1), byte(2 + i%250)}), Port: uint16(8000 + i/250), NodeName: fmt.Sprintf("node%d", j+1)}
		}
		out[i] = Service{Name: fmt.Sprintf("svc-%04d", i), ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(1 + i/250), byte(1 + i%250)}),
			Ports: []ServicePort{{Name: "http", Port: 80, Endpoints: eps}}}
	}
	return out
}

// BenchmarkProgram1000Services programs 1000 services of 3 endpoints into
// one node namespace: Fresh into a namespace without our tables (as `up`
// does: a few transactions), Replace over the same ruleset (one
// transaction, as a live change does). Rules is timed apart (Build).
func BenchmarkProgram1000Services(b *testing.B) {
	nstest.NeedRoot(b)
	services := bigServices(1000)
	ns := netns.Path(nstest.AddNamespace(b, nstest.Unique(nsPrefix)+"-bench"))
	b.Run("Build", func(b *testing.B) {
		for b.Loop() {
			if _, err := Rules(labNode(1), services); err != nil {
				b.Fatal(err)
			}
		}
	})
	rs, err := Rules(labNode(1), services)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Fresh", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if err := Remove(ns); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := Program(ns, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Replace", func(b *testing.B) {
		for b.Loop() {
			if err := Program(ns, rs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkProgram10Nodes is the target: 1000 services of 3
// endpoints into 10 fresh node namespaces, the nodes in parallel, their
// rules built as a lab's plan builds them (RulesForNodes). One op is the
// whole cluster.
func BenchmarkProgram10Nodes(b *testing.B) {
	nstest.NeedRoot(b)
	services := bigServices(1000)
	base := nstest.Unique(nsPrefix)
	var nss []string
	for i := range 10 {
		nss = append(nss, netns.Path(nstest.AddNamespace(b, fmt.Sprintf("%s-n%d", base, i))))
	}
	for b.Loop() {
		b.StopTimer()
		for _, ns := range nss {
			if err := Remove(ns); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		nodes := make([]Node, len(nss))
		for i := range nodes {
			nodes[i] = labNode(1)
			nodes[i].Name = fmt.Sprintf("node%d", i+1)
		}
		rulesets, err := RulesForNodes(nodes, services)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(nss))
		for i, ns := range nss {
			wg.Go(func() { errs[i] = Program(ns, rulesets[i]) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkConnect is connection set-up plus one request and its answer,
// from pod d on node2 to pod b beside it: straight to the pod IP, and
// through a ClusterIP whose only endpoint is b (so both take the same
// path and the difference is kube-proxy's rules and conntrack's NAT),
// with 1000 other services programmed. Each op makes one connection of
// each kind, alternating, so that load on the machine hits both alike;
// it reports their times and the ratio ClusterIP / pod IP.
func BenchmarkConnect(b *testing.B) {
	l := newTestLab(b)
	l.serve(b, "b", 8080)
	only := Service{Name: "bench", ClusterIP: netip.MustParseAddr("10.96.0.20"),
		Ports: []ServicePort{{Port: 80, TargetPort: 8080, Endpoints: []Endpoint{{IP: podIPs["b"], NodeName: "node2"}}}}}
	l.program(b, append(bigServices(1000), only))
	var direct, service time.Duration
	n := 0
	for b.Loop() {
		for _, c := range []struct {
			addr string
			sum  *time.Duration
		}{{"10.244.2.2:8080", &direct}, {"10.96.0.20:80", &service}} {
			start := time.Now()
			if err := request(l.ns("d"), c.addr); err != nil {
				b.Fatal(err)
			}
			*c.sum += time.Since(start)
		}
		n++
	}
	b.ReportMetric(float64(direct.Nanoseconds())/float64(n), "podIP-ns/conn")
	b.ReportMetric(float64(service.Nanoseconds())/float64(n), "clusterIP-ns/conn")
	b.ReportMetric(float64(service)/float64(direct), "ratio")
}

// request connects, reads the server's one line, and closes.
func request(nsPath, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := probe.DialTCP(ctx, nsPath, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = bufio.NewReader(c).ReadString('\n')
	return err
}
