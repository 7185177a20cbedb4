package e2e

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

func TestTwoNodeNetworkModel(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, _ := copyTopology(t, "two-node.yaml", "tn")
	topo := upLab(t, newManager(t), path)
	checkNetworkModel(t, topo)
}

func TestThreeNodeNetworkModel(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, _ := copyTopology(t, "three-node.yaml", "thn")
	topo := upLab(t, newManager(t), path)
	checkNetworkModel(t, topo)
}

// The objects must be the ones the textbook builds by hand: read them back
// from the kernel.
func TestTwoNodeKernelObjects(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, name := copyTopology(t, "two-node.yaml", "tko")
	upLab(t, newManager(t), path)

	ifs, routes, err := kernel.Inspect(plan.NamespaceName(name, "node1"))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]kernel.Interface{}
	for _, i := range ifs {
		byName[i.Name] = i
	}
	if br := byName["br0"]; br.Kind != "bridge" || br.State != "up" || strings.Join(br.Addresses, ",") != "192.168.1.1/24" {
		t.Errorf("node1 br0 = %+v, want an up bridge with 192.168.1.1/24", br)
	}
	if eth := byName["eth0"]; eth.Kind != "veth" || strings.Join(eth.Addresses, ",") != "10.30.45.100/24" {
		t.Errorf("node1 eth0 = %+v, want veth with 10.30.45.100/24", eth)
	}
	for _, v := range []string{"veth-pod1a", "veth-pod1b"} {
		if byName[v].Master != "br0" || byName[v].State != "up" {
			t.Errorf("node1 %s = %+v, want an up port of br0", v, byName[v])
		}
	}
	if !hasRoute(routes, "192.168.2.0/24", "10.30.45.200", "eth0") {
		t.Errorf("node1 routes %+v lack host-gw route 192.168.2.0/24 via 10.30.45.200 dev eth0", routes)
	}
	fwd, err := readSysctlIn(plan.NamespaceName(name, "node1"), "net/ipv4/ip_forward")
	if err != nil || fwd != "1" {
		t.Errorf("node1 ip_forward = %q (%v), want 1", fwd, err)
	}

	ifs, routes, err = kernel.Inspect(plan.NamespaceName(name, "pod1a"))
	if err != nil {
		t.Fatal(err)
	}
	var eth0, lo kernel.Interface
	for _, i := range ifs {
		switch i.Name {
		case "eth0":
			eth0 = i
		case "lo":
			lo = i
		}
	}
	if eth0.State != "up" || strings.Join(eth0.Addresses, ",") != "192.168.1.10/24" || lo.State != "up" {
		t.Errorf("pod1a eth0 = %+v lo = %+v, want both up and eth0 192.168.1.10/24", eth0, lo)
	}
	if !hasRoute(routes, "default", "192.168.1.1", "eth0") {
		t.Errorf("pod1a routes %+v lack default via 192.168.1.1", routes)
	}
}

func hasRoute(rs []kernel.Route, dst, via, dev string) bool {
	for _, r := range rs {
		if r.Dst == dst && r.Via == via && r.Device == dev {
			return true
		}
	}
	return false
}

func readSysctlIn(ns, key string) (string, error) {
	var val string
	err := netns.Do(netns.Path(ns), func() error {
		data, err := os.ReadFile("/proc/sys/" + key)
		val = strings.TrimSpace(string(data))
		return err
	})
	return val, err
}

// Two labs of the same topology shape are up at once without collisions.
func TestTwoLabsAtOnce(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newManager(t)
	p1, _ := copyTopology(t, "two-node.yaml", "ta")
	p2, _ := copyTopology(t, "two-node.yaml", "tb")
	t1 := upLab(t, m, p1)
	t2 := upLab(t, m, p2)
	checkNetworkModel(t, t1)
	checkNetworkModel(t, t2)
}

func TestUpIsIdempotentAndDownUpAgain(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	m := newManager(t)
	path, name := copyTopology(t, "two-node.yaml", "tre")
	topo := upLab(t, m, path)
	before, _ := m.Load(name)

	_, err := m.Up(context.Background(), topo, lab.UpOptions{})
	if !errors.Is(err, lab.ErrAlreadyUp) {
		t.Fatalf("second up: err = %v, want ErrAlreadyUp", err)
	}
	after, _ := m.Load(name)
	if before.ID != after.ID {
		t.Error("second up changed the lab")
	}

	// A changed topology under the same name is refused, not merged.
	changed := *topo
	changed.Network.MTU = 1400
	if _, err := m.Up(context.Background(), &changed, lab.UpOptions{}); !errors.Is(err, lab.ErrConflict) {
		t.Errorf("up with a different topology: err = %v, want ErrConflict", err)
	}

	// Right after down, the same lab comes up again although the kernel
	// frees the old namespaces asynchronously.
	for i := 0; i < 3; i++ {
		if _, err := m.Down(name); err != nil {
			t.Fatal(err)
		}
		assertNoNamespaces(t, name)
		if _, err := m.Up(context.Background(), topo, lab.UpOptions{}); err != nil {
			t.Fatalf("up again (round %d): %v", i, err)
		}
	}
	checkNetworkModel(t, topo)
}

