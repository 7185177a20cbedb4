package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
)

// The services table (issue 11 item 8): what a ClusterIP costs a
// connection, and what kube-proxy's rules cost to program and to bring up.

// Targets of issue 11.
const (
	connectRatioTarget = 1.2             // ClusterIP vs pod IP, connect + one request
	programTarget      = 1 * time.Second // 1000 services × 3 endpoints into 10 nodes
)

type servicesResult struct {
	services, nodes, endpoints int
	conns                      int
	direct, viaService         []time.Duration // per connection: connect, request, answer
	fresh, replace             []time.Duration // programming every node: new tables, replaced tables
	upWith, upWithout          []time.Duration // labctl's own "is up in"
	err                        error
}

// servicesBench measures, with n services of 3 endpoints:
//   - connection set-up plus one request and its answer from pod c to the
//     web server in pod a on the other node, straight to a's pod IP and
//     through a ClusterIP whose one endpoint is a, alternating, with the n
//     services programmed in both nodes;
//   - programming the n services into 10 node namespaces at once, as `up`
//     does (fresh tables), and replacing them (one batch per node);
//   - `labctl up` of a 10-node lab with the n services and without any.
func (b *bench) servicesBench(ctx context.Context, n, conns, runs int) *servicesResult {
	r := &servicesResult{services: n, nodes: 10, endpoints: 3, conns: conns}
	fmt.Fprintf(os.Stderr, "labbench: services, connections (%d of each kind)\n", conns)
	if r.err = b.serviceConnections(ctx, r, n); r.err != nil {
		return r
	}
	fmt.Fprintf(os.Stderr, "labbench: services, programming %d services into %d nodes (%d runs)\n", n, r.nodes, runs)
	if r.err = b.programNodes(ctx, r, runs); r.err != nil {
		return r
	}
	fmt.Fprintf(os.Stderr, "labbench: services, up with and without them (%d runs)\n", runs)
	r.err = b.upWithServices(ctx, r, runs)
	return r
}

// serviceLab is two nodes, the web server in a (node n0), the client c
// (node n1), the service "bench" with a as its only endpoint, and n-1
// other services of three endpoints over a, b and c.
func serviceLab(name string, n int) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, `name: %s
network:
  underlay: 10.32.0.0/24
  clusterCIDR: 10.244.0.0/16
  serviceCIDR: 10.96.0.0/12
  clusterDNS: false
nodes:
  - name: n0
    pods:
      - {name: a, containers: [{name: web, builtin: web-server}]}
      - {name: b}
  - name: n1
    pods: [{name: c}]
services:
  - {name: bench, clusterIP: 10.96.0.2, endpoints: [a], ports: [{port: 80}]}
`, name)
	for i := 1; i < n; i++ {
		fmt.Fprintf(&s, "  - {name: svc-%04d, endpoints: [a, b, c], ports: [{port: 80}]}\n", i)
	}
	return []byte(s.String())
}

func (b *bench) serviceConnections(ctx context.Context, r *servicesResult, n int) error {
	name := namePrefix(b.pid) + "svc-conn"
	path := filepath.Join(b.tmp, name+".yaml")
	if err := os.WriteFile(path, serviceLab(name, n), 0o644); err != nil {
		return err
	}
	if out, err := b.labctlRun(ctx, "up", path); err != nil {
		return fmt.Errorf("up: %v: %s", err, out)
	}
	defer b.labctlRun(context.Background(), "down", name)
	client := netns.Path(name + "-c")
	podIP, err := podAddress(b, name, "a")
	if err != nil {
		return err
	}
	targets := []struct {
		addr string
		into *[]time.Duration
	}{{netip.AddrPortFrom(podIP, 80).String(), &r.direct}, {"10.96.0.2:80", &r.viaService}}
	// A few untimed rounds: ARP, the first route lookups, the server's
	// first accepts.
	for i := -10; i < r.conns; i++ {
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			start := time.Now()
			if err := oneRequest(ctx, client, t.addr); err != nil {
				return fmt.Errorf("request to %s: %w", t.addr, err)
			}
			if i >= 0 {
				*t.into = append(*t.into, time.Since(start))
			}
		}
	}
	return nil
}

