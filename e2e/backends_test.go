package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
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
	{"three-node-vxlan-l2.yaml", 1450},
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
		})
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

var _ = netip.Addr{}
