package e2e

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/workload"
)

// Every fault, applied through the lab facade to a lab that is up, breaks
// what it should: a probe that passed before fails after. Each runs on a
// fresh lab of its own (flannel's VXLAN, so neighbour and FDB entries are
// there to remove).
func TestFaultsBreakTheLab(t *testing.T) {
	requireRoot(t)
	pod2 := netip.MustParseAddr("192.168.2.20")
	pod1b := netip.MustParseAddr("192.168.1.20")
	node2 := netip.MustParseAddr("10.30.45.200")
	vtep2 := netip.MustParseAddr("192.168.2.0")
	tests := []struct {
		name string
		ops  func(l string) []plan.Op
		from string
		to   netip.Addr
		size int
	}{
		{"delete the route to the peer subnet", func(l string) []plan.Op {
			return []plan.Op{plan.DeleteRoute{Namespace: plan.NamespaceName(l, "node1"), Dst: netip.MustParsePrefix("192.168.2.0/24")}}
		}, "pod1a", pod2, 0},
		{"replace it by one to nowhere", func(l string) []plan.Op {
			return []plan.Op{plan.ReplaceRoute{Namespace: plan.NamespaceName(l, "node1"), Dst: netip.MustParsePrefix("192.168.2.0/24"),
				Via: netip.MustParseAddr("10.30.45.99"), Device: "eth0"}}
		}, "pod1a", pod2, 0},
		{"take a pod's link down", func(l string) []plan.Op {
			return []plan.Op{plan.SetLinkDown{Namespace: plan.NamespaceName(l, "node1"), Device: "veth-pod1b"}}
		}, "pod1a", pod1b, 0},
		{"shrink the underlay", func(l string) []plan.Op {
			return []plan.Op{plan.SetMTU{Namespace: plan.UnderlayNamespace(l), Device: "veth-node2", MTU: 1400}}
		}, "node1", node2, 1472},
		{"stop forwarding", func(l string) []plan.Op {
			return []plan.Op{plan.SetSysctl{Namespace: plan.NamespaceName(l, "node2"), Settings: []plan.Sysctl{{Key: "net.ipv4.ip_forward", Value: "0"}}}}
		}, "pod1a", pod2, 0},
		{"drop ICMP to pod2 on node1", func(l string) []plan.Op {
			return []plan.Op{plan.AddDropRule{Namespace: plan.NamespaceName(l, "node1"), Hook: plan.HookForward, Protocol: "icmp",
				Dst: netip.PrefixFrom(pod2, 32)}}
		}, "pod1a", pod2, 0},
		{"forget the peer's VTEP neighbour", func(l string) []plan.Op {
			return []plan.Op{plan.DeleteNeighbor{Namespace: plan.NamespaceName(l, "node1"), Device: "flannel.1", IP: vtep2}}
		}, "pod1a", pod2, 0},
		{"forget where the peer's VTEP is", func(l string) []plan.Op {
			return []plan.Op{plan.DeleteFDB{Namespace: plan.NamespaceName(l, "node1"), Device: "flannel.1", MAC: plan.VTEPMAC(node2), Dst: node2}}
		}, "pod1a", pod2, 0},
	}
	m := newManager(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path, name := copyTopology(t, "two-node-vxlan.yaml", "ft")
			upLab(t, m, path)
			ping := func() int {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				r, err := probe.Ping(ctx, nsOf(name, tt.from), tt.to, probe.PingOptions{Count: 2, Size: tt.size, Timeout: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				return r.Received
			}
			// Before: the lab works (the first echoes may wait for ARP).
			for i := 0; ping() != 2; i++ {
				if i == 5 {
					t.Fatal("before the fault: the ping does not pass")
				}
			}
			if err := m.ApplyFaults(context.Background(), name, tt.ops(name)); err != nil {
				t.Fatal(err)
			}
			if got := ping(); got != 0 {
				t.Errorf("after the fault: %d/2 replies, want none", got)
			}
		})
	}
}

