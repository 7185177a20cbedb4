package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// backendLabs are the shipped topologies of each cross-node backend.
var backendLabs = []struct {
	file   string
	podMTU int
}{
	{"two-node.yaml", 1500},
	{"two-node-vxlan.yaml", 1450},
	{"two-node-ipip.yaml", 1480},
	{"three-node-vxlan-l2.yaml", 1450},
	{"three-node-mixed.yaml", 1450},
	{"calico-ipip.yaml", 1480},
	{"calico-vxlan.yaml", 1450},
	{"calico-no-encap.yaml", 1500},
}

// newBackendManager is newManager with the labctl binary to run helper
// processes (the userspace IPIP datapath) from.
func newBackendManager(t *testing.T) lab.Manager {
	m := newManager(t)
	m.Executable = buildLabctl(t)
	return m
}

// Every backend must pass the whole network-model suite, fit the pod MTU
// exactly (largest don't-fragment echo passes, one byte more does not) and
// carry a 1 MiB HTTP body between pods on different nodes.
func TestBackendsNetworkModel(t *testing.T) {
	requireRoot(t)
	for _, bl := range backendLabs {
		t.Run(bl.file, func(t *testing.T) {
			t.Parallel()
			path, _ := copyTopology(t, bl.file, "tbk")
			topo := upLab(t, newBackendManager(t), path)
			if got := topo.PodMTU(); got != bl.podMTU {
				t.Errorf("pod MTU = %d, want %d", got, bl.podMTU)
			}
			checkNetworkModel(t, topo)
			checkCrossNodeMTU(t, topo)
			checkLargeHTTP(t, topo)
			checkEncapsulation(t, topo)
		})
	}
}