// A failure in the middle of up removes everything already created.
func TestFailedApplyRollsBack(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	path, name := copyTopology(t, "three-node.yaml", "trb")
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(topo)
	if err != nil {
		t.Fatal(err)
	}
	// Break the last pod: a gateway outside its subnet is unreachable.
	last := &p.Stages[len(p.Stages)-1]
	u := &last.Units[len(last.Units)-1]
	u.Ops = append(u.Ops, plan.AddRoute{Namespace: u.Namespace, Dst: netip.MustParsePrefix("10.99.0.0/16"), Via: netip.MustParseAddr("10.98.0.1")})
	owner := netns.Ownership{Dir: t.TempDir()}
	_, err = kernel.Apply(context.Background(), p, kernel.Options{Owner: owner, LabID: "x"})
	if err == nil {
		t.Fatal("apply succeeded with an unreachable gateway")
	}
	if !strings.Contains(err.Error(), "10.98.0.1") {
		t.Errorf("error %q does not name the failing route", err)
	}
	assertNoNamespaces(t, name)
	if recs, _ := owner.List(); len(recs) != 0 {
		t.Errorf("ownership records left: %v", recs)
	}
}

// Ctrl-C during up rolls back.
func TestCancelledUpRollsBack(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("tcx")
	path := writeTopology(t, bigTopology(name, 4, 120))
	topo, err := spec.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err = m.Up(ctx, topo, lab.UpOptions{Progress: func(done, total int) {
		if done == 20 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("up: err = %v, want context.Canceled", err)
	}
	assertNoNamespaces(t, name)
	if _, err := m.Load(name); !errors.Is(err, lab.ErrNotFound) {
		t.Errorf("record left after cancelled up: %v", err)
	}
}

// A bad topology never creates anything; a name clash is found before
// anything is created.
func TestBadInputLeavesNothing(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	name := uniqueName("tbad")
	bin := buildLabctl(t)
	state := t.TempDir()
	bad := writeTopology(t, "name: "+name+"\nnodes:\n  - name: n1\n    podCIDR: 10.244.0.0/24\n    pods:\n      - name: p1\n        ip: 10.244.1.5\n")
	out, code := run(t, bin, "--state-dir", state, "up", bad)
	if code != 3 || !strings.Contains(out, "nodes[0].pods[0].ip") {
		t.Errorf("up invalid: exit %d, output %q; want exit 3 naming nodes[0].pods[0].ip", code, out)
	}
	assertNoNamespaces(t, name)

	// A namespace labctl did not create holds one of the lab's names.
	good := writeTopology(t, "name: "+name+"\nnodes:\n  - name: n1\n    pods:\n      - name: p1\n      - name: p2\n")
	squat := plan.NamespaceName(name, "p2")
	if out, err := exec.Command("ip", "netns", "add", squat).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", squat).Run() })
	out, code = run(t, bin, "--state-dir", state, "up", good)
	if code != 5 || !strings.Contains(out, squat) || !strings.Contains(out, "not created by labctl") {
		t.Errorf("up over a foreign namespace: exit %d, output %q", code, out)
	}
	if left := labNamespaces(t, name); len(left) != 1 || left[0] != squat {
		t.Errorf("namespaces after refused up: %v, want only the foreign %s", left, squat)
	}
	// down --all must not touch the foreign namespace either.
	run(t, bin, "--state-dir", state, "down", "--all")
	if _, err := os.Stat(netns.Path(squat)); err != nil {
		t.Errorf("down --all removed a namespace labctl did not create: %v", err)
	}
}

// bigTopology generates a lab with automatic addresses.
func bigTopology(name string, nodes, pods int) string {
	var b bytes.Buffer
	b.WriteString("name: " + name + "\nnodes:\n")
	for n := 0; n < nodes; n++ {
		b.WriteString("  - name: n" + itoa(n) + "\n    pods:\n")
		for p := n; p < pods; p += nodes {
			b.WriteString("      - name: p" + itoa(p) + "\n")
		}
	}
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
