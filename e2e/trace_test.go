package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/trace"
)

// go test ./e2e -run TestTrace -record-traces ../emulator/trace/testdata
// saves the journeys these tests trace, as the recordings the trace
// package's golden tests replay.
var recordTraces = flag.String("record-traces", "", "save the trace tests' recordings in this directory")

// traceIn traces in a lab that is up, as `labctl trace` does, and returns
// the journey with its recording.
func traceIn(t *testing.T, c cli, name, from, to string, p trace.Probe) (*trace.Journey, *trace.Recording) {
	t.Helper()
	st, err := lab.Manager{StateDir: c.state}.Status(name, lab.StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req, err := trace.ForLab(st, from, to, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := trace.Record(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	k := trace.LiveKernel(rec)
	defer k.Close()
	return trace.Analyze(rec, k), rec
}

// saveTrace keeps a recording for the trace package's golden tests, with
// the test's unique lab name replaced by the shipped one.
func saveTrace(t *testing.T, rec *trace.Recording, name, labName, shipped string) {
	t.Helper()
	if *recordTraces == "" {
		return
	}
	data, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), labName, shipped))
	if err := os.WriteFile(filepath.Join(*recordTraces, name+".rec.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hops lists a path as place:action.
func hops(p *trace.Path) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, h := range p.Hops {
		out = append(out, h.Place+":"+h.Action)
	}
	return out
}

// Across two nodes on each backend, the echo and its reply cross the same
// five namespaces; the tunnel backends wrap the packet on the first node
// and unwrap it on the second, and the underlay carries it inside.
func TestTraceBackends(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name, file string
		userspace  bool
		tunnel     string // kind
		device     string
	}{
		{"host-gw", "two-node.yaml", false, "", ""},
		{"vxlan", "two-node-vxlan.yaml", false, "vxlan", "flannel.1"},
		{"ipip-userspace", "two-node-ipip.yaml", true, "ipip", "tunl0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			var edits []func(*testing.T, string)
			if tc.userspace {
				edits = append(edits, userspaceIPIP)
			}
			_, name := c.up(tc.file, "ttr", edits...)
			shipped := strings.TrimSuffix(tc.file, ".yaml")
			for _, p := range []trace.Probe{{Protocol: trace.ICMP}, {Protocol: trace.TCP, Port: 81}} {
				j, rec := traceIn(t, c, name, "pod1a", "pod2", p)
				text := j.Text(true)
				want := trace.AnswerReply
				if p.Protocol == trace.TCP {
					want = trace.AnswerRefused // nothing listens on 81: RST
				}
				if j.Answer.Kind != want || !j.Request.Arrived || j.Reply == nil || !j.Reply.Arrived {
					t.Fatalf("%s: answer %s (want %s), arrived %v:\n%s", p, j.Answer.Kind, want, j.Request.Arrived, text)
				}
				there := []string{"pod1a:sent", "node1:routed", "underlay:switched", "node2:routed", "pod2:delivered"}
				back := []string{"pod2:sent", "node2:routed", "underlay:switched", "node1:routed", "pod1a:delivered"}
				if got := hops(&j.Request); !slices.Equal(got, there) {
					t.Errorf("%s: request %v, want %v:\n%s", p, got, there, text)
				}
				if got := hops(j.Reply); !slices.Equal(got, back) {
					t.Errorf("%s: reply %v, want %v:\n%s", p, got, back, text)
				}
				checkTunnels(t, j, tc.tunnel, tc.device, text)
				if p.Protocol == trace.ICMP {
					saveTrace(t, rec, tc.name, name, shipped)
				}
			}
		})
	}
}

// checkTunnels: node1 wraps the request and node2 unwraps it (and the
// other way round for the reply), between the node IPs; the underlay sees
// only the outer packet. host-gw has no tunnel anywhere.
func checkTunnels(t *testing.T, j *trace.Journey, kind, device, text string) {
	t.Helper()
	for _, p := range []*trace.Path{&j.Request, j.Reply} {
		for i, h := range p.Hops {
			enc, dec := h.Encapsulated, h.Decapsulated
			switch {
			case kind == "":
				if enc != nil || dec != nil {
					t.Errorf("host-gw: %s has a tunnel:\n%s", h.Place, text)
				}
			case i == 1:
				if enc == nil || enc.Kind != kind || enc.Device != device || !strings.HasPrefix(enc.Src.String(), "10.30.45.") {
					t.Errorf("%s does not wrap the packet in %s by %s: %+v\n%s", h.Place, kind, device, enc, text)
				}
				if kind == "vxlan" && (enc.VNI != 1 || enc.DstPort != 8472) {
					t.Errorf("vxlan vni %d port %d, want flannel's 1 and 8472:\n%s", enc.VNI, enc.DstPort, text)
				}
			case i == 2:
				if h.Sightings[0].Outer == nil || h.Sightings[0].Outer.Kind != kind {
					t.Errorf("the underlay does not carry the %s packet:\n%s", kind, text)
				}
			case i == 3:
				if dec == nil || dec.Kind != kind || dec.Device != device {
					t.Errorf("%s does not unwrap the %s packet by %s: %+v\n%s", h.Place, kind, device, dec, text)
				}
			}
		}
	}
}