// A VXLAN lab with Calico's port and another VNI puts exactly those on the wire.
func TestVXLANPortAndVNI(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, _ := copyTopology(t, "two-node-vxlan.yaml", "tvni")
	data, _ := os.ReadFile(path)
	data = bytes.Replace(data, []byte("  mtu: 1500\n"), []byte("  mtu: 1500\n  vxlan:\n    vni: 42\n    port: 4789\n"), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	topo := upLab(t, newBackendManager(t), path)
	if topo.Network.VXLAN.VNI != 42 || topo.Network.VXLAN.Port != 4789 {
		t.Fatalf("vxlan options not taken: %+v", topo.Network.VXLAN)
	}
	checkEncapsulation(t, topo)
}

// checkEncapsulation watches node A's cable on the underlay switch while a
// pod on A pings a pod on B, and checks the packet on the wire is what the
// link's backend puts there: plain pod IPs (host-gw), UDP to the VXLAN port
// with the VNI and the pod packet inside (vxlan), or IP protocol 4 between
// the node IPs with the pod packet inside (ipip).
func checkEncapsulation(t *testing.T, topo *spec.Topology) {
	t.Helper()
	underlay := netns.Path(plan.UnderlayNamespace(topo.Name))
	for _, pair := range crossNodePairs(topo) {
		src, dst := pair[0], pair[1]
		srcNode, _ := topo.Node(src.Node)
		dstNode, _ := topo.Node(dst.Node)
		backend := topo.LinkBackend(srcNode.Name, dstNode.Name)
		c, err := capture.Open(underlay, plan.VethName(srcNode.Name), capture.Options{Direction: capture.In, VXLANPorts: []uint16{uint16(topo.Network.VXLAN.Port)}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go probe.Ping(ctx, nsOf(topo.Name, src.Name), dst.IP, probe.PingOptions{Count: 20, Interval: 50 * time.Millisecond})
		isEcho := func(h *capture.Headers) bool {
			return h != nil && h.IPv4 != nil && h.ICMP != nil && h.IPv4.Src == src.IP && h.IPv4.Dst == dst.IP
		}
		var match func(capture.Packet) bool
		var want string
		switch backend {
		case spec.BackendHostGW:
			want = "a plain ICMP packet between the pod IPs"
			match = func(p capture.Packet) bool { return isEcho(&p.Headers) && p.Inner == nil }
		case spec.BackendVXLAN:
			vni, port := uint32(topo.Network.VXLAN.VNI), uint16(topo.Network.VXLAN.Port)
			want = fmt.Sprintf("UDP %s -> %s:%d, VNI %d, with the pod packet inside", srcNode.IP, dstNode.IP, port, vni)
			if topo.Network.VXLAN.Mode == spec.VXLANBridged {
				// Bridged VXLAN sends to the node whose bridge has the pod.
				want = fmt.Sprintf("UDP %s -> %s:%d, VNI %d (bridged: to the node of the pod)", srcNode.IP, dstNode.IP, port, vni)
			}
			match = func(p capture.Packet) bool {
				return p.IPv4 != nil && p.IPv4.Src == srcNode.IP && p.IPv4.Dst == dstNode.IP &&
					p.UDP != nil && p.UDP.DstPort == port && p.VXLAN != nil && p.VXLAN.VNI == vni && isEcho(p.Innermost())
			}
		case spec.BackendIPIP:
			want = fmt.Sprintf("IP protocol 4 %s -> %s with the pod packet inside", srcNode.IP, dstNode.IP)
			match = func(p capture.Packet) bool {
				return p.IPv4 != nil && p.IPv4.Src == srcNode.IP && p.IPv4.Dst == dstNode.IP &&
					p.IPv4.Protocol == 4 && p.Inner != nil && isEcho(p.Inner)
			}
		}
		if _, err := c.Expect(ctx, match); err != nil {
			t.Errorf("%s link %s -> %s: no %s on the underlay: %v", backend, srcNode.Name, dstNode.Name, want, err)
		}
		cancel()
		c.Close()
	}
}

// crossNodePairs lists, for each ordered pair of nodes, one pod on each.
func crossNodePairs(topo *spec.Topology) [][2]spec.Pod {
	var pairs [][2]spec.Pod
	for _, a := range topo.Nodes {
		for _, b := range topo.Nodes {
			if a.Name != b.Name && len(a.Pods) > 0 && len(b.Pods) > 0 {
				pairs = append(pairs, [2]spec.Pod{a.Pods[0], b.Pods[0]})
			}
		}
	}
	return pairs
}

func checkCrossNodeMTU(t *testing.T, topo *spec.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	largest := topo.PodMTU() - 28 // IPv4 20 + ICMP 8
	for _, pair := range crossNodePairs(topo) {
		src, dst := pair[0], pair[1]
		res, err := probe.Ping(ctx, nsOf(topo.Name, src.Name), dst.IP, probe.PingOptions{Size: largest, DontFragment: true, Timeout: 2 * time.Second})
		if err != nil || res.Received != 1 {
			t.Errorf("DF ping of %d bytes %s -> %s: received %d, err %v, echoes %+v", largest, src.Name, dst.Name, res.Received, err, res.Echoes)
		}
		res, _ = probe.Ping(ctx, nsOf(topo.Name, src.Name), dst.IP, probe.PingOptions{Size: largest + 1, DontFragment: true, Timeout: 500 * time.Millisecond})
		if res.Received != 0 || len(res.Echoes) != 1 || !errors.Is(res.Echoes[0].Err, syscall.EMSGSIZE) {
			t.Errorf("DF ping of %d bytes %s -> %s should not fit the pod MTU %d: %+v", largest+1, src.Name, dst.Name, topo.PodMTU(), res.Echoes)
		}
	}
}

func checkLargeHTTP(t *testing.T, topo *spec.Topology) {
	t.Helper()
	body := bytes.Repeat([]byte("labctl pod network "), (1<<20)/19+1)[:1<<20]
	want := sha256.Sum256(body)
	for i, pair := range crossNodePairs(topo) {
		src, dst := pair[0], pair[1]
		port := 30000 + i
		ln, err := probe.ListenTCP(nsOf(topo.Name, dst.Name), fmt.Sprintf("%s:%d", dst.IP, port))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
		go srv.Serve(ln)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/", dst.IP, port), nil)
		resp, err := probe.HTTPClient(nsOf(topo.Name, src.Name)).Do(req)
		if err != nil {
			t.Errorf("GET 1 MiB %s -> %s: %v", src.Name, dst.Name, err)
		} else {
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || sha256.Sum256(got) != want {
				t.Errorf("GET 1 MiB %s -> %s: read %d bytes, err %v, body intact %v", src.Name, dst.Name, len(got), err, sha256.Sum256(got) == want)
			}
		}
		cancel()
		srv.Close()
	}
}

// Killing the userspace IPIP datapath is detected: status reports it dead
// and cross-node traffic stops; down still cleans up.
func TestUserspaceIPIPDeathReported(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	m := newBackendManager(t)
	path, name := copyTopology(t, "two-node-ipip.yaml", "tkill")
	userspaceIPIP(t, path)
	topo := upLab(t, m, path)
	rec, err := m.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	d := rec.Datapaths["node2"]
	if d == nil || d.Kind != spec.DatapathUserspace || d.Process == nil || !d.Process.Alive() {
		t.Fatalf("node2 datapath = %+v, want a running userspace process (datapath: userspace)", d)
	}
	if err := syscall.Kill(d.Process.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Process.Alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out, code := run(t, bin, "--state-dir", m.StateDir, "status", name)
	if code != 0 || !strings.Contains(out, "DEAD") || !strings.Contains(out, fmt.Sprint(d.Process.PID)) {
		t.Errorf("status after killing the datapath: exit %d:\n%s", code, out)
	}
	out, _ = run(t, bin, "--state-dir", m.StateDir, "status", name, "-o", "json")
	if !strings.Contains(out, `"running": false`) {
		t.Errorf("status -o json does not report the dead datapath:\n%s", out)
	}
	pod1a, _ := topo.Pod("pod1a")
	pod2, _ := topo.Pod("pod2")
	res, _ := probe.Ping(context.Background(), nsOf(name, pod1a.Name), pod2.IP, probe.PingOptions{Timeout: 300 * time.Millisecond})
	if res.Received != 0 {
		t.Error("pods still reach each other across a dead IPIP datapath")
	}
}

// With datapath auto, the kernel's ipip device serves tunl0 where the
// kernel has the module, and labctl's userspace datapath where it has not;
// status says which and why. Either way this test checks the path taken.
func TestIPIPDatapathChoice(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newBackendManager(t)
	path, name := copyTopology(t, "two-node-ipip.yaml", "tdpc")
	upLab(t, m, path)
	rec, err := m.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"node1", "node2"} {
		d := rec.Datapaths[node]
		switch {
		case d == nil:
			t.Errorf("%s: no datapath recorded", node)
		case lab.KernelHasModule("ipip"):
			if d.Kind != spec.DatapathKernel || d.Process != nil {
				t.Errorf("%s: datapath %+v on a kernel with ipip, want the kernel's device and no process", node, d)
			}
		default:
			if d.Kind != spec.DatapathUserspace || d.Process == nil || !d.Process.Alive() || !strings.Contains(d.Reason, "no ipip module") {
				t.Errorf("%s: datapath %+v on a kernel without ipip, want a running userspace process and the reason", node, d)
			}
		}
	}
}