// A fault names a namespace of the lab it breaks: one of another lab's is
// refused before anything is applied, and a fault the kernel refuses
// (removing what is not there) says which command failed.
func TestFaultsStayInTheirLab(t *testing.T) {
	requireRoot(t)
	m := newManager(t)
	path, name := copyTopology(t, "two-node.yaml", "fs")
	upLab(t, m, path)
	other := uniqueName("other")
	err := m.ApplyFaults(context.Background(), name, []plan.Op{
		plan.SetLinkDown{Namespace: plan.NamespaceName(name, "node1"), Device: "eth0"},
		plan.SetLinkDown{Namespace: plan.NamespaceName(other, "node1"), Device: "eth0"},
	})
	if !errors.Is(err, lab.ErrNotFound) {
		t.Errorf("a fault in another lab: %v, want ErrNotFound", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := probe.Ping(ctx, nsOf(name, "node1"), netip.MustParseAddr("10.30.45.200"), probe.PingOptions{Timeout: time.Second}); err != nil || r.Received != 1 {
		t.Errorf("node1's eth0 went down although the faults were refused: %v", err)
	}
	err = m.ApplyFaults(context.Background(), name, []plan.Op{
		plan.DeleteRoute{Namespace: plan.NamespaceName(name, "node1"), Dst: netip.MustParsePrefix("10.99.0.0/16")},
	})
	if err == nil || !strings.Contains(err.Error(), `ip -n "`+name+`-node1" route del 10.99.0.0/16`) {
		t.Errorf("removing a route that is not there: %v", err)
	}
}

// Stopping a container: with restartPolicy Always its supervisor starts it
// again (the student's repair is to wait, as in Kubernetes); with Never it
// stays stopped, and stopping it again says it is not running.
func TestStopContainer(t *testing.T) {
	requireRoot(t)
	m := newManager(t)
	path, name := copyTopology(t, "two-node.yaml", "sc")
	setRestartPolicy(t, path, "pod2", "Never")
	upLab(t, m, path)
	// waitRunning waits for the web-server of pod to run as a process
	// other than notPID.
	waitRunning := func(pod string, notPID int) workload.ContainerStatus {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := workload.ReadStatus(m.PodStateDir(name, pod))
			if err == nil {
				for _, c := range st.Containers {
					if c.Name == "web-server" && c.State == workload.StateRunning && c.PID != 0 && c.PID != notPID {
						return c
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's web-server is not running: %+v, %v", pod, st.Containers, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	before := waitRunning("pod1a", 0)
	if err := m.ApplyFaults(context.Background(), name, []plan.Op{
		plan.StopContainer{Namespace: plan.NamespaceName(name, "pod1a"), Lab: name, Pod: "pod1a", Container: "web-server"},
	}); err != nil {
		t.Fatal(err)
	}
	after := waitRunning("pod1a", before.PID)
	if after.Restarts != before.Restarts+1 {
		t.Errorf("pod1a's web-server: pid %d -> %d, restarts %d -> %d; want a restart", before.PID, after.PID, before.Restarts, after.Restarts)
	}

	waitRunning("pod2", 0)
	if err := m.StopContainer(name, "pod2", "web-server"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := workload.ReadStatus(m.PodStateDir(name, "pod2"))
		if err == nil && st.Containers[1].State == workload.StateTerminated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod2's web-server did not stay stopped: %+v, %v", st.Containers, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := m.StopContainer(name, "pod2", "web-server"); !errors.Is(err, lab.ErrNotRunning) {
		t.Errorf("stopping it again: %v, want ErrNotRunning", err)
	}
	if err := m.StopContainer(name, "pod2", "nope"); !errors.Is(err, lab.ErrNotFound) {
		t.Errorf("stopping a container that does not exist: %v, want ErrNotFound", err)
	}
}

// setRestartPolicy gives a pod of a copied topology a restart policy.
func setRestartPolicy(t *testing.T, path, pod, policy string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := "      - name: " + pod + "\n"
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no pod %s", path, pod)
	}
	data = []byte(strings.Replace(string(data), old, old+"        restartPolicy: "+policy+"\n", 1))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
