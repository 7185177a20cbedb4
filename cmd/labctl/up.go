package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

type upOptions struct {
	io          Streams
	manager     lab.Manager
	file        string
	dryRun      bool
	repair      bool
	reconfigure bool
	workers     int
	name        string
}

func newUpCmd(g *globals) *cobra.Command {
	o := &upOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Bring a lab up from a topology file",
		Long: `Bring a lab up from a topology file. Everything is created through netlink in
namespaces named <lab>-<node or pod>; on any error, Ctrl-C, kill or closed
terminal everything already created is removed again.

A lab that is already up and whole is left as it is. One that lost a
namespace, a supervisor or its IPIP datapath is reported as degraded; --repair
restores it. --reconfigure replaces a lab that is up by a fresh one.

With --dry-run nothing is changed: the plan is printed as the equivalent bash
script of ip and sysctl commands, a faithful transcript of what up does.`,
		Example: `  sudo labctl up topologies/two-node.yaml
  labctl up --dry-run topologies/two-node-vxlan.yaml > lab.sh
  sudo labctl up --repair topologies/two-node.yaml
  sudo labctl up --reconfigure my-lab.yaml`,
		Args: exactArgs(1, "one topology file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file, o.manager = args[0], g.manager()
			return runUp(cmd.Context(), o)
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the equivalent shell script instead of changing anything")
	cmd.Flags().IntVar(&o.workers, "workers", 0, "namespaces configured at once (default: 2 per CPU)")
	cmd.Flags().BoolVar(&o.repair, "repair", false, "restore a degraded lab (missing namespaces, dead supervisors or datapaths) or finish an interrupted up")
	cmd.Flags().StringVar(&o.name, "name", "", "lab name instead of the topology's: the same lab again, in namespaces of its own")
	cmd.Flags().BoolVar(&o.reconfigure, "reconfigure", false, "replace a lab that is up (also with a changed topology) by a fresh one")
	return cmd
}

func runUp(ctx context.Context, o *upOptions) error {
	t, err := spec.Load(o.file)
	if err != nil {
		return err
	}
	printWarnings(o.io.ErrOut, t) // services.go
	if o.name != "" {
		if t, err = t.Renamed(o.name); err != nil {
			return usageErrorf("--name: %v", err)
		}
	}
	if o.dryRun {
		p, err := plan.Compile(t)
		if err != nil {
			return err
		}
		return p.WriteScript(o.io.Out)
	}
	if os.Geteuid() != 0 {
		return notRootError{"up"}
	}
	if o.repair && o.reconfigure {
		return usageErrorf("give --repair or --reconfigure, not both")
	}
	// A closed terminal (SIGHUP) interrupts like Ctrl-C: the rollback must
	// run, not be skipped.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	start := time.Now()
	prog := newProgress(o.io.ErrOut, fmt.Sprintf("up %s", t.Name))
	rec, err := o.manager.Up(ctx, t, lab.UpOptions{
		Workers: o.workers, Repair: o.repair, Reconfigure: o.reconfigure,
		Progress: prog.update,
		Warn:     func(msg string) { fmt.Fprintln(o.io.ErrOut, "warning: "+msg) },
	})
	prog.finish()
	out := o.io.Out
	if errors.Is(err, lab.ErrAlreadyUp) {
		what := "nothing changed"
		if o.repair {
			what = "nothing to repair"
		}
		fmt.Fprintf(out, "lab %q is already up (since %s) and whole; %s\n", rec.Name, rec.CreatedAt.Local().Format(time.Kitchen), what)
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Repaired != nil {
		fmt.Fprintf(out, "lab %q is repaired in %s:\n", rec.Name, roundDuration(time.Since(start)))
		for _, r := range rec.Repaired {
			fmt.Fprintf(out, "  %s\n", r)
		}
		return nil
	}
	pods := len(t.Pods())
	fmt.Fprintf(out, "lab %q is up in %s: %d %s, %d %s%s, %d namespaces, backend %s\n",
		t.Name, roundDuration(time.Since(start)), len(t.Nodes), plural(len(t.Nodes), "node"),
		pods, plural(pods, "pod"), externalsPhrase(t), len(rec.Namespaces), backendSummary(t))
	if n := rec.Timing.Started; n > 0 {
		fmt.Fprintf(out, "network ready in %s, then %d %s started in %s\n",
			roundDuration(rec.Timing.Network), n, plural(n, "container"), roundDuration(rec.Timing.Containers))
	}
	example := t.Nodes[0].Name
	if ps := t.Pods(); len(ps) > 0 {
		example = ps[0].Name
	}
	// One command per line: a line pasted into a shell runs one command.
	fmt.Fprintf(out, "next:\n  labctl status %s\n  labctl exec %s -- ip route\n  labctl down %s\n", t.Name, example, t.Name)
	return nil
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(10 * time.Millisecond)
}

// progress redraws one status line on a terminal, at most every 50 ms, and
// stays silent when output is not a terminal.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	tty   bool
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, label: label, tty: isTerminal(w)}
}

func (p *progress) update(done, total int) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.last) > 50*time.Millisecond || done == total {
		p.last = now
		fmt.Fprintf(p.w, "\r%s: %d/%d namespaces configured", p.label, done, total)
		p.drawn = true
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
