package plan

import (
	"io"
	"net/netip"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/labgen"
)

// allocated returns the bytes f allocates and the operations of the plan
// it compiles, expanded.
func compileAllocs(t *testing.T, topo *spec.Topology) (uint64, *Plan) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := Compile(topo)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	return after.TotalAlloc - before.TotalAlloc, p
}

// TestPlanMemoryIsLinear: a 4000-node lab has 16 million cross-node routes
// (48 million kernel entries with VXLAN); its plan must not hold them. The
// plan of such a lab once took more than 6 GB.
func TestPlanMemoryIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles 4000-node plans")
	}
	for _, tc := range []struct {
		backend spec.Backend
		cni     spec.CNI
	}{{spec.BackendHostGW, spec.CNIBridge}, {spec.BackendVXLAN, spec.CNIBridge}, {spec.BackendVXLAN, spec.CNICalico}} {
		backend := tc.backend
		t.Run(string(backend)+"/"+string(tc.cni), func(t *testing.T) {
			perNode := map[int]float64{}
			for _, n := range []int{1000, 4000} {
				topo, err := labgen.Topology("mem", n, backend)
				if err != nil {
					t.Fatal(err)
				}
				topo.Network.CNI = tc.cni
				alloc, p := compileAllocs(t, topo)
				perNode[n] = float64(alloc) / float64(n)
				t.Logf("%d nodes: %.1f MB allocated, %.0f bytes per node", n, float64(alloc)/(1<<20), perNode[n])
				if n == 4000 && alloc > 100<<20 {
					t.Errorf("planning 4000 nodes allocated %d MB, want under 100 MB", alloc>>20)
				}
				// The expansion still yields every pair's operations.
				perPeer := 1
				if backend == spec.BackendVXLAN {
					perPeer = 3
				}
				count := 0
				for _, op := range p.Stages[1].Units[n/2].Ops {
					if po, ok := op.(PeerOps); ok {
						for range po.Expand() {
							count++
						}
					}
				}
				if count != perPeer*(n-1) {
					t.Errorf("node %d expands to %d peer operations, want %d", n/2, count, perPeer*(n-1))
				}
			}
			if perNode[4000] > 1.5*perNode[1000] {
				t.Errorf("bytes per node grew from %.0f at 1000 nodes to %.0f at 4000: not linear", perNode[1000], perNode[4000])
			}
		})
	}
}

// countingWriter counts what is written and keeps nothing.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestWriteScriptStreams: the script of a 300-node VXLAN lab is tens of MB;
// writing it must not hold it.
func TestWriteScriptStreams(t *testing.T) {
	topo, err := labgen.Topology("stream", 300, spec.BackendVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	var w countingWriter
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := p.WriteScript(&w); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// Rendering allocates its lines as it goes; what must not happen is a
	// heap holding the whole script.
	if peak := after.HeapInuse; peak > before.HeapInuse+uint64(w.n)/2 {
		t.Errorf("heap in use grew from %d to %d bytes writing a %d-byte script", before.HeapInuse, after.HeapInuse, w.n)
	}
	if w.n < 300*299*3*50 {
		t.Errorf("the script has only %d bytes", w.n)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriteScriptReportsWriteErrors(t *testing.T) {
	p := compileFile(t, filepath.Join("..", "..", "topologies", "two-node.yaml"))
	if err := p.WriteScript(failingWriter{}); err != io.ErrClosedPipe {
		t.Errorf("WriteScript = %v, want the writer's error", err)
	}
}

// Bridged VXLAN with unicast flooding appends an all-zero FDB entry per
// other node, in node order; no golden script covers it.
func TestUnicastFloodingPeers(t *testing.T) {
	p := compileFile(t, filepath.Join("..", "spec", "testdata", "valid", "vxlan-bridged-unicast.yaml"))
	topo, err := spec.Load(filepath.Join("..", "spec", "testdata", "valid", "vxlan-bridged-unicast.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]netip.Addr{}
	for _, op := range p.Ops() {
		if f, ok := op.(AddFDB); ok {
			if !f.Append || f.MAC.String() != "00:00:00:00:00:00" || f.Device != topo.Network.VXLAN.Device {
				t.Errorf("unexpected fdb entry %s", f.Describe())
			}
			got[f.Namespace] = append(got[f.Namespace], f.Dst)
		}
	}
	for _, n := range topo.Nodes {
		var want []netip.Addr
		for _, peer := range topo.Nodes {
			if peer.Name != n.Name {
				want = append(want, peer.IP)
			}
		}
		ns := NamespaceName(topo.Name, n.Name)
		if len(got[ns]) != len(want) {
			t.Fatalf("%s floods to %v, want %v", ns, got[ns], want)
		}
		for i := range want {
			if got[ns][i] != want[i] {
				t.Errorf("%s floods to %v, want %v", ns, got[ns], want)
			}
		}
	}
}
