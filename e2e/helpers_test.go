// Package e2e holds the root integration tests: they bring real labs up,
// prove the Kubernetes network model over them with native probes, and
// check that nothing is left behind. Each test uses uniquely named labs and
// a private state directory, so packages and tests can run in parallel.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// requireRoot skips a test that needs root, unless LABCTL_REQUIRE_ROOT=1
// (as in CI), where a skipped root test would hide a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and LABCTL_REQUIRE_ROOT=1 forbids skipping it")
	}
	t.Skip("needs root (set LABCTL_REQUIRE_ROOT=1 to make this a failure)")
}

// uniqueName returns a lab name no other test or test package uses.
func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%d%s", prefix, os.Getpid()%100000, hex.EncodeToString(b))
}

var nameLine = regexp.MustCompile(`(?m)^name: .*$`)

// copyTopology writes a copy of a shipped topology under a unique lab name
// and returns its path and the name.
func copyTopology(t *testing.T, file, prefix string) (string, string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "topologies", file))
	if err != nil {
		t.Fatal(err)
	}
	name := uniqueName(prefix)
	data = nameLine.ReplaceAll(data, []byte("name: "+name))
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, name
}

// userspaceIPIP makes a copied topology ask for labctl's userspace IPIP
// datapath, for tests about that datapath whatever the kernel has.
func userspaceIPIP(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(  backend: ipip.*)$`)
	if !re.Match(data) {
		t.Fatalf("%s has no network.backend: ipip line", path)
	}
	data = re.ReplaceAll(data, []byte("$1\n  ipip: {datapath: userspace}"))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTopology writes YAML text to a temp file.
func writeTopology(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// newManager returns a lab manager with a private state directory.
func newManager(t *testing.T) lab.Manager {
	// Helper processes (pod supervisors, the IPIP datapath) run from the
	// labctl binary, not from this test binary.
	return lab.Manager{StateDir: filepath.Join(t.TempDir(), "state"), Executable: buildLabctl(t)}
}

// upLab brings a topology up and takes it down when the test ends, also
// when it fails.
func upLab(t *testing.T, m lab.Manager, path string) *spec.Topology {
	t.Helper()
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := m.Down(topo.Name); err != nil && !errors.Is(err, lab.ErrNotFound) {
			t.Errorf("down: %v", err)
		}
		assertNoNamespaces(t, topo.Name)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Up(ctx, topo, lab.UpOptions{}); err != nil {
		t.Fatalf("up: %v", err)
	}
	return topo
}

// labNamespaces lists the names under /run/netns that belong to a lab.
func labNamespaces(t *testing.T, labName string) []string {
	t.Helper()
	entries, err := os.ReadDir(netns.Dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), labName+"-") {
			names = append(names, e.Name())
		}
	}
	return names
}

func assertNoNamespaces(t *testing.T, labName string) {
	t.Helper()
	if left := labNamespaces(t, labName); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// nsOf returns the namespace path of a node or pod of a lab.
func nsOf(labName, object string) string {
	return netns.Path(plan.NamespaceName(labName, object))
}

// checkNetworkModel proves the Kubernetes network model on a running lab:
// every pod reaches every other pod (same node and across nodes) by ICMP
// echo and by TCP, and the listener sees the sender's own pod IP (no NAT);
// nodes reach every pod and every pod reaches every node.
func checkNetworkModel(t *testing.T, topo *spec.Topology) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pods := topo.Pods()
	for i, src := range pods {
		for _, dst := range pods {
			if src.Name == dst.Name {
				continue
			}
			where := "same node"
			if src.Node != dst.Node {
				where = "cross node"
			}
			res, err := probe.Ping(ctx, nsOf(topo.Name, src.Name), dst.IP, probe.PingOptions{Count: 2, Timeout: 2 * time.Second})
			if err != nil || res.Received == 0 {
				t.Errorf("ping %s -> %s (%s, %s): received %d/%d, err %v", src.Name, dst.Name, dst.IP, where, res.Received, res.Sent, err)
			}
			port := uint16(20000 + i)
			cc, err := probe.CheckTCP(ctx, nsOf(topo.Name, src.Name), nsOf(topo.Name, dst.Name), netip.AddrPortFrom(dst.IP, port))
			switch {
			case err != nil:
				t.Errorf("tcp %s -> %s:%d (%s): %v", src.Name, dst.IP, port, where, err)
			case cc.Seen.Addr() != src.IP:
				t.Errorf("tcp %s -> %s (%s): listener saw source %s, want the pod IP %s (NAT on the path)", src.Name, dst.Name, where, cc.Seen.Addr(), src.IP)
			}
		}
	}
	for _, n := range topo.Nodes {
		for _, pod := range pods {
			res, err := probe.Ping(ctx, nsOf(topo.Name, n.Name), pod.IP, probe.PingOptions{Timeout: 2 * time.Second})
			if err != nil || res.Received == 0 {
				t.Errorf("ping node %s -> pod %s (%s): %v", n.Name, pod.Name, pod.IP, err)
			}
			if _, err := probe.CheckTCP(ctx, nsOf(topo.Name, n.Name), nsOf(topo.Name, pod.Name), netip.AddrPortFrom(pod.IP, 21000)); err != nil {
				t.Errorf("tcp node %s -> pod %s: %v", n.Name, pod.Name, err)
			}
			res, err = probe.Ping(ctx, nsOf(topo.Name, pod.Name), n.IP, probe.PingOptions{Timeout: 2 * time.Second})
			if err != nil || res.Received == 0 {
				t.Errorf("ping pod %s -> node %s (%s): %v", pod.Name, n.Name, n.IP, err)
			}
		}
	}
}
