package scenario

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/plan"
)

const externalsScenario = `title: Checks from and to external hosts
topology:
  name: ext
  network: {underlay: 10.128.0.0/24, clusterCIDR: 192.168.0.0/16}
  nodes:
    - name: node01
      pods: [{name: redapp1}]
  externals:
    - name: vm1
      network: 10.130.0.0/24
      ip: 10.130.0.10
      containers: [{name: web, builtin: web-server}]
    - {name: laptop}
faults:
  - deleteRoute: {in: router, dst: 10.130.0.0/24}
sections:
  - name: outside
    checks:
      - id: to-external
        ping: {from: redapp1, to: {external: vm1}}
      - id: to-external-by-name
        tcp: {from: redapp1, to: laptop, port: 80}
      - id: from-external
        ping: {from: vm1, to: node01}
        expect: pass
      - id: no-route-to-pods
        ping: {from: vm1, to: redapp1}
        expect: fail
      - id: router-route
        route: {in: router, to: vm1, dev: eth1}
      - id: masqueraded
        logs: {external: vm1, container: web, contains: 10.128.0.2}
      - id: in-container
        command: {in: vm1, container: web, run: [true]}
`

// Endpoints name external hosts ({external: x}, or a bare name) and
// resolve to their addresses; places name them and the router; faults
// reach the router.
func TestExternalEndpointsAndPlaces(t *testing.T) {
	s, err := Parse("ext.yaml", []byte(externalsScenario))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Checks()
	vm1, laptop := netip.MustParseAddr("10.130.0.10"), netip.MustParseAddr("10.128.0.2")
	if e := c[0].Ping.To; e.Kind != EndpointExternal || e.Name != "vm1" || e.Addr != vm1 {
		t.Errorf("{external: vm1} = %+v", e)
	}
	if e := c[1].TCP.To; e.Kind != EndpointExternal || e.Name != "laptop" || e.Addr != netip.MustParseAddr("10.128.0.3") {
		t.Errorf("laptop = %+v (the nodes' first address %s is node01's)", e, laptop)
	}
	if p := c[2].Ping.From; p.Role != plan.RoleExternal || p.Name != "vm1" {
		t.Errorf("from vm1 = %+v", p)
	}
	if p := c[4].Route.In; p.Role != plan.RoleRouter || p.Name != "router" {
		t.Errorf("in router = %+v", p)
	}
	if l := c[5].Logs; l.Pod != "vm1" || l.Container != "web" {
		t.Errorf("logs of vm1 = %+v", l)
	}
	if cmd := c[6].Command; cmd.In.Role != plan.RoleExternal || cmd.Container != "web" {
		t.Errorf("command in vm1's container = %+v", cmd)
	}
	ops := s.Faults[0].Variants[0].Ops("ext")
	if len(ops) != 1 || ops[0].Where() != "ext-router" {
		t.Errorf("the fault in the router: %v", ops)
	}
}

// Names that are no external host are refused with what there is; the
// router is a place only where the topology has one.
func TestExternalNamesRefused(t *testing.T) {
	bad := strings.NewReplacer(
		"to: {external: vm1}", "to: {external: node01}",
		"from: vm1, to: node01", "from: vm9, to: node01",
		"container: web, run", "container: webb, run",
	).Replace(externalsScenario)
	_, err := Parse("ext.yaml", []byte(bad))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`ping.to.external: no external host "node01" in the topology (it has vm1, laptop)`,
		`ping.from: no pod, node or external host "vm9" in the topology (did you mean "vm1"?)`,
		`command.container: external host "vm1" has no container "webb" (did you mean "web"?)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	noRouter := strings.NewReplacer("network: 10.130.0.0/24\n      ip: 10.130.0.10", "ip: 10.128.0.10").Replace(externalsScenario)
	if _, err := Parse("ext.yaml", []byte(noRouter)); err == nil || !strings.Contains(err.Error(), `no pod, node or external host "router"`) {
		t.Errorf("the router of a lab without one: %v", err)
	}
}
