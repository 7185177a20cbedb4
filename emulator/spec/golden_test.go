package spec

import (
	"errors"
	"fmt"
	"github.com/labctl/labctl/internal/golden"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestInvalidTopologies loads every testdata/invalid/*.yaml, one mistake (or
// one family of mistakes) per file, and compares the full report with the
// .golden file next to it.
func TestInvalidTopologies(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			topo, err := Load(file)
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Load(%s) = %+v, %v; want an *InvalidError", file, topo, err)
			}
			if topo != nil {
				t.Errorf("Load(%s) returned a topology along with its error", file)
			}
			checkProblems(t, file, inv.Problems)
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(err.Error()+"\n"))
		})
	}
}

// checkProblems asserts what holds for every report: each problem names the
// file, has a position (an empty file's is 1:1), reads in lowercase, and the
// list is sorted by position without repeats.
func checkProblems(t *testing.T, file string, ps []Problem) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatal("an InvalidError without problems")
	}
	seen := map[string]bool{}
	for i, p := range ps {
		if p.File != file {
			t.Errorf("problem %q names file %q, want %q", p, p.File, file)
		}
		if p.Line <= 0 || p.Col <= 0 {
			t.Errorf("problem %q has no position", p)
		}
		if first := p.Msg[:1]; first != strings.ToLower(first) && !strings.HasPrefix(p.Msg, "MTU") &&
			!strings.HasPrefix(p.Msg, "YAML") {
			t.Errorf("problem %q does not start in lowercase", p)
		}
		if strings.HasSuffix(p.Msg, ".") {
			t.Errorf("problem %q ends with a period", p)
		}
		if seen[p.Error()] {
			t.Errorf("problem %q reported twice", p)
		}
		seen[p.Error()] = true
		if i > 0 {
			q := ps[i-1]
			if p.Line < q.Line || p.Line == q.Line && p.Col < q.Col {
				t.Errorf("problems out of order: %q before %q", q, p)
			}
		}
	}
}

// TestValidTopologies parses every testdata/valid/*.yaml and compares a dump
// of the model, every address filled in, with the .golden file next to it.
func TestValidTopologies(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test inputs: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			topo, err := Load(file)
			if err != nil {
				t.Fatalf("Load(%s): %v", file, err)
			}
			checkInvariants(t, topo)
			again, err := Load(file)
			if err != nil || !reflect.DeepEqual(topo, again) {
				t.Errorf("loading %s twice gave different models:\n%s\n%s", file, dump(topo), dump(again))
			}
			golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(dump(topo)))
		})
	}
}

// dump renders a topology one object a line, for golden files.
func dump(t *Topology) string {
	var b strings.Builder
	nw := t.Network
	fmt.Fprintf(&b, "lab %s\n", t.Name)
	fmt.Fprintf(&b, "network underlay=%s cluster=%s service=%s nodeMask=/%d backend=%s mtu=%d podMTU=%d\n",
		nw.Underlay, nw.ClusterCIDR, nw.ServiceCIDR, nw.NodeMaskSize, nw.Backend, nw.MTU, t.PodMTU())
	if nw.CNI != CNIBridge || !nw.HairpinMode || nw.IPv6LinkLocal {
		fmt.Fprintf(&b, "cni=%s hairpinMode=%v ipv6LinkLocal=%v\n", nw.CNI, nw.HairpinMode, nw.IPv6LinkLocal)
	}
	if nw.Masquerade != (nw.CNI == CNIBridge) {
		fmt.Fprintf(&b, "masquerade=%v\n", nw.Masquerade)
	}
	if nw.Backend == BackendVXLAN || len(t.Links) > 0 {
		fmt.Fprintf(&b, "vxlan mode=%s device=%s vni=%d port=%d flooding=%s group=%v\n",
			nw.VXLAN.Mode, nw.VXLAN.Device, nw.VXLAN.VNI, nw.VXLAN.Port, nw.VXLAN.Flooding, nw.VXLAN.Group)
	}
	if nw.Backend == BackendIPIP || len(t.Links) > 0 {
		fmt.Fprintf(&b, "ipip device=%s datapath=%s\n", nw.IPIP.Device, nw.IPIP.Datapath)
	}
	for _, d := range t.Deployments {
		fmt.Fprintf(&b, "deployment %s replicas=%d labels=%v nodeSelector=%v pods=%v\n", d.Name, d.Replicas, d.Labels, d.NodeSelector, d.Pods)
	}
	for _, l := range t.Links {
		fmt.Fprintf(&b, "link %s-%s backend=%s\n", l.Nodes[0], l.Nodes[1], l.Backend)
	}
	for _, n := range t.Nodes {
		fmt.Fprintf(&b, "node %s ip=%s subnet=%s gateway=%s bridge=%s", n.Name, n.IP, n.PodSubnet, n.Gateway, n.Bridge)
		if n.Bridge != "" && !n.HairpinMode {
			b.WriteString(" hairpin=off")
		}
		b.WriteString("\n")
		for _, p := range n.Pods {
			fmt.Fprintf(&b, "  pod %s ip=%s node=%s", p.Name, p.IP, p.Node)
			if p.Deployment != "" {
				fmt.Fprintf(&b, " deployment=%s", p.Deployment)
			}
			if p.Namespace != "" {
				fmt.Fprintf(&b, " namespace=%s", p.Namespace)
			}
			if len(p.Labels) > 0 {
				fmt.Fprintf(&b, " labels=%v", p.Labels)
			}
			b.WriteString("\n")
			for _, c := range p.Containers {
				fmt.Fprintf(&b, "    container %s builtin=%q command=%q args=%q env=%v ports=%v restart=%s/%s resources=%+v\n",
					c.Name, c.Builtin, c.Command, c.Args, c.Env, c.Ports, c.RestartPolicy, p.RestartPolicy, c.Resources)
			}
		}
	}
	dumpServices(&b, t)
	dumpExternals(&b, t)
	return b.String()
}

// dumpServices renders the cluster DNS address, the services with their
// ports and endpoints, and the warnings.
func dumpServices(b *strings.Builder, t *Topology) {
	if t.Network.ClusterDNS {
		fmt.Fprintf(b, "clusterDNS %s\n", t.KubeDNSAddress())
	}
	for _, s := range t.Services {
		fmt.Fprintf(b, "service %s/%s type=%s clusterIP=%s policy=%s affinity=%s", s.Namespace, s.Name, s.Type, s.ClusterIP, s.ExternalTrafficPolicy, s.SessionAffinity)
		if s.AffinityTimeoutSeconds != 0 {
			fmt.Fprintf(b, "/%ds", s.AffinityTimeoutSeconds)
		}
		if s.Selector != nil {
			fmt.Fprintf(b, " selector=%v", s.Selector)
		}
		if s.System {
			b.WriteString(" system")
		}
		b.WriteString("\n")
		for _, p := range s.Ports {
			fmt.Fprintf(b, "  port %q %s %d->%s", p.Name, p.Protocol, p.Port, p.TargetPortString())
			if p.NodePort != 0 {
				fmt.Fprintf(b, " nodePort=%d", p.NodePort)
			}
			b.WriteString(" endpoints=[")
			for i, e := range p.Endpoints {
				if i > 0 {
					b.WriteString(" ")
				}
				fmt.Fprintf(b, "%s:%d", e.IP, e.Port)
				if e.Pod != "" {
					fmt.Fprintf(b, "(%s@%s)", e.Pod, e.Node)
				}
			}
			b.WriteString("]\n")
		}
	}
	for _, w := range t.Warnings {
		fmt.Fprintf(b, "warning %s\n", w.Error())
	}
}

// dumpExternals renders the router and the external hosts.
func dumpExternals(b *strings.Builder, t *Topology) {
	if r := t.Router; r != nil {
		fmt.Fprintf(b, "router ip=%s\n", r.IP)
		for _, n := range r.Networks {
			fmt.Fprintf(b, "  network %s bridge=%s device=%s gateway=%s\n", n.CIDR, n.Bridge, n.Device, n.Gateway)
		}
	}
	for _, e := range t.Externals {
		fmt.Fprintf(b, "external %s ip=%s network=%s gateway=%v restart=%s\n", e.Name, e.IP, e.Network, e.Gateway, e.RestartPolicy)
		for _, r := range e.Routes {
			fmt.Fprintf(b, "  route %s via %s\n", dstWord(r.Dst), r.Via)
		}
		for _, c := range e.Containers {
			fmt.Fprintf(b, "  container %s builtin=%q command=%q ports=%v\n", c.Name, c.Builtin, c.Command, c.Ports)
		}
	}
}
