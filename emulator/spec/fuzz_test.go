package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must never panic, must reject
// with a sorted, non-empty *InvalidError, and whatever it accepts must hold
// the invariants the plan package relies on (checkInvariants).
//
//	go test ./emulator/spec/ -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, file := range []string{"../../topologies/two-node.yaml", "../../topologies/three-node.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"name: a\nnodes: [{name: n}]\n",
		"name: a\nnetwork: {underlay: 10.0.0.0/30, clusterCIDR: 10.1.0.0/24, nodeCIDRMaskSize: 30}\n" +
			"nodes: [{name: n, pods: [{name: p}]}, {name: m, ip: 10.0.0.2, podCIDR: 10.1.0.4/30}]\n",
		"name: a\nnodes:\n  - name: n\n    podCIDR: 10.244.0.0/29\n    pods: [{name: p, ip: 10.244.0.6}, {name: q}]\n",
		"nodes:\n  - name: n\n   ip: x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := Parse("fuzz.yaml", data)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Parse failed with %T %v, want *InvalidError", err, err)
			}
			if topo != nil {
				t.Fatal("Parse returned a topology along with an error")
			}
			if len(inv.Problems) == 0 {
				t.Fatal("an InvalidError without problems")
			}
			for i, p := range inv.Problems {
				if p.File != "fuzz.yaml" || p.Msg == "" {
					t.Fatalf("problem %#v lacks its file or message", p)
				}
				if i > 0 {
					q := inv.Problems[i-1]
					if p.Line < q.Line || p.Line == q.Line && p.Col < q.Col {
						t.Fatalf("problems out of order: %q before %q", q, p)
					}
				}
			}
			return
		}
		checkInvariants(t, topo)
		again, err := Parse("fuzz.yaml", data)
		if err != nil || !reflect.DeepEqual(topo, again) {
			t.Fatalf("parsing the same input twice gave different results: %v", err)
		}
	})
}

// ipamCase is a generated topology and the explicit values it asks for.
type ipamCase struct {
	data            []byte
	explicitIPs     map[string]string // node -> IP
	explicitSubnets map[string]string // node -> pod CIDR
	explicitPods    map[string]string // pod -> IP
}

// genIPAM builds a well-formed topology from a few numbers, mixing explicit
// and automatic addresses of varied sizes; explicit values are mostly, not
// always, valid.
func genIPAM(underBits, clusterBits, mask uint8, layout []byte) ipamCase {
	underBits = 22 + underBits%9      // /22 to /30
	clusterBits = 10 + clusterBits%21 // /10 to /30
	mask = mask % 32                  // also invalid sizes
	if len(layout) > 64 {
		layout = layout[:64]
	}
	take := func() byte {
		if len(layout) == 0 {
			return 0
		}
		b := layout[0]
		layout = layout[1:]
		return b
	}
	c := ipamCase{explicitIPs: map[string]string{}, explicitSubnets: map[string]string{}, explicitPods: map[string]string{}}
	var b strings.Builder
	fmt.Fprintf(&b, "name: fuzz\nnetwork:\n  underlay: 10.0.0.0/%d\n  clusterCIDR: 10.64.0.0/%d\n"+
		"  serviceCIDR: 192.168.0.0/16\n  nodeCIDRMaskSize: %d\nnodes:\n",
		underBits, clusterBits, mask)
	cluster := netip.MustParsePrefix(fmt.Sprintf("10.64.0.0/%d", clusterBits))
	for i := 0; len(layout) > 0 && i < 16; i++ {
		flags := take()
		name := fmt.Sprintf("n%d", i)
		fmt.Fprintf(&b, "  - name: %s\n", name)
		if flags&1 != 0 {
			// Mostly inside the underlay, sometimes just past it.
			off := (int(take())<<8 | int(take())) % (1<<(32-underBits) + 2)
			ip := fmt.Sprintf("10.0.%d.%d", off>>8, off&0xff)
			fmt.Fprintf(&b, "    ip: %s\n", ip)
			c.explicitIPs[name] = ip
		}
		var subnet netip.Prefix
		if flags&2 != 0 {
			bits := min(max(int(mask)+int(take()%5)-2, int(clusterBits)), 30)
			off := (uint32(take())<<8 | uint32(take())) % (1<<(bits-int(clusterBits)) + 1)
			base := cluster.Addr().As4()
			v := (uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])) + off<<(32-bits)
			subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits).Masked()
			fmt.Fprintf(&b, "    podCIDR: %s\n", subnet)
			c.explicitSubnets[name] = subnet.String()
		}
		pods := int(flags>>2) % 8
		if pods > 0 {
			b.WriteString("    pods:\n")
		}
		for j := range pods {
			pod := fmt.Sprintf("p%d-%d", i, j)
			fmt.Fprintf(&b, "      - name: %s\n", pod)
			if sel := take(); sel&1 != 0 && subnet.IsValid() {
				a := subnet.Addr()
				for range int(sel>>1) % (1 << min(32-subnet.Bits(), 7)) {
					a = a.Next()
				}
				fmt.Fprintf(&b, "        ip: %s\n", a)
				c.explicitPods[pod] = a.String()
			}
		}
	}
	c.data = []byte(b.String())
	return c
}

// FuzzIPAM spends the fuzzer's time on address management rather than on
// YAML syntax. Accepted topologies must hold the invariants and keep every
// explicit address; rejected ones must locate every problem.
//
//	go test ./emulator/spec/ -run '^$' -fuzz FuzzIPAM -fuzztime 60s
func FuzzIPAM(f *testing.F) {
	f.Add(uint8(24), uint8(16), uint8(24), []byte{0, 0, 0})
	f.Add(uint8(30), uint8(28), uint8(30), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(29), uint8(22), uint8(24), []byte{0xff, 0x13, 0x80, 0x41, 0x07, 0x99, 0x00, 0x11, 0x22})
	f.Fuzz(func(t *testing.T, underBits, clusterBits, mask uint8, layout []byte) {
		c := genIPAM(underBits, clusterBits, mask, layout)
		topo, err := Parse("ipam.yaml", c.data)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Parse failed with %T %v", err, err)
			}
			for _, p := range inv.Problems {
				if p.Line <= 0 {
					t.Fatalf("problem without a position: %q\n%s", p, c.data)
				}
			}
			return
		}
		checkInvariants(t, topo)
		for _, n := range topo.Nodes {
			if ip, ok := c.explicitIPs[n.Name]; ok && n.IP.String() != ip {
				t.Fatalf("node %s: IP %s, want the explicit %s\n%s", n.Name, n.IP, ip, c.data)
			}
			if s, ok := c.explicitSubnets[n.Name]; ok && n.PodSubnet.String() != s {
				t.Fatalf("node %s: subnet %s, want the explicit %s\n%s", n.Name, n.PodSubnet, s, c.data)
			}
		}
		for name, ip := range c.explicitPods {
			if p, ok := topo.Pod(name); !ok || p.IP.String() != ip {
				t.Fatalf("pod %s: IP %s, want the explicit %s\n%s", name, p.IP, ip, c.data)
			}
		}
	})
}
