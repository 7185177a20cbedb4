package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// tputCase is one pod-to-pod TCP stream measurement (issue 3 item 6).
type tputCase struct {
	name     string
	backend  string // for the lab; "" for the plain veth pair
	from, to string // pods (or the two veth namespaces)
	minRatio float64
	minBits  float64
	bits     float64
	note     string
	err      error
}

// tputLab is a two-node lab: pods a and b share node n0's bridge, c is on n1.
func tputLab(name, backend string) []byte {
	return []byte(fmt.Sprintf(`name: %s
network:
  underlay: 10.31.0.0/24
  clusterCIDR: 10.244.0.0/16
  backend: %s
nodes:
  - name: n0
    pods: [{name: a}, {name: b}]
  - name: n1
    pods: [{name: c}]
`, name, backend))
}

// throughput measures one TCP stream for d on a plain veth pair (the
// ceiling), between pods on one bridge, and across nodes on each backend.
func (b *bench) throughput(ctx context.Context, d time.Duration) []*tputCase {
	cases := []*tputCase{
		{name: "plain veth (reference)", from: "a", to: "b"},
		{name: "same bridge", backend: "host-gw", from: "a", to: "b"},
		{name: "host-gw", backend: "host-gw", from: "a", to: "c", minRatio: 0.6},
		{name: "vxlan", backend: "vxlan", from: "a", to: "c", minRatio: 0.55},
		{name: "ipip", backend: "ipip", from: "a", to: "c", minBits: 1e9},
	}
	labs := map[string]string{} // backend -> lab name, brought up once
	defer func() {
		for _, name := range labs {
			b.labctlRun(ctx, "down", name)
		}
	}()
	for _, c := range cases {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "labbench: throughput %s (%s)\n", c.name, d)
		var fromNS, toNS string
		var dst netip.Addr
		if c.backend == "" {
			names, cleanup, err := b.vethPair(ctx)
			if err != nil {
				c.err = err
				continue
			}
			fromNS, toNS, dst = names[0], names[1], netip.MustParseAddr("10.99.0.2")
			c.bits, c.err = streamBits(ctx, fromNS, toNS, dst, d)
			cleanup()
			continue
		}
		name, ok := labs[c.backend]
		if !ok {
			name = fmt.Sprintf("%stp-%s", namePrefix(b.pid), c.backend)
			path := filepath.Join(b.tmp, name+".yaml")
			if err := os.WriteFile(path, tputLab(name, c.backend), 0o644); err != nil {
				c.err = err
				continue
			}
			if out, err := b.labctlRun(ctx, "up", path); err != nil {
				c.err = fmt.Errorf("up: %v: %s", err, out)
				continue
			}
			labs[c.backend] = name
		}
		topo, err := spec.Parse("", tputLab(name, c.backend))
		if err != nil {
			c.err = err
			continue
		}
		to, _ := topo.Pod(c.to)
		fromNS = netns.Path(plan.NamespaceName(name, c.from))
		toNS = netns.Path(plan.NamespaceName(name, c.to))
		c.bits, c.err = streamBits(ctx, fromNS, toNS, to.IP, d)
		if c.backend == "ipip" {
			c.note = "userspace datapath (no ipip module)"
			if out, err := b.labctlRun(ctx, "status", name); err == nil && strings.Contains(out, "kernel device") {
				c.note = "kernel ipip device"
			}
		}
	}
	return cases
}

func streamBits(ctx context.Context, fromNS, toNS string, dst netip.Addr, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	r, err := probe.Throughput(ctx, fromNS, toNS, netip.AddrPortFrom(dst, 5201), d)
	return r.BitsPerSecond(), err
}

func (b *bench) labctlRun(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.labctl, append([]string{"--state-dir", b.stateDir}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// vethPair makes two namespaces joined by one veth pair (10.99.0.1/24 and
// .2), the fastest path two namespaces can have: the reference the pod
// paths are compared with.
func (b *bench) vethPair(ctx context.Context) ([2]string, func(), error) {
	a, z := namePrefix(b.pid)+"tp-veth-a", namePrefix(b.pid)+"tp-veth-b"
	cleanup := func() { deleteNamespaces([]string{a, z}) }
	cmds := [][]string{
		{"netns", "add", a}, {"netns", "add", z},
		{"-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", z},
		{"-n", a, "addr", "add", "10.99.0.1/24", "dev", "eth0"}, {"-n", z, "addr", "add", "10.99.0.2/24", "dev", "eth0"},
		{"-n", a, "link", "set", "eth0", "up"}, {"-n", z, "link", "set", "eth0", "up"},
		{"-n", a, "link", "set", "lo", "up"}, {"-n", z, "link", "set", "lo", "up"},
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, "ip", c...).CombinedOutput(); err != nil {
			cleanup()
			return [2]string{}, nil, fmt.Errorf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return [2]string{netns.Path(a), netns.Path(z)}, cleanup, nil
}

func reportThroughput(w io.Writer, cases []*tputCase, d time.Duration) {
	fmt.Fprintf(w, "\nlabbench: pod-to-pod TCP throughput, one stream for %s, in-tree Go sender and receiver (issue 3 item 6)\n\n", d)
	ref := 0.0
	if len(cases) > 0 && cases[0].err == nil {
		ref = cases[0].bits
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tGbit/s\tvs veth\ttarget\tok\tnote")
	for _, c := range cases {
		if c.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tERROR\t%v\n", c.name, c.err)
			continue
		}
		ratio, target, ok := "-", "-", "-"
		if ref > 0 {
			ratio = fmt.Sprintf("%.2fx", c.bits/ref)
		}
		switch {
		case c.minRatio > 0:
			target = fmt.Sprintf("≥ %.2fx", c.minRatio)
			ok = verdict(ref > 0 && c.bits/ref >= c.minRatio)
		case c.minBits > 0:
			target = fmt.Sprintf("≥ %.1f Gbit/s", c.minBits/1e9)
			ok = verdict(c.bits >= c.minBits)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\n", c.name, c.bits/1e9, ratio, target, ok, c.note)
	}
	tw.Flush()
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}
