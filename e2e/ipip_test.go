package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// The userspace IPIP datapath hurts no other traffic (issue 10 item 4): a
// host-gw TCP stream into node1 of the mixed lab runs as fast, and with as
// few retransmissions, while node1's datapath serves its IPIP link to
// node3 as when it is stopped. Its receive offload once attached an XDP
// program to node1's eth0, which made the underlay cut every packet to the
// MTU and overflow eth0's NAPI ring: 1.5-5 Gbit/s with 4-12% of all
// segments retransmitted, against 8-15 Gbit/s and next to none.
//
// The test alternates the two states twice and compares the better run of
// each, so a burst of load from other tests on the machine does not decide
// it. It runs alone in this package (not parallel): it measures.
func TestHostGWUnaffectedByIPIPPeer(t *testing.T) {
	requireRoot(t)
	bin := buildLabctl(t)
	m := newBackendManager(t)
	path, name := copyTopology(t, "three-node-mixed.yaml", "thgw")
	// The userspace datapath even where the kernel has ipip: it is what
	// this test is about.
	forceUserspaceIPIP(t, path)
	topo := upLab(t, m, path)
	pod1, _ := topo.Pod("pod1")
	from, to := nsOf(name, "pod2"), nsOf(name, "pod1")
	dst := netip.AddrPortFrom(pod1.IP, 5201)

	type run struct {
		gbps             float64
		segs, retransmit int64
	}
	measure := func() run {
		t.Helper()
		out0, re0 := tcpCounters(t, from)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		r, err := probe.Throughput(ctx, from, to, dst, time.Second)
		if err != nil {
			t.Fatalf("host-gw stream pod2 -> pod1: %v", err)
		}
		out1, re1 := tcpCounters(t, from)
		return run{r.BitsPerSecond() / 1e9, out1 - out0, re1 - re0}
	}
	node1 := func() *lab.Datapath {
		t.Helper()
		rec, err := m.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		d := rec.Datapaths["node1"]
		if d == nil || d.Kind != spec.DatapathUserspace || d.Process == nil {
			t.Fatalf("node1's datapath: %+v, want a userspace process", d)
		}
		return d
	}

	best := func(rs []run) run {
		b := rs[0]
		for _, r := range rs[1:] {
			if r.gbps > b.gbps {
				b = r
			}
		}
		return b
	}
	// Two rounds at least, up to four while the best with the datapath
	// is still more than 15% behind the best without: the other test
	// packages share the machine's CPUs and make a single stream noisy
	// (the XDP program this guards against cost 60%, every round).
	var with, without []run
	for round := 0; round < 4; round++ {
		if round >= 2 && best(with).gbps >= 0.85*best(without).gbps {
			break
		}
		if round > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := m.Up(ctx, topo, lab.UpOptions{Repair: true})
			cancel()
			if err != nil {
				t.Fatalf("restart node1's datapath: %v", err)
			}
		}
		if d := node1(); !d.Process.Alive() {
			t.Fatalf("node1's datapath (process %d) is not running", d.Process.PID)
		}
		with = append(with, measure())
		if round == 0 {
			checkStatusCounters(t, bin, m.StateDir, name, topo)
		}
		if err := node1().Process.Stop(5 * time.Second); err != nil {
			t.Fatalf("stop node1's datapath: %v", err)
		}
		without = append(without, measure())
	}
	w, wo := best(with), best(without)
	for i := range with {
		t.Logf("round %d: host-gw pod2 -> pod1 %.2f Gbit/s, %d of %d segments retransmitted with node1's IPIP datapath; %.2f Gbit/s, %d of %d without",
			i+1, with[i].gbps, with[i].retransmit, with[i].segs, without[i].gbps, without[i].retransmit, without[i].segs)
	}
	if w.gbps < 0.85*wo.gbps {
		t.Errorf("host-gw into node1: %.2f Gbit/s with its IPIP datapath running, %.2f without: more than 15%% slower", w.gbps, wo.gbps)
	}
	for i, r := range with {
		if r.segs > 0 && float64(r.retransmit) > 0.01*float64(r.segs) {
			t.Errorf("round %d: %d of %d segments retransmitted with node1's IPIP datapath running: a retransmission storm", i+1, r.retransmit, r.segs)
		}
	}
}

// forceUserspaceIPIP sets network.ipip.datapath: userspace in a topology
// file.
func forceUserspaceIPIP(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "\nnetwork:\n", "\nnetwork:\n  ipip:\n    datapath: userspace\n", 1)
	if text == string(data) {
		t.Fatalf("%s has no network section", filepath.Base(path))
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tcpCounters reads OutSegs and RetransSegs of the namespace at ns from
// /proc/net/snmp (the calling thread's namespace: thread-self).
func tcpCounters(t *testing.T, ns string) (out, retrans int64) {
	t.Helper()
	var data []byte
	err := netns.Do(ns, func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "Tcp:" || len(values) != len(names) {
			continue
		}
		for j, n := range names {
			v, _ := strconv.ParseInt(values[j], 10, 64)
			switch n {
			case "OutSegs":
				out = v
			case "RetransSegs":
				retrans = v
			}
		}
		return out, retrans
	}
	t.Fatalf("no Tcp counters in /proc/net/snmp of %s", ns)
	return 0, 0
}

// checkStatusCounters checks that status shows node1's datapath counters,
// its steering program's among them, in the table and in JSON, once IPIP
// has crossed node3 -> node1.
func checkStatusCounters(t *testing.T, bin, stateDir, name string, topo *spec.Topology) {
	t.Helper()
	pod1, _ := topo.Pod("pod1")
	res, err := probe.Ping(context.Background(), nsOf(name, "pod3"), pod1.IP, probe.PingOptions{Count: 3, Timeout: time.Second})
	if err != nil || res.Received != 3 {
		t.Fatalf("ping pod3 -> pod1 over IPIP: %+v, %v", res, err)
	}
	type steering struct {
		Device         string `json:"device"`
		Target         string `json:"target"`
		SteeredPackets uint64 `json:"steeredPackets"`
		PassedPackets  uint64 `json:"passedPackets"`
	}
	var st *steering
	deadline := time.Now().Add(5 * time.Second) // the datapath writes its counters every second
	for {
		out, code := run(t, bin, "--state-dir", stateDir, "status", name, "-o", "json")
		if code != 0 {
			t.Fatalf("status -o json: exit %d:\n%s", code, out)
		}
		var doc struct {
			Datapaths []struct {
				Node  string `json:"node"`
				Stats *struct {
					DecapPackets uint64    `json:"decapPackets"`
					Steering     *steering `json:"steering"`
				} `json:"stats"`
			} `json:"datapaths"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("status -o json: %v:\n%s", err, out)
		}
		for _, d := range doc.Datapaths {
			if d.Node == "node1" && d.Stats != nil && d.Stats.DecapPackets >= 3 {
				st = d.Stats.Steering
			}
		}
		if st != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st == nil || st.Device != "eth0" || st.Target != "tunl0-gro" || st.SteeredPackets < 3 || st.PassedPackets == 0 {
		t.Errorf("status -o json: node1's steering counters %+v, want eth0's program counting IPIP steered to tunl0-gro and other traffic passed", st)
		return
	}
	out, _ := run(t, bin, "--state-dir", stateDir, "status", name)
	if !strings.Contains(out, "eth0 program: ") || !strings.Contains(out, fmt.Sprintf("IPIP to %s", st.Target)) {
		t.Errorf("status does not show the steering counters:\n%s", out)
	}
}
