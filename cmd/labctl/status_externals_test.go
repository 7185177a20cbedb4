package main

import (
	"bytes"
	"github.com/labctl/labctl/internal/golden"
	"testing"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/workload"
)

// tutorialStatus is the tutorial's lab with its router and VM1, whose
// containers run, and node01's pods (the rest left out).
func tutorialStatus(t *testing.T) *lab.Status {
	topo := loadTopology(t, "tutorial.yaml")
	s := &lab.Status{Name: "tutorial", File: "/labs/tutorial.yaml", Phase: lab.PhaseUp, CreatedAt: created, Topology: topo}
	veth := func(name, master string) kernel.Interface {
		return kernel.Interface{Name: name, Kind: "veth", State: "up", MTU: 1500, Master: master}
	}
	s.Namespaces = []lab.NamespaceStatus{
		{Namespace: "tutorial-underlay", Role: "underlay", Name: "underlay", State: "ours", Present: true, Interfaces: []kernel.Interface{
			{Name: "underlay0", Kind: "bridge", State: "up", MTU: 1500}, {Name: "ext1", Kind: "bridge", State: "up", MTU: 1500},
			veth("veth-node01", "underlay0"), veth("veth-node02", "underlay0"), veth("router-eth0", "underlay0"),
			veth("router-eth1", "ext1"), veth("veth-vm1", "ext1")}},
		{Namespace: "tutorial-node01", Role: "node", Name: "node01", IP: "10.128.0.2", PodCIDR: "192.168.1.0/24", Bridge: "bridge-if1", State: "ours", Present: true,
			Interfaces: []kernel.Interface{
				{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"10.128.0.2/24"}},
				{Name: "bridge-if1", Kind: "bridge", State: "up", MTU: 1500, Addresses: []string{"192.168.1.10/24"}},
				veth("veth-redapp1", "bridge-if1")}},
		{Namespace: "tutorial-redapp1", Role: "pod", Name: "redapp1", Node: "node01", IP: "192.168.1.11", State: "ours", Present: true,
			Interfaces: []kernel.Interface{{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"192.168.1.11/24"}}},
			Pod: &workload.PodStatus{Phase: workload.PhaseRunning, Containers: []workload.ContainerStatus{
				{Name: "http-server", State: workload.StateRunning, PID: 5100}, {Name: "client", State: workload.StateRunning, PID: 5101}}}},
		{Namespace: "tutorial-router", Role: "router", Name: "router", IP: "10.128.0.1", Networks: []string{"10.128.0.0/24", "10.130.0.0/24"},
			State: "ours", Present: true, Interfaces: []kernel.Interface{
				{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"10.128.0.1/24"}},
				{Name: "eth1", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"10.130.0.1/24"}}}},
		{Namespace: "tutorial-vm1", Role: "external", Name: "vm1", IP: "10.130.0.10", Network: "10.130.0.0/24", Gateway: "10.130.0.1",
			State: "ours", Present: true,
			Interfaces: []kernel.Interface{{Name: "eth0", Kind: "veth", State: "up", MTU: 1500, Addresses: []string{"10.130.0.10/24"}}},
			Pod: &workload.PodStatus{Phase: workload.PhaseRunning, Containers: []workload.ContainerStatus{
				{Name: "web", State: workload.StateRunning, PID: 5200}, {Name: "client", State: workload.StateRunning, Restarts: 1, PID: 5201}}}},
	}
	return s
}

// The status of a lab with external hosts: the router's networks and how
// pod traffic leaves the cluster under the lab's networks, the router and
// VM1 among the namespaces, VM1's containers in a table of their own.
func TestStatusTableExternalsGolden(t *testing.T) {
	for _, wide := range []bool{false, true} {
		var b bytes.Buffer
		writeStatusTable(&b, tutorialStatus(t), now, wide)
		golden.Check(t, "testdata/status-table-externals"+wideSuffix(wide)+".golden", b.Bytes())
	}
	var b bytes.Buffer
	if err := writeDoc(&b, outJSON, newLabDoc(tutorialStatus(t))); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/status-externals.json.golden", b.Bytes())
}

// status LAB vm1 and status LAB router: the object's network, gateway or
// the networks it joins.
func TestStatusObjectExternalsGolden(t *testing.T) {
	s := tutorialStatus(t)
	vm1 := &lab.ObjectStatus{Lab: s.Name, NamespaceStatus: s.Namespaces[4]}
	vm1.Routes = []kernel.Route{
		{Dst: "default", Via: "10.130.0.1", Device: "eth0", Type: "unicast", Protocol: "boot", Scope: "global", Table: "main"},
		{Dst: "10.130.0.0/24", Device: "eth0", Type: "unicast", Protocol: "kernel", Scope: "link", Table: "main", Src: "10.130.0.10"},
	}
	router := &lab.ObjectStatus{Lab: s.Name, NamespaceStatus: s.Namespaces[3]}
	for _, tt := range []struct {
		name string
		o    *lab.ObjectStatus
	}{{"external", vm1}, {"router", router}} {
		var b bytes.Buffer
		writeObjectTable(&b, tt.o, now, false)
		golden.Check(t, "testdata/status-object-"+tt.name+".golden", b.Bytes())
	}
	if got := objectName("external", "vm1") + " " + objectName("router", "router"); got != "external/vm1 router/router" {
		t.Errorf("-o name of the external host and the router: %s", got)
	}
}
