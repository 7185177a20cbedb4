package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/spec"
)

// captCase is one capture measurement (issue 13 item 6): traffic between
// two pods on different nodes of a host-gw lab, captured on the receiving
// pod's eth0 alone or on all eight interfaces of the path at once, by the
// memory-mapped ring or the plain socket labctl used before.
type captCase struct {
	traffic string // "udp" (a flood of small datagrams) or "tcp" (one stream)
	wide    bool   // all eight interfaces of the path
	plain   bool
	decode  bool // decode and format every packet as the printed lines are
	none    bool // no capture: how fast the traffic goes without one

	sent     uint64 // datagrams the sender wrote (udp)
	bits     float64
	seconds  float64
	expected uint64 // what the interfaces' counters say crossed them
	seen     uint64 // what the capture delivered
	worst    float64
	dropped  uint64
	freezes  uint64
	late     uint64
	err      error
}

func (c *captCase) name() string {
	if c.none {
		return c.traffic + "\t-\tno capture"
	}
	reader := "ring"
	if c.plain {
		reader = "plain socket"
	}
	if c.decode {
		reader += ", decoded"
	}
	where := "1 (pod eth0)"
	if c.wide {
		where = "8 (whole path)"
	}
	return fmt.Sprintf("%s\t%s\t%s", c.traffic, where, reader)
}

// captureCases: each traffic on one interface and on eight, ring against
// plain socket, recording as -w does (no decoding); and the ring decoding
// every packet, as printing lines does.
func captureCases() []*captCase {
	var cs []*captCase
	for _, traffic := range []string{"udp", "tcp"} {
		cs = append(cs, &captCase{traffic: traffic, none: true})
		for _, wide := range []bool{false, true} {
			for _, plain := range []bool{false, true} {
				cs = append(cs, &captCase{traffic: traffic, wide: wide, plain: plain})
			}
		}
		cs = append(cs, &captCase{traffic: traffic, decode: true})
	}
	return cs
}

// capture measures every case on one host-gw lab: pod a on n0 sends to pod
// c on n1 (pods a and b share n0, tputLab).
func (b *bench) capture(ctx context.Context, d time.Duration) []*captCase {
	cases := captureCases()
	name := namePrefix(b.pid) + "cap"
	path := filepath.Join(b.tmp, name+".yaml")
	data := tputLab(name, "host-gw")
	fail := func(err error) []*captCase {
		for _, c := range cases {
			c.err = err
		}
		return cases
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fail(err)
	}
	if out, err := b.labctlRun(ctx, "up", path); err != nil {
		return fail(fmt.Errorf("up: %v: %s", err, out))
	}
	defer b.labctlRun(context.Background(), "down", name)
	topo, err := spec.Parse("", data)
	if err != nil {
		return fail(err)
	}
	dst, _ := topo.Pod("c")
	ns := func(object string) string { return netns.Path(plan.NamespaceName(name, object)) }
	// The path from a to c, in order: eight interfaces the same packets
	// cross (the bridge itself is left out: it sees them too).
	path8 := []capture.Target{
		{Label: "a", Namespace: ns("a"), Interface: "eth0"},
		{Label: "n0", Namespace: ns("n0"), Interface: plan.VethName("a")},
		{Label: "n0", Namespace: ns("n0"), Interface: "eth0"},
		{Label: "underlay", Namespace: ns("underlay"), Interface: plan.VethName("n0")},
		{Label: "underlay", Namespace: ns("underlay"), Interface: plan.VethName("n1")},
		{Label: "n1", Namespace: ns("n1"), Interface: "eth0"},
		{Label: "n1", Namespace: ns("n1"), Interface: plan.VethName("c")},
		{Label: "c", Namespace: ns("c"), Interface: "eth0"},
	}
	for _, c := range cases {
		if ctx.Err() != nil {
			c.err = ctx.Err()
			continue
		}
		targets := path8[len(path8)-1:]
		if c.wide {
			targets = path8
		}
		if c.none {
			targets = nil
		}
		fmt.Fprintf(os.Stderr, "labbench: capture %s on %d interfaces (%s)\n", c.traffic, len(targets), d)
		c.err = b.captureOne(ctx, c, targets, ns("a"), ns("c"), dst.IP, d)
	}
	return cases
}

