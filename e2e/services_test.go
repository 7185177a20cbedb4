package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/whoami"
)

// The article's service lab, extended with a pod on node-1 (D) and the
// services every case of the issue needs. The pods run no containers: the
// tests serve from their namespaces themselves, answering "<pod> <address
// the client came from>", so that every answer says who served it and
// whom it saw. Only the cluster DNS pod runs a container (labctl's dns).
const servicesLab = `name: %s
network:
  underlay: 192.168.64.0/24
  clusterCIDR: 10.200.0.0/16
  serviceCIDR: 10.96.0.0/12
nodes:
  - name: node-0
    ip: 192.168.64.4
    podCIDR: 10.200.0.0/24
    bridge: br0
    hairpinMode: %v
    pods:
      - {name: A0, ip: 10.200.0.2, labels: {app: kube-svc-1}}
      - {name: A1, ip: 10.200.0.3}
  - name: node-1
    ip: 192.168.64.5
    podCIDR: 10.200.1.0/24
    bridge: br1
    pods:
      - {name: B, ip: 10.200.1.2, labels: {app: kube-svc-1}}
      - {name: D, ip: 10.200.1.3}
  - name: node-2
    ip: 192.168.64.6
    podCIDR: 10.200.2.0/24
    bridge: br2
    pods:
      - {name: C, ip: 10.200.2.2}
services:
  - name: kube-svc-1
    clusterIP: 10.96.0.2
    selector: {app: kube-svc-1}
    ports: [{name: http, port: 8080, targetPort: 8080}]
  - name: dns-like
    clusterIP: 10.96.0.3
    selector: {app: kube-svc-1}
    ports: [{name: dns, protocol: UDP, port: 53, targetPort: 5353}]
  - name: web-np
    clusterIP: 10.96.0.4
    type: NodePort
    endpoints: [A0, B]
    ports: [{port: 80, targetPort: 8080, nodePort: 30001}]
  - name: web-local
    clusterIP: 10.96.0.5
    type: NodePort
    externalTrafficPolicy: Local
    endpoints: [A0]
    ports: [{port: 80, targetPort: 8080, nodePort: 30002}]
  - name: sticky
    clusterIP: 10.96.0.6
    sessionAffinity: ClientIP
    endpoints: [A0, B, D]
    ports: [{port: 80, targetPort: 8080}]
  - name: empty
    clusterIP: 10.96.0.7
    selector: {app: nothing}
    ports: [{port: 80}]
externals:
  - name: vm1                  # the tutorial's VM1: another network, behind the router
    network: 10.130.0.0/24
    ip: 10.130.0.10
`

// Addresses of the lab.
var (
	svcNodeIPs = map[string]netip.Addr{"node-0": addr("192.168.64.4"), "node-1": addr("192.168.64.5"), "node-2": addr("192.168.64.6")}
	svcPodIPs  = map[string]netip.Addr{"A0": addr("10.200.0.2"), "A1": addr("10.200.0.3"), "B": addr("10.200.1.2"), "D": addr("10.200.1.3"), "C": addr("10.200.2.2")}
	gatewayA0  = addr("10.200.0.1")  // node-0's bridge: where a masqueraded hairpin comes from
	clientIP   = addr("10.130.0.10") // vm1, the external host
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// svcLab is a running services lab and what the tests serve in it.
type svcLab struct {
	name string
	m    lab.Manager
	topo *spec.Topology
}

func (l *svcLab) ns(object string) string { return nsOf(l.name, object) }

// upServicesLab brings the lab up (hairpin mode as asked on node-0) with a
// server on port 8080 (TCP) and 5353 (UDP) in A0, B and D.
func upServicesLab(t *testing.T, prefix string, hairpin bool) *svcLab {
	t.Helper()
	name := uniqueName(prefix)
	l := &svcLab{name: name, m: newManager(t)}
	l.topo = upLab(t, l.m, writeTopology(t, fmt.Sprintf(servicesLab, name, hairpin)))
	for _, pod := range []string{"A0", "B", "D"} {
		whoami.Serve(t, l.ns(pod), pod, 8080, 5353)
	}
	return l
}

// spread asks n times; every ask must be answered. It returns the answers
// by server.
func spread(t *testing.T, nsPath, proto, to string, n int) (map[string]int, []whoami.Answer) {
	t.Helper()
	counts := map[string]int{}
	var all []whoami.Answer
	for i := range n {
		a, err := whoami.Ask(nsPath, proto, to, 2*time.Second)
		if err != nil {
			t.Fatalf("%s %s, attempt %d of %d: %v", proto, to, i+1, n, err)
		}
		counts[a.Who]++
		all = append(all, a)
	}
	return counts, all
}

// requireSplit fails unless each server got between 40% and 60% of n.
func requireSplit(t *testing.T, counts map[string]int, n int, servers ...string) {
	t.Helper()
	for _, s := range servers {
		if share := float64(counts[s]) / float64(n); share < 0.4 || share > 0.6 {
			t.Errorf("%s served %d of %d (%.0f%%), outside 40-60%%: %v", s, counts[s], n, 100*share, counts)
		}
	}
}

// hostRulesetText is the host's own nftables ruleset, only ever read.
func hostRulesetText(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset on the host: %v: %s", err, out)
	}
	return string(out)
}

