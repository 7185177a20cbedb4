package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/trace"
)

// traceCase is the latency of `labctl trace` on the two-node lab of one
// backend (issue 13 item 6): pod a on n0 to pod c on n1 (tputLab).
type traceCase struct {
	backend string
	note    string
	// answer: from the probe leaving to the journey printed (what the
	// user waits for once the packet is out); whole: from starting the
	// captures to the journey printed; cli: the labctl process, start to
	// exit (status, captures, probe, analysis, output).
	answer, whole, cli []time.Duration
	hops               int
	err                error
}

// traceTarget is what "feels instant" once the packet is out, for a
// command a student runs again and again and for the TUI's trace action.
// The rest (opening the captures, a new process) is shown, not judged: it
// waits on the kernel's network grace periods, which a loaded machine
// stretches.
const traceTarget = 100 * time.Millisecond

// trace measures runs traces of an ICMP echo per backend, in process
// (through the trace package, as the TUI will) and through the CLI.
func (b *bench) trace(ctx context.Context, runs int) []*traceCase {
	var cases []*traceCase
	for _, backend := range []string{"host-gw", "vxlan", "ipip"} {
		c := &traceCase{backend: backend}
		cases = append(cases, c)
		if ctx.Err() != nil {
			c.err = ctx.Err()
			continue
		}
		fmt.Fprintf(os.Stderr, "labbench: trace latency, %s (%d runs)\n", backend, runs)
		c.err = b.traceOne(ctx, c, runs)
	}
	return cases
}

func (b *bench) traceOne(ctx context.Context, c *traceCase, runs int) error {
	name := fmt.Sprintf("%str-%s", namePrefix(b.pid), c.backend)
	path := filepath.Join(b.tmp, name+".yaml")
	if err := os.WriteFile(path, tputLab(name, c.backend), 0o644); err != nil {
		return err
	}
	if out, err := b.labctlRun(ctx, "up", path); err != nil {
		return fmt.Errorf("up: %v: %s", err, out)
	}
	defer b.labctlRun(context.Background(), "down", name)
	if c.backend == "ipip" {
		c.note = "userspace datapath"
		if out, err := b.labctlRun(ctx, "status", name); err == nil && strings.Contains(out, "kernel device") {
			c.note = "kernel ipip device"
		}
	}
	st, err := lab.Manager{StateDir: b.stateDir}.Status(name, lab.StatusOptions{})
	if err != nil {
		return err
	}
	req, err := trace.ForLab(st, "a", "c", trace.Probe{Protocol: trace.ICMP})
	if err != nil {
		return err
	}
	// One untimed trace first: ARP and the first route lookups happen
	// once per lab, not per trace.
	for i := 0; i <= runs; i++ {
		start := time.Now()
		j, err := trace.Run(ctx, req)
		if err != nil {
			return err
		}
		_, _ = io.WriteString(io.Discard, j.Text(false))
		end := time.Now()
		if j.Answer.Kind != trace.AnswerReply || !j.Request.Arrived {
			return fmt.Errorf("the echo did not arrive: %s", j.Answer.Summary)
		}
		c.hops = len(j.Request.Hops)
		if i > 0 {
			c.answer = append(c.answer, end.Sub(j.Sent))
			c.whole = append(c.whole, end.Sub(start))
		}
	}
	for i := 0; i < runs; i++ {
		start := time.Now()
		if out, err := b.labctlRun(ctx, "trace", name, "a", "c"); err != nil {
			return fmt.Errorf("labctl trace: %v: %s", err, out)
		}
		c.cli = append(c.cli, time.Since(start))
	}
	return nil
}

func reportTrace(w io.Writer, cases []*traceCase, runs int) {
	fmt.Fprintf(w, "\nlabbench: trace latency, an ICMP echo from pod a (node n0) to pod c (node n1), %d runs per backend,\n", runs)
	fmt.Fprintf(w, "median (max); \"probe → printed\" is from the echo leaving to the journey rendered (issue 13 item 6)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "backend\thops\tprobe → printed\ttarget\tok\tcaptures → printed\tlabctl trace (process)\tnote")
	for _, c := range cases {
		if c.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tERROR %v\t-\t-\t\n", c.backend, c.err)
			continue
		}
		ok := median(c.answer) <= traceTarget
		fmt.Fprintf(tw, "%s\t%d\t%s\t≤ %s\t%s\t%s\t%s\t%s\n", c.backend, c.hops, medMax(c.answer), traceTarget, verdict(ok),
			medMax(c.whole), medMax(c.cli), c.note)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nThe echo is answered in well under a millisecond; most of \"probe → printed\" is the %s a trace\n", trace.Settle)
	fmt.Fprintln(w, "gives every capture ring to hand over its last block.")
}

// medMax is "median (max)" in the median's unit.
func medMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	med, hi := median(ds), slices.Max(ds)
	unit, scale, prec := durUnit(med)
	return fmt.Sprintf("%.*f %s (%.*f)", prec, float64(med)/scale, unit, prec, float64(hi)/scale)
}