// podAddress reads a pod's address from the lab's status.
func podAddress(b *bench, labName, pod string) (netip.Addr, error) {
	st, err := lab.Manager{StateDir: b.stateDir}.Status(labName, lab.StatusOptions{})
	if err != nil {
		return netip.Addr{}, err
	}
	p, ok := st.Topology.Pod(pod)
	if !ok {
		return netip.Addr{}, fmt.Errorf("lab %s has no pod %s", labName, pod)
	}
	return p.IP, nil
}

// oneRequest connects from a namespace, asks for / and reads the whole
// answer (the server closes the connection after it, HTTP/1.0).
func oneRequest(ctx context.Context, nsPath, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := probe.DialTCP(ctx, nsPath, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "HTTP/1.0 200") {
		return fmt.Errorf("answer %q", line)
	}
	_, err = io.Copy(io.Discard, c)
	return err
}

// bigServices is n services of three endpoints over 10 nodes.
func bigServices(n, nodes int) []kubeproxy.Service {
	out := make([]kubeproxy.Service, n)
	for i := range out {
		eps := make([]kubeproxy.Endpoint, 3)
		for j := range eps {
			node := (i + j) % nodes
			eps[j] = kubeproxy.Endpoint{IP: netip.AddrFrom4([4]byte{10, 244, byte(node), byte(2 + i%250)}), Port: 8080, NodeName: fmt.Sprintf("n%d", node)}
		}
		out[i] = kubeproxy.Service{Name: fmt.Sprintf("svc-%04d", i), ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(1 + i/250), byte(1 + i%250)}),
			Ports: []kubeproxy.ServicePort{{Name: "http", Port: 80, Endpoints: eps}}}
	}
	return out
}

// programNodes programs the services into r.nodes namespaces at once,
// rules built per node, as the nodes' units of `up` do in parallel:
// fresh tables (as `up` makes them), then replaced (one batch each).
func (b *bench) programNodes(ctx context.Context, r *servicesResult, runs int) error {
	services := bigServices(r.services, r.nodes)
	var names []string
	defer func() { _ = deleteNamespaces(present(names)) }()
	for i := range r.nodes {
		name := fmt.Sprintf("%ssvc-n%d", namePrefix(b.pid), i)
		if _, err := b.command(ctx, nil, "ip", "netns", "add", name); err != nil {
			return err
		}
		names = append(names, name)
	}
	// As a lab's plan does: every node's rules at once (nodes whose rules
	// are the same share them), then every node programmed in parallel.
	all := func() error {
		nodes := make([]kubeproxy.Node, len(names))
		for i := range nodes {
			nodes[i] = kubeproxy.Node{Name: fmt.Sprintf("n%d", i), IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 32, 0, byte(2 + i)})},
				PodCIDR: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24), ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
				ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12")}
		}
		rulesets, err := kubeproxy.RulesForNodes(nodes, services)
		if err != nil {
			return err
		}
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, ns := range names {
			wg.Go(func() { errs[i] = kubeproxy.Program(netns.Path(ns), rulesets[i]) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}
	for range runs {
		for _, ns := range names {
			if err := kubeproxy.Remove(netns.Path(ns)); err != nil {
				return err
			}
		}
		start := time.Now()
		if err := all(); err != nil {
			return err
		}
		r.fresh = append(r.fresh, time.Since(start))
		start = time.Now()
		if err := all(); err != nil {
			return err
		}
		r.replace = append(r.replace, time.Since(start))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// upLab is the 10-node lab of the programming measurement, 3 pods a node,
// with the services (their endpoints pods of three nodes) or without.
func upLab(name string, services, nodes int) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "name: %s\nnetwork:\n  underlay: 10.33.0.0/24\n  clusterCIDR: 10.244.0.0/16\n  clusterDNS: false\nnodes:\n", name)
	for i := range nodes {
		fmt.Fprintf(&s, "  - {name: n%d, pods: [{name: p%d-0}, {name: p%d-1}, {name: p%d-2}]}\n", i, i, i, i)
	}
	if services > 0 {
		s.WriteString("services:\n")
	}
	for i := range services {
		fmt.Fprintf(&s, "  - {name: svc-%04d, endpoints: [p%d-%d, p%d-%d, p%d-%d], ports: [{port: 80, targetPort: 8080}]}\n", i,
			i%nodes, i%3, (i+1)%nodes, (i+1)%3, (i+2)%nodes, (i+2)%3)
	}
	return []byte(s.String())
}

func (b *bench) upWithServices(ctx context.Context, r *servicesResult, runs int) error {
	upOwn := regexp.MustCompile(`is up in (\S+):`)
	for _, c := range []struct {
		services int
		into     *[]time.Duration
	}{{0, &r.upWithout}, {r.services, &r.upWith}} {
		name := fmt.Sprintf("%ssvc-up%d", namePrefix(b.pid), c.services)
		path := filepath.Join(b.tmp, name+".yaml")
		if err := os.WriteFile(path, upLab(name, c.services, r.nodes), 0o644); err != nil {
			return err
		}
		for range runs {
			out, err := b.labctlRun(ctx, "up", path)
			if err != nil {
				return fmt.Errorf("up %s: %v: %s", name, err, out)
			}
			if m := upOwn.FindStringSubmatch(out); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					*c.into = append(*c.into, d)
				}
			}
			if out, err := b.labctlRun(ctx, "down", name); err != nil {
				return fmt.Errorf("down %s: %v: %s", name, err, out)
			}
		}
	}
	return nil
}