func (b *bench) captureOne(ctx context.Context, c *captCase, targets []capture.Target, from, to string, dst netip.Addr, d time.Duration) error {
	if c.none {
		return traffic(ctx, c, from, to, dst, d)
	}
	opts := capture.Options{PlainSocket: c.plain, SkipDecode: !c.decode}
	g, err := capture.Start(targets, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	// What the CLI does with -w: write every packet to a pcapng file.
	consumed := make(chan error, 1)
	go func() {
		pw := capture.NewPcapngWriter(io.Discard)
		pw.FakeEthernet = true
		var werr error
		for batch := range g.Packets() {
			for _, p := range batch {
				if c.decode {
					_ = p.String()
				}
				if werr == nil {
					werr = pw.WritePacket(p)
				}
			}
		}
		consumed <- werr
	}()
	before, err := counters(targets)
	if err != nil {
		return err
	}
	if err := traffic(ctx, c, from, to, dst, d); err != nil {
		return err
	}
	after, err := counters(targets)
	if err != nil {
		return err
	}
	g.Stop()
	if err := <-consumed; err != nil {
		return err
	}
	if err := g.Close(); err != nil {
		return err
	}
	st := g.Stats()
	c.worst = 2
	for i := range targets {
		exp := after[i] - before[i]
		got := st.Captures[i].Received
		c.expected += exp
		c.seen += got
		if exp > 0 {
			c.worst = min(c.worst, float64(got)/float64(exp))
		}
	}
	c.dropped, c.freezes, c.late = st.Dropped, st.Freezes, st.Late
	return nil
}

// traffic runs the case's traffic from pod to pod.
func traffic(ctx context.Context, c *captCase, from, to string, dst netip.Addr, d time.Duration) error {
	start := time.Now()
	var err error
	switch c.traffic {
	case "udp":
		c.sent, err = udpFlood(ctx, from, to, netip.AddrPortFrom(dst, 5301), d)
	case "tcp":
		var r probe.ThroughputResult
		r, err = probe.Throughput(ctx, from, to, netip.AddrPortFrom(dst, 5201), d)
		c.bits = r.BitsPerSecond()
	}
	c.seconds = time.Since(start).Seconds()
	return err
}

// counters reads packets received plus sent of each target's interface:
// everything a capture on it is to see.
func counters(targets []capture.Target) ([]uint64, error) {
	out := make([]uint64, len(targets))
	for i, t := range targets {
		h, err := netns.Open(t.Namespace)
		if err != nil {
			return nil, err
		}
		nh, err := netns.NetlinkHandle(h)
		h.Close()
		if err != nil {
			return nil, err
		}
		l, err := nh.LinkByName(t.Interface)
		nh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		s := l.Attrs().Statistics
		out[i] = s.RxPackets + s.TxPackets
	}
	return out, nil
}

// udpFlood writes 18-byte datagrams (64-byte frames) from namespace from to
// a receiver in to for d, as fast as one sender goes, and says how many it
// wrote. The receiver takes them and never reads: the socket's queue fills
// and the rest drops there, after every interface of the path saw them.
func udpFlood(ctx context.Context, from, to string, dst netip.AddrPort, d time.Duration) (uint64, error) {
	sink, err := probe.ListenUDP(to, dst.String())
	if err != nil {
		return 0, err
	}
	defer sink.Close()
	conn, err := probe.DialUDP(from, dst.String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	msg := make([]byte, 18)
	var sent uint64
	deadline := time.Now().Add(d)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		for range 256 {
			if _, err := conn.Write(msg); err != nil {
				if isBusy(err) {
					continue
				}
				return sent, fmt.Errorf("send: %w", err)
			}
			sent++
		}
	}
	return sent, ctx.Err()
}

func isBusy(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(err.Error(), "no buffer space")
}

func reportCapture(w io.Writer, cases []*captCase, d time.Duration) {
	fmt.Fprintf(w, "\nlabbench: capture from pod a (node n0) to pod c (node n1), host-gw, for %s each; the capture writes pcapng\n", d)
	fmt.Fprintf(w, "as `labctl capture -w` does; \"expected\" is what the interfaces' counters say crossed them (issue 13 item 6)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "traffic\tinterfaces\treader\tsent\trate\texpected\tseen\tworst iface\tdropped by kernel\tring full\tlate\tok")
	for _, c := range cases {
		if c.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\tERROR %v\n", c.name(), c.err)
			continue
		}
		sent, rate := "-", fmt.Sprintf("%.2f Gbit/s", c.bits/1e9)
		if c.traffic == "udp" {
			sent = fmt.Sprint(c.sent)
			rate = fmt.Sprintf("%.0f kpps", float64(c.sent)/c.seconds/1e3)
		}
		if c.none {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t\n", c.name(), sent, rate)
			continue
		}
		freezes := fmt.Sprint(c.freezes)
		if c.plain {
			freezes = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d (%.1f%%)\t%.1f%%\t%d\t%s\t%d\t%s\n", c.name(), sent, rate, c.expected, c.seen,
			100*float64(c.seen)/float64(max(c.expected, 1)), 100*c.worst, c.dropped, freezes, c.late, verdict(c.dropped == 0 && c.seen >= c.expected))
	}
	tw.Flush()
	fmt.Fprintln(w, "\nok: nothing dropped and every packet the counters saw was captured (the counters also count ARP; seen may exceed them)")
}
