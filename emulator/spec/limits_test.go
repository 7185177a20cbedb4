package spec

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nodesYAML lists n nodes, every address automatic, with extra appended.
func nodesYAML(n int, network, extra string) []byte {
	var b strings.Builder
	b.WriteString("name: caps\nnetwork:\n  underlay: 10.0.0.0/16\n  clusterCIDR: 10.128.0.0/9\n" + network + "nodes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: n%d\n", i)
	}
	b.WriteString(extra)
	return []byte(b.String())
}

// TestCaps checks each limit of what one host holds, at the limit and one
// past it, and that the message points at what asks for too much.
func TestCaps(t *testing.T) {
	pods := func(n int) string {
		var b strings.Builder
		b.WriteString("  - name: big\n    podCIDR: 10.200.0.0/20\n    pods:\n")
		for i := range n {
			fmt.Fprintf(&b, "      - name: p%d\n", i)
		}
		return b.String()
	}
	containers := func(n int) string {
		var b strings.Builder
		b.WriteString("  - name: big\n    pods:\n      - name: p\n        containers:\n")
		for i := range n {
			fmt.Fprintf(&b, "          - {name: c%d, builtin: client}\n", i)
		}
		return b.String()
	}
	// deployments of replicas each, split in deployments of at most
	// MaxReplicas.
	deployment := func(replicas int, containers int) string {
		var b strings.Builder
		b.WriteString("deployments:\n")
		for d := 0; replicas > 0; d++ {
			n := min(replicas, MaxReplicas)
			replicas -= n
			fmt.Fprintf(&b, "  - name: d%d\n    replicas: %d\n    template:\n      containers:\n", d, n)
			for i := range containers {
				fmt.Fprintf(&b, "        - {name: c%d, builtin: client}\n", i)
			}
			if containers == 0 {
				b.WriteString("        - {name: c, builtin: client}\n")
			}
		}
		return b.String()
	}
	tests := []struct {
		name string
		data []byte
		want string // "" for valid
	}{
		{"nodes at the cap", nodesYAML(MaxNodes, "", ""), ""},
		{"nodes past the cap", nodesYAML(MaxNodes+1, "", ""),
			"caps.yaml:5:1: nodes: 1024 nodes are more than one host can hold: at most 1023 (each node's eth0 is a port of the underlay bridge, and a Linux bridge takes at most 1023 ports)"},
		{"pods at the bridge's cap", nodesYAML(1, "", pods(MaxBridgePorts)), ""},
		{"pods past the bridge's cap", nodesYAML(1, "", pods(MaxBridgePorts+1)),
			"caps.yaml:9:5: nodes[1].pods: 1024 pods are more than a node can hold: at most 1023 (each pod's veth is a port of the node's bridge, and a Linux bridge takes at most 1023 ports)"},
		{"bridged vxlan takes a port", nodesYAML(1, "  backend: vxlan\n  vxlan: {mode: bridged}\n", pods(MaxBridgePorts)),
			"caps.yaml:11:5: nodes[1].pods: 1023 pods do not fit big's bridge cni0: a Linux bridge takes at most 1023 ports, and bridged VXLAN's vxlan0 takes one"},
		{"containers at the cap", nodesYAML(1, "", containers(MaxContainersPerPod)), ""},
		{"containers past the cap", nodesYAML(1, "", containers(MaxContainersPerPod+1)),
			"caps.yaml:10:9: nodes[1].pods[0].containers: 101 containers are more than a pod may have (at most 100)"},
		{"namespaces at the cap", nodesYAML(100, "", deployment(MaxNamespaces-101, 0)), ""},
		{"namespaces past the cap", nodesYAML(100, "", deployment(MaxNamespaces-100, 0)),
			"caps.yaml:113:5: deployments[1].replicas: 4900 replicas would make the lab 10001 namespaces; one host holds at most 10000 (each costs the kernel about 0.4 MB)"},
		{"lab-wide containers at the cap", nodesYAML(1000, "", deployment(4000, 5)), ""},
		{"lab-wide containers past the cap", nodesYAML(1000, "", deployment(4000, 6)),
			"caps.yaml:1007:5: deployments[0].template.containers: this pod brings the lab to 20004 containers; one host runs at most 20000 (each is a process, and the kernel's default pid_max of 32768 is shared with the whole host)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("caps.yaml", tt.data)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %.500v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse = %.500v\nwant    %s", err, tt.want)
			}
		})
	}
}

// TestHugeFileRefusedQuickly: the 20000-node file that drove a host into
// the OOM killer is refused with the cap's message, fast and small.
func TestHugeFileRefusedQuickly(t *testing.T) {
	data := nodesYAML(20000, "", "")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err := Parse("huge.yaml", data)
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	var inv *InvalidError
	if !errors.As(err, &inv) || len(inv.Problems) != 1 || !strings.Contains(err.Error(), "20000 nodes are more than one host can hold: at most 1023") {
		t.Fatalf("Parse = %.300v, want only the node cap", err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d bytes of YAML refused in %v, %d MB allocated", len(data), took, alloc>>20)
	if alloc > 100<<20 {
		t.Errorf("refusing it allocated %d MB, want under 100 MB", alloc>>20)
	}
	if took > 5*time.Second {
		t.Errorf("refusing it took %v", took)
	}
}