func reportServices(w io.Writer, r *servicesResult) {
	fmt.Fprintf(w, "\nlabbench: services (issue 11 item 8), median (min)\n\n")
	if r.err != nil {
		fmt.Fprintf(w, "ERROR %v\n", r.err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\tmeasured\ttarget\tok\tnote")
	if len(r.direct) > 0 && len(r.viaService) > 0 {
		ratio := float64(median(r.viaService)) / float64(median(r.direct))
		fmt.Fprintf(tw, "connect + request, pod IP\t%s\t\t\tpod c (n1) to the web server in pod a (n0), %d connections\n", medMin(r.direct), len(r.direct))
		fmt.Fprintf(tw, "connect + request, ClusterIP\t%s\t\t\tthe same through 10.96.0.2 (one endpoint, a), %d other services\n", medMin(r.viaService), r.services-1)
		fmt.Fprintf(tw, "ClusterIP / pod IP\t%.2f×\t≤ %.1f×\t%s\tmedians\n", ratio, connectRatioTarget, verdict(ratio <= connectRatioTarget))
	}
	if len(r.fresh) > 0 {
		fmt.Fprintf(tw, "program %d services × %d endpoints into %d nodes, fresh\t%s\t≤ %s\t%s\tas up does: the nodes at once, a few transactions each\n",
			r.services, r.endpoints, r.nodes, medMin(r.fresh), fmtDur(programTarget), verdict(median(r.fresh) <= programTarget))
		fmt.Fprintf(tw, "the same, replacing them\t%s\t\t\tone batch (one transaction) per node, as a live change does\n", medMin(r.replace))
	}
	if len(r.upWith) > 0 && len(r.upWithout) > 0 {
		fmt.Fprintf(tw, "labctl up, %d nodes, 30 pods, no services\t%s\t\t\tthe reference (no cluster DNS either)\n", r.nodes, medMin(r.upWithout))
		fmt.Fprintf(tw, "labctl up, the same with %d services\t%s\t\t\tcost of the services: %s\n", r.services, medMin(r.upWith),
			fmtDur(median(r.upWith)-median(r.upWithout)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThe machine: %d CPUs; the nodes are programmed in parallel, so fewer CPUs than nodes share the work.\n", runtime.NumCPU())
}

// medMin is "median (min)".
func medMin(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s)", fmtDur(median(ds)), fmtDur(slices.Min(ds)))
}