// hostUnchanged fails the test if the host's own ruleset differs at its
// end from its start.
func hostUnchanged(t *testing.T) {
	t.Helper()
	before := hostRulesetText(t)
	t.Cleanup(func() {
		if after := hostRulesetText(t); after != before {
			t.Errorf("the host's nftables ruleset changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// TestServices: the cases on a real lab, each read from the inside
// (who served, whom it saw) and from the outside (nft, conntrack, dig,
// status counters); the host's ruleset stays as it was.
func TestServices(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	needTool(t, "nft", "nftables")
	needTool(t, "dig", "dnsutils")
	hostUnchanged(t)
	l := upServicesLab(t, "tsvc", true)

	// The article's cases 1 and 2: from C, on a node without endpoints,
	// and from A1, beside A0; the endpoints see the client's own pod IP.
	for _, from := range []string{"C", "A1"} {
		t.Run("spread from "+from, func(t *testing.T) {
			counts, answers := spread(t, l.ns(from), "tcp", "10.96.0.2:8080", 400)
			requireSplit(t, counts, 400, "A0", "B")
			for _, a := range answers {
				if a.Seen != svcPodIPs[from] {
					t.Fatalf("%s saw %s as %s, want its pod IP (no masquerade inside the cluster)", a.Who, from, a.Seen)
				}
			}
			if from != "C" {
				return
			}
			// node-2's counters count exactly C's connections: nothing else
			// entered the service on node-2.
			st, err := l.m.Status(l.name, lab.StatusOptions{Live: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Services {
				if s.Name != "kube-svc-1" {
					continue
				}
				for _, e := range s.Ports[0].Endpoints {
					if e.Hits == nil || e.HitsByNode["node-2"] != uint64(counts[e.Pod]) {
						t.Errorf("endpoint %s counted %v on node-2 (hits %v), but served C %d times", e.Pod, e.HitsByNode, e.Hits, counts[e.Pod])
					}
				}
			}
		})
	}

	// Case 3: an endpoint reaching its own service. With hairpin on every
	// connection works, about half served by A0 itself, which then sees
	// itself masqueraded to the bridge's address.
	t.Run("hairpin", func(t *testing.T) {
		counts, answers := spread(t, l.ns("A0"), "tcp", "10.96.0.2:8080", 400)
		requireSplit(t, counts, 400, "A0", "B")
		for _, a := range answers {
			if a.Who == "A0" && a.Seen != gatewayA0 || a.Who == "B" && a.Seen != svcPodIPs["A0"] {
				t.Fatalf("%s saw A0 as %s", a.Who, a.Seen)
			}
		}
	})

	t.Run("udp", func(t *testing.T) {
		counts, _ := spread(t, l.ns("C"), "udp", "10.96.0.3:53", 400)
		requireSplit(t, counts, 400, "A0", "B")
	})

	t.Run("client IP affinity", func(t *testing.T) {
		for _, from := range []string{"C", "A1"} {
			if counts, _ := spread(t, l.ns(from), "tcp", "10.96.0.6:80", 40); len(counts) != 1 {
				t.Errorf("%s was not pinned to one endpoint: %v", from, counts)
			}
		}
	})

	t.Run("no endpoints", func(t *testing.T) {
		// A service without endpoints, and a port its cluster IP does not
		// serve, are refused at once; an address no service has drops.
		for _, to := range []string{"10.96.0.7:80", "10.96.0.2:81"} {
			start := time.Now()
			if _, err := whoami.Ask(l.ns("C"), "tcp", to, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("C -> %s: %v, want connection refused", to, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("C -> %s took %s to be refused", to, d)
			}
		}
		if _, err := whoami.Ask(l.ns("C"), "tcp", "10.96.0.99:80", 300*time.Millisecond); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("C -> 10.96.0.99:80 (no service): %v, want a silent drop", err)
		}
	})

	t.Run("node ports", func(t *testing.T) { checkNodePorts(t, l) })

	t.Run("rules read back", func(t *testing.T) {
		// Every node holds every service, as nft prints it; labctl exec
		// reads the same.
		for _, n := range l.topo.Nodes {
			out, err := exec.Command("ip", "netns", "exec", plan.NamespaceName(l.name, n.Name), "nft", "list", "ruleset").CombinedOutput()
			if err != nil {
				t.Fatalf("nft list ruleset in %s: %v: %s", n.Name, err, out)
			}
			for _, want := range []string{"10.96.0.2 . tcp . 8080 : goto service-", "10.96.0.3 . udp . 53 : goto service-",
				"10.96.0.10 . udp . 53 : goto service-", "tcp . 30001 : goto external-", "dnat to 10.200.0.2:8080", "dnat to 10.200.1.2:5353"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("%s's ruleset lacks %q", n.Name, want)
				}
			}
		}
		out, code := run(t, buildLabctl(t), "--state-dir", l.m.StateDir, "exec", "node-0", "--", "nft", "list", "table", "ip", "kube-proxy")
		if code != 0 || !strings.Contains(out, "numgen random mod 2 vmap") {
			t.Errorf("labctl exec node-0 -- nft list table ip kube-proxy: exit %d\n%s", code, out)
		}
		// conntrack (labctl's, and the tool's) shows C's connections
		// DNATed to an endpoint on node-2.
		out, code = run(t, buildLabctl(t), "--state-dir", l.m.StateDir, "conntrack", "node-2", "--dst", "10.96.0.2")
		if code != 0 || !strings.Contains(out, "src=10.200.2.2 dst=10.96.0.2") || !strings.Contains(out, "sport=8080") {
			t.Errorf("labctl conntrack node-2: exit %d\n%s", code, out)
		}
	})

	t.Run("cluster dns", func(t *testing.T) {
		// dig, from a pod, asks kube-dns at the tenth address of the
		// service CIDR, through kube-proxy's rules to the coredns pod.
		for _, q := range []struct{ name, typ, want string }{
			{"kube-svc-1.default.svc.cluster.local", "A", "10.96.0.2"},
			{"kube-dns.kube-system.svc.cluster.local", "A", "10.96.0.10"},
			{"_http._tcp.kube-svc-1.default.svc.cluster.local", "SRV", "0 100 8080 kube-svc-1.default.svc.cluster.local."},
			{"10-200-0-2.default.pod.cluster.local", "A", "10.200.0.2"},
		} {
			for _, transport := range []string{"+notcp", "+tcp"} {
				out, err := exec.Command("ip", "netns", "exec", plan.NamespaceName(l.name, "C"), "dig", "+short", "+time=2", "+tries=1", transport,
					"@10.96.0.10", q.name, q.typ).CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != q.want {
					t.Errorf("dig %s %s %s: %v: %q, want %q", transport, q.name, q.typ, err, out, q.want)
				}
			}
		}
	})
}

// checkNodePorts reaches the NodePorts from vm1, an external host on a
// network of its own behind the lab's router (no route to any pod subnet),
// as the tutorial's VM1 reaches node01:30001.
func checkNodePorts(t *testing.T, l *svcLab) {
	vm1 := l.ns("vm1")
	if _, err := whoami.Ask(vm1, "tcp", svcPodIPs["A0"].String()+":8080", 500*time.Millisecond); err == nil {
		t.Fatal("vm1 reached A0's pod address directly; an external host must reach pods only through a node port")
	}

	// Cluster policy: either endpoint, the client's address masqueraded to
	// one of node-0's.
	counts, answers := spread(t, vm1, "tcp", "192.168.64.4:30001", 100)
	if counts["A0"] == 0 || counts["B"] == 0 {
		t.Errorf("NodePort with Cluster policy used only %v", counts)
	}
	for _, a := range answers {
		if a.Seen != svcNodeIPs["node-0"] && a.Seen != gatewayA0 {
			t.Fatalf("%s saw the client as %s, want one of node-0's addresses", a.Who, a.Seen)
		}
	}
	// Another node forwards to the endpoints too.
	if a, err := whoami.Ask(vm1, "tcp", "192.168.64.6:30001", 2*time.Second); err != nil || a.Seen == clientIP {
		t.Errorf("client -> node-2:30001: %+v, %v (want an answer, the client masqueraded)", a, err)
	}
	// Local policy: the pod sees the client itself; a node without a
	// local endpoint does not answer at all.
	for i := range 20 {
		a, err := whoami.Ask(vm1, "tcp", "192.168.64.4:30002", 2*time.Second)
		if err != nil || a.Who != "A0" || a.Seen != clientIP {
			t.Fatalf("client -> node-0:30002, attempt %d: %+v, %v (want A0, seeing %s)", i+1, a, err, clientIP)
		}
	}
	_, err := whoami.Ask(vm1, "tcp", "192.168.64.5:30002", 500*time.Millisecond)
	if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("client -> node-1:30002 (no local endpoint): %v, want no answer at all", err)
	}
	// Inside the cluster a Local service still works from any node.
	if a, err := whoami.Ask(l.ns("D"), "tcp", "10.96.0.5:80", 2*time.Second); err != nil || a.Who != "A0" {
		t.Errorf("D -> the cluster IP of the Local service: %+v, %v", a, err)
	}
}

// TestServiceHairpinOff: node-0 with hairpinMode: false, the article's
// bridge without hairpin: A0's connections to its own service that pick A0
// itself fail, those that pick B work.
func TestServiceHairpinOff(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	l := upServicesLab(t, "tsvh", false)
	failed, self, other := 0, 0, 0
	for range 40 {
		a, err := whoami.Ask(l.ns("A0"), "tcp", "10.96.0.2:8080", 250*time.Millisecond)
		switch {
		case err != nil:
			failed++
		case a.Who == "A0":
			self++
		default:
			other++
		}
	}
	if self != 0 {
		t.Errorf("with hairpin off, %d connections were still served by A0 itself", self)
	}
	if failed < 8 || other < 8 {
		t.Errorf("with hairpin off, %d of 40 failed and %d reached B; want about half each", failed, other)
	}
	// Others still reach A0 through the service.
	if counts, _ := spread(t, l.ns("A1"), "tcp", "10.96.0.2:8080", 40); counts["A0"] == 0 {
		t.Errorf("A1 never reached A0 with hairpin off: %v", counts)
	}
}

// TestServiceDryRunScript: the --dry-run script of the article's service
// lab, run by bash (ip, sysctl, nft), builds a lab whose service works as
// labctl's does (the script leaves out containers: the test serves).
func TestServiceDryRunScript(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	needTool(t, "nft", "nftables")
	hostUnchanged(t)
	bin := buildLabctl(t)
	path, name := copyTopology(t, "three-node-service.yaml", "tsdr")
	script, code := run(t, bin, "up", "--dry-run", path)
	if code != 0 {
		t.Fatalf("dry-run: exit %d: %s", code, script)
	}
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, ns := range p.Namespaces {
			_ = exec.Command("ip", "netns", "del", ns.Name).Run()
		}
		assertNoNamespaces(t, name)
	})
	cmd := exec.Command("bash", "-s")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash dry-run script: %v\n%s", err, out)
	}
	checkBridgeObjects(t, topo)
	for _, pod := range []string{"A0", "B"} {
		whoami.Serve(t, nsOf(name, pod), pod, 8080, 5353)
	}
	for _, from := range []string{"C", "A1", "A0"} {
		counts, _ := spread(t, nsOf(name, from), "tcp", "10.96.0.2:8080", 200)
		requireSplit(t, counts, 200, "A0", "B")
	}
	// What nft reads back is what the script loaded, node by node.
	for _, n := range topo.Nodes {
		out, err := exec.Command("ip", "netns", "exec", plan.NamespaceName(name, n.Name), "nft", "list", "ruleset").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "10.96.0.2 . tcp . 8080") {
			t.Errorf("%s: nft list ruleset: %v\n%s", n.Name, err, out)
		}
	}
	_ = os.Remove(path)
}
