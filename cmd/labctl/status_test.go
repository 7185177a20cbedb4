package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/labctl/labctl/internal/golden"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// created is when the fixture labs came up; now is 90 s later.
var (
	created = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	now     = created.Add(90 * time.Second)
)

func loadTopology(t *testing.T, file string) *spec.Topology {
	t.Helper()
	topo, err := spec.Load("../../topologies/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// twoNodeStatus is the two-node lab with one of everything a student can
// meet: a missing namespace, a dead IPIP datapath, containers running,
// crash-looping after restarts and OOM-killed.
func twoNodeStatus(t *testing.T) *lab.Status {
	topo := loadTopology(t, "two-node.yaml")
	s := &lab.Status{Name: "two-node", File: "/labs/two-node.yaml", Phase: lab.PhaseDegraded, CreatedAt: created, Topology: topo,
		Problems: []string{`pod "pod2": namespace "two-node-pod2" is missing`}}
	oom := &workload.Termination{ExitCode: 137, Signal: "SIGKILL", Reason: workload.ReasonOOMKilled, FinishedAt: created.Add(30 * time.Second)}
	crash := &workload.Termination{ExitCode: 1, Reason: workload.ReasonError, FinishedAt: created.Add(80 * time.Second)}
	s.Namespaces = []lab.NamespaceStatus{
		{Namespace: "two-node-underlay", Role: "underlay", Name: "underlay", State: "ours", Present: true, Interfaces: []kernel.Interface{
			{Name: "lo", Kind: "device", State: "up", MTU: 65536}, {Name: "underlay0", Kind: "bridge", State: "up", MTU: 1500, MAC: "0e:00:00:00:00:01"},
			{Name: "veth-node1", Kind: "veth", State: "up", Master: "underlay0"}, {Name: "veth-node2", Kind: "veth", State: "up", Master: "underlay0"}}},
		{Namespace: "two-node-node1", Role: "node", Name: "node1", IP: "10.30.45.100", PodCIDR: "192.168.1.0/24", Bridge: "br0", State: "ours", Present: true, Interfaces: []kernel.Interface{
			{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, MAC: "0e:00:00:00:01:01", Addresses: []string{"10.30.45.100/24"}},
			{Name: "br0", Kind: "bridge", State: "up", MTU: 1500, MAC: "0e:00:00:00:01:02", Addresses: []string{"192.168.1.1/24"}},
			{Name: "veth-pod1a", Kind: "veth", State: "up", Master: "br0"}}},
		{Namespace: "two-node-pod1a", Role: "pod", Name: "pod1a", Node: "node1", IP: "192.168.1.10", State: "ours", Present: true,
			Interfaces: []kernel.Interface{{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, MAC: "0e:00:00:00:02:01", Addresses: []string{"192.168.1.10/24"}}},
			Pod: &workload.PodStatus{Phase: workload.PhaseRunning, Containers: []workload.ContainerStatus{
				{Name: "curl-client", State: workload.StateRunning, PID: 4100},
				{Name: "web-server", State: workload.StateRunning, PID: 4101}}}},
		{Namespace: "two-node-pod1b", Role: "pod", Name: "pod1b", Node: "node1", IP: "192.168.1.20", State: "ours", Present: true,
			Interfaces: []kernel.Interface{{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"192.168.1.20/24"}}},
			Pod: &workload.PodStatus{Phase: workload.PhaseRunning, Containers: []workload.ContainerStatus{
				{Name: "curl-client", State: workload.StateWaiting, Reason: workload.ReasonCrashLoopBackOff, Restarts: 3, Termination: crash},
				{Name: "web-server", State: workload.StateTerminated, Reason: workload.ReasonOOMKilled, Termination: oom}}}},
		{Namespace: "two-node-pod2", Role: "pod", Name: "pod2", Node: "node2", IP: "192.168.2.20", State: "missing"},
	}
	s.Datapaths = []lab.DatapathStatus{{Node: "node2", Device: "tunl0", Kind: "userspace", Reason: "the kernel has no ipip module", PID: 4242, Running: false, Log: "/run/labctl/logs/two-node/node2-ipip.log"}}
	return s
}

// The status table of a lab, from typed values: what users read.
func TestStatusTableGolden(t *testing.T) {
	for _, wide := range []bool{false, true} {
		var b bytes.Buffer
		writeStatusTable(&b, twoNodeStatus(t), now, wide)
		golden.Check(t, "testdata/status-table"+wideSuffix(wide)+".golden", b.Bytes())
	}
}

func wideSuffix(wide bool) string {
	if wide {
		return "-wide"
	}
	return ""
}

func labList(t *testing.T) []*lab.Status {
	mixed := loadTopology(t, "three-node-mixed.yaml")
	return []*lab.Status{
		{Name: "broken", Phase: "unknown", Error: `lab "broken": unusable record /run/labctl/labs/broken.json: unexpected end of JSON input`},
		{Name: "three-node-mixed", File: "/labs/three-node-mixed.yaml", Phase: lab.PhaseUp, CreatedAt: created.Add(-3 * time.Hour), Topology: mixed,
			Namespaces: make([]lab.NamespaceStatus, 7)},
		twoNodeStatus(t),
	}
}

// status without a name: one line per lab, like kubectl get.
func TestStatusListGolden(t *testing.T) {
	for _, wide := range []bool{false, true} {
		var b bytes.Buffer
		writeLabList(&b, labList(t), now, wide)
		golden.Check(t, "testdata/status-list"+wideSuffix(wide)+".golden", b.Bytes())
	}
}

func nodeObject() *lab.ObjectStatus {
	return &lab.ObjectStatus{Lab: "two-node-vxlan", NamespaceStatus: lab.NamespaceStatus{
		Namespace: "two-node-vxlan-node1", Role: "node", Name: "node1", IP: "10.30.45.100", PodCIDR: "192.168.1.0/24", Bridge: "br0",
		State: "ours", Present: true,
		Interfaces: []kernel.Interface{
			{Name: "lo", Kind: "device", State: "up", MTU: 65536, Addresses: []string{"127.0.0.1/8"}},
			{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, MAC: "0e:00:00:00:01:01", Addresses: []string{"10.30.45.100/24"}},
			{Name: "br0", Kind: "bridge", State: "up", MTU: 1450, MAC: "0e:00:00:00:01:02", Addresses: []string{"192.168.1.1/24"}},
			{Name: "veth-pod1a", Kind: "veth", State: "up", MTU: 1450, MAC: "0e:00:00:00:01:03", Master: "br0"},
			{Name: "flannel.1", Kind: "vxlan", State: "up", MTU: 1450, MAC: "0e:fa:0a:1e:2d:64", Addresses: []string{"192.168.1.0/32"}},
		},
		Routes: []kernel.Route{
			{Dst: "10.30.45.0/24", Device: "eth0", Type: "unicast", Protocol: "kernel", Scope: "link", Table: "main", Src: "10.30.45.100"},
			{Dst: "192.168.1.0/24", Device: "br0", Type: "unicast", Protocol: "kernel", Scope: "link", Table: "main", Src: "192.168.1.1"},
			{Dst: "192.168.2.0/24", Via: "192.168.2.0", Device: "flannel.1", Type: "unicast", Protocol: "boot", Scope: "global", Table: "main", Flags: []string{"onlink"}},
			{Dst: "192.168.3.0/24", Type: "blackhole", Protocol: "bird", Scope: "global", Table: "main"},
		},
	},
		Neighbours: []kernel.Neighbour{
			{IP: "192.168.2.0", MAC: "0e:fa:0a:1e:2d:c8", Device: "flannel.1", State: "permanent"},
			{IP: "192.168.1.10", MAC: "0e:00:00:00:02:01", Device: "br0", State: "reachable", Flags: []string{"extern_learn"}},
		},
		FDB: []kernel.FDBEntry{
			{MAC: "0e:fa:0a:1e:2d:c8", Device: "flannel.1", Dst: "10.30.45.200", State: "permanent", Flags: []string{"self"}},
			{MAC: "0e:00:00:00:01:03", Device: "veth-pod1a", Master: "br0", State: "permanent"},
			{MAC: "0e:00:00:00:02:01", Device: "veth-pod1a", Master: "br0", VLAN: 1, State: "dynamic"},
		},
	}
}

func podObject(t *testing.T) *lab.ObjectStatus {
	s := twoNodeStatus(t)
	o := &lab.ObjectStatus{Lab: s.Name, NamespaceStatus: s.Namespaces[3]}
	o.Routes = []kernel.Route{
		{Dst: "default", Via: "192.168.1.1", Device: "eth0", Type: "unicast", Protocol: "boot", Scope: "global", Table: "main"},
		{Dst: "192.168.1.0/24", Device: "eth0", Type: "unicast", Protocol: "kernel", Scope: "link", Table: "main", Src: "192.168.1.20"},
	}
	o.Pod.Containers[0].StartedAt = created.Add(10 * time.Second)
	return o
}

// status LAB OBJECT: one namespace's interfaces, routes, neighbours, FDB.
func TestStatusObjectGolden(t *testing.T) {
	missing := &lab.ObjectStatus{Lab: "two-node", NamespaceStatus: lab.NamespaceStatus{Namespace: "two-node-pod2", Role: "pod", Name: "pod2", Node: "node2", IP: "192.168.2.20", State: "missing"}}
	for _, tt := range []struct {
		name string
		o    *lab.ObjectStatus
	}{{"node", nodeObject()}, {"pod", podObject(t)}, {"missing", missing}} {
		for _, wide := range []bool{false, true} {
			var b bytes.Buffer
			writeObjectTable(&b, tt.o, now, wide)
			golden.Check(t, "testdata/status-object-"+tt.name+wideSuffix(wide)+".golden", b.Bytes())
		}
	}
}

// JSON and YAML are one document: the same fields, names and values.
func TestStatusYAMLIsTheJSONDocument(t *testing.T) {
	for _, doc := range []any{
		newLabListDoc(labList(t)),
		newLabDoc(twoNodeStatus(t)),
		objectDoc{APIVersion: apiVersion, Kind: "Node", ObjectStatus: nodeObject()},
	} {
		var j, y bytes.Buffer
		if err := writeDoc(&j, outJSON, doc); err != nil {
			t.Fatal(err)
		}
		if err := writeDoc(&y, outYAML, doc); err != nil {
			t.Fatal(err)
		}
		var fromJSON, fromYAML any
		if err := json.Unmarshal(j.Bytes(), &fromJSON); err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(y.Bytes(), &fromYAML); err != nil {
			t.Fatalf("%v\n%s", err, y.String())
		}
		// Through JSON again, so numbers and maps compare alike.
		a, _ := json.Marshal(fromJSON)
		b, _ := json.Marshal(fromYAML)
		if !bytes.Equal(a, b) {
			t.Errorf("yaml differs from json:\n%s\n---\n%s", j.String(), y.String())
		}
		if strings.Contains(y.String(), "{") || strings.Contains(y.String(), `"apiVersion"`) {
			t.Errorf("yaml is not in block style:\n%s", y.String())
		}
	}
	var y bytes.Buffer
	writeDoc(&y, outYAML, objectDoc{APIVersion: apiVersion, Kind: "Node", ObjectStatus: nodeObject()})
	golden.Check(t, "testdata/status-object-node.yaml.golden", y.Bytes())
}

// kubectl's pod printer: the first container's reason wins, restarts add
// up with the time since the last one, Completed next to a running
// container reads NotReady.
func TestSummarizePod(t *testing.T) {
	topo := loadTopology(t, "two-node.yaml")
	run := workload.ContainerStatus{State: workload.StateRunning}
	done := workload.ContainerStatus{State: workload.StateTerminated, Reason: workload.ReasonCompleted, Termination: &workload.Termination{Reason: workload.ReasonCompleted}}
	restarted := workload.ContainerStatus{State: workload.StateRunning, Restarts: 2, LastTermination: &workload.Termination{ExitCode: 1, FinishedAt: now.Add(-5 * time.Minute)}}
	killed := workload.ContainerStatus{State: workload.StateTerminated, Termination: &workload.Termination{ExitCode: 137, Signal: "SIGKILL"}}
	tests := []struct {
		name     string
		phase    string
		cs       []workload.ContainerStatus
		ready    string
		status   string
		restarts string
	}{
		{"all running", workload.PhaseRunning, []workload.ContainerStatus{run, run}, "2/2", "Running", "0"},
		{"a job done next to a server", workload.PhaseRunning, []workload.ContainerStatus{run, done}, "1/2", "NotReady", "0"},
		{"restarted", workload.PhaseRunning, []workload.ContainerStatus{restarted}, "1/1", "Running", "2 (5m ago)"},
		{"killed without a reason", workload.PhaseFailed, []workload.ContainerStatus{killed}, "0/1", "Signal:SIGKILL", "0"},
		{"all done", workload.PhaseSucceeded, []workload.ContainerStatus{done, done}, "0/2", "Completed", "0"},
	}
	for _, tt := range tests {
		ns := lab.NamespaceStatus{Role: "pod", Name: "pod1a", Pod: &workload.PodStatus{Phase: tt.phase, Containers: tt.cs}}
		p := summarizePod(ns, topo, now)
		if got := strings.Join([]string{fmt.Sprintf("%d/%d", p.ready, p.total), p.status, p.restarts}, " | "); got != strings.Join([]string{tt.ready, tt.status, tt.restarts}, " | ") {
			t.Errorf("%s: got %s", tt.name, got)
		}
	}
	if p := summarizePod(lab.NamespaceStatus{Role: "pod", Name: "pod1a"}, topo, now); p.total != 2 || p.status != "Unknown" {
		t.Errorf("pod without a supervisor report: %+v", p)
	}
}

func TestHumanAge(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"}, {0, "0s"}, {119 * time.Second, "119s"}, {2 * time.Minute, "2m"}, {5*time.Minute + 30*time.Second, "5m30s"},
		{10 * time.Minute, "10m"}, {179 * time.Minute, "179m"}, {3 * time.Hour, "3h"}, {3*time.Hour + 20*time.Minute, "3h20m"},
		{8 * time.Hour, "8h"}, {47 * time.Hour, "47h"}, {52 * time.Hour, "2d4h"}, {8 * 24 * time.Hour, "8d"},
		{3 * 365 * 24 * time.Hour, "3y"}, {(3*365 + 10) * 24 * time.Hour, "3y10d"}, {9 * 365 * 24 * time.Hour, "9y"},
	} {
		if got := humanAge(tt.d); got != tt.want {
			t.Errorf("humanAge(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