// A pod whose node lost its route to the other node's pods: the journey
// ends at that node with "no route", and its ICMP error comes back.
// Through the CLI, -o json says the same and trace exits 1.
func TestTraceUnreachablePod(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "ttu")
	if out, code := run(t, "ip", "-n", name+"-node1", "route", "del", "192.168.2.0/24"); code != 0 {
		t.Fatalf("ip route del: %s", out)
	}
	j, rec := traceIn(t, c, name, "pod1a", "pod2", trace.Probe{Protocol: trace.ICMP})
	text := j.Text(false)
	if got, want := hops(&j.Request), []string{"pod1a:sent", "node1:stopped"}; !slices.Equal(got, want) {
		t.Errorf("request %v, want %v:\n%s", got, want, text)
	}
	if s := j.Request.Stop; j.Request.Arrived || s == nil || s.Place != "node1" || s.Reason != trace.ReasonNoRoute {
		t.Errorf("stop %+v, want node1 with no route:\n%s", s, text)
	}
	if j.Answer.Kind != trace.AnswerError || j.Reply == nil || !j.Reply.Arrived {
		t.Errorf("answer %s, want node1's ICMP error back at pod1a:\n%s", j.Answer.Kind, text)
	}
	saveTrace(t, rec, "unreachable", name, "two-node")

	out, code := c.run("trace", name, "pod1a", "pod2", "--tcp", "80", "-o", "json")
	if code != 1 {
		t.Fatalf("trace of an unreachable pod exits %d, want 1:\n%s", code, out)
	}
	var doc struct {
		Kind    string
		Request struct {
			Arrived bool
			Stop    struct{ Place, Reason string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("-o json: %v:\n%s", err, out)
	}
	if doc.Kind != "Trace" || doc.Request.Arrived || doc.Request.Stop.Place != "node1" || doc.Request.Stop.Reason != trace.ReasonNoRoute {
		t.Errorf("-o json: %+v:\n%s", doc, out)
	}

	// The lab's picture, from the running lab: the same as from its file.
	graph := c.must("graph", name)
	for _, want := range []string{name + " · 2 nodes · 3 pods · host-gw", "pod1a", "192.168.2.20", "node1 ⇄ node2  host-gw"} {
		if !strings.Contains(graph, want) {
			t.Errorf("labctl graph %s lacks %q:\n%s", name, want, graph)
		}
	}
}

// A full-size packet with DF set meets a smaller MTU on node1's way out:
// the journey stops there for MTU, and node1's "fragmentation needed"
// comes back to the pod.
func TestTraceMTU(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "ttm")
	if out, code := run(t, "ip", "-n", name+"-node1", "link", "set", "eth0", "mtu", "1400"); code != 0 {
		t.Fatalf("ip link set mtu: %s", out)
	}
	j, rec := traceIn(t, c, name, "pod1a", "pod2", trace.Probe{Protocol: trace.ICMP, Size: 1472, DontFragment: true})
	text := j.Text(false)
	if s := j.Request.Stop; j.Request.Arrived || s == nil || s.Place != "node1" || s.Reason != trace.ReasonMTU || !strings.Contains(s.Detail, "MTU 1400") {
		t.Errorf("stop %+v, want node1 for MTU 1400:\n%s", s, text)
	}
	if j.Answer.Kind != trace.AnswerError || !strings.Contains(j.Answer.Summary, "fragmentation needed (next-hop MTU 1400)") {
		t.Errorf("answer %+v, want fragmentation needed:\n%s", j.Answer, text)
	}
	saveTrace(t, rec, "mtu", name, "two-node")
}

// A route via an address nobody has: node1 asks ARP in vain, and the
// journey says so.
func TestTraceNeighbour(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	c := newCLI(t)
	_, name := c.up("two-node.yaml", "ttn")
	if out, code := run(t, "ip", "-n", name+"-node1", "route", "replace", "192.168.2.0/24", "via", "10.30.45.222", "dev", "eth0"); code != 0 {
		t.Fatalf("ip route replace: %s", out)
	}
	j, rec := traceIn(t, c, name, "pod1a", "pod2", trace.Probe{Protocol: trace.ICMP})
	text := j.Text(false)
	if s := j.Request.Stop; s == nil || s.Place != "node1" || s.Reason != trace.ReasonNeighbour || !strings.Contains(s.Detail, "10.30.45.222") {
		t.Errorf("stop %+v, want node1's unanswered ARP for 10.30.45.222:\n%s", s, text)
	}
	saveTrace(t, rec, "neighbour", name, "two-node")
}
