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

func newUpCmd(g *globals) *cobra.Command {
	var dryRun, repair, reconfigure bool
	var workers int
	cmd := &cobra.Command{
		Use:   "up FILE",
		Short: "Bring a lab up from a topology file",
		Long: `Bring a lab up from a topology file. Everything is created through netlink in
namespaces named <lab>-<node or pod>; on any error or Ctrl-C everything already
created is removed again.

With --dry-run nothing is changed: the plan is printed as the equivalent bash
script of ip and sysctl commands, a faithful transcript of what up does.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := spec.Load(args[0])
			if err != nil {
				return err
			}
			if dryRun {
				p, err := plan.Compile(t)
				if err != nil {
					return err
				}
				return p.WriteScript(cmd.OutOrStdout())
			}
			if os.Geteuid() != 0 {
				return notRootError{"up"}
			}
			if repair && reconfigure {
				return usageError{"give --repair or --reconfigure, not both"}
			}
			// A closed terminal (SIGHUP) interrupts like Ctrl-C: the
			// rollback must run, not be skipped.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			opts := lab.UpOptions{Workers: workers, Repair: repair, Reconfigure: reconfigure}
			return up(ctx, g.manager(), t, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the equivalent shell script instead of changing anything")
	cmd.Flags().IntVar(&workers, "workers", 0, "namespaces configured at once (default: 2 per CPU)")
	cmd.Flags().BoolVar(&repair, "repair", false, "restore a degraded lab (missing namespaces, dead supervisors or datapaths) or finish an interrupted up")
	cmd.Flags().BoolVar(&reconfigure, "reconfigure", false, "replace a lab that is up (also with a changed topology) by a fresh one")
	return cmd
}

func up(ctx context.Context, m lab.Manager, t *spec.Topology, opts lab.UpOptions, stdout, stderr io.Writer) error {
	start := time.Now()
	prog := newProgress(stderr, fmt.Sprintf("up %s", t.Name))
	opts.Progress = prog.update
	opts.Warn = func(msg string) { fmt.Fprintln(stderr, "warning: "+msg) }
	rec, err := m.Up(ctx, t, opts)
	prog.finish()
	if errors.Is(err, lab.ErrAlreadyUp) {
		what := "nothing changed"
		if opts.Repair {
			what = "nothing to repair"
		}
		fmt.Fprintf(stdout, "lab %q is already up (since %s) and whole; %s\n", rec.Name, rec.CreatedAt.Local().Format(time.Kitchen), what)
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Repaired != nil {
		fmt.Fprintf(stdout, "lab %q is repaired in %s:\n", rec.Name, roundDuration(time.Since(start)))
		for _, r := range rec.Repaired {
			fmt.Fprintf(stdout, "  %s\n", r)
		}
		return nil
	}
	pods := len(t.Pods())
	fmt.Fprintf(stdout, "lab %q is up in %s: %d %s, %d %s, %d namespaces, backend %s\n",
		t.Name, roundDuration(time.Since(start)), len(t.Nodes), plural(len(t.Nodes), "node"),
		pods, plural(pods, "pod"), len(rec.Namespaces), backendSummary(t))
	if n := rec.Timing.Started; n > 0 {
		fmt.Fprintf(stdout, "network ready in %s, then %d %s started in %s\n",
			roundDuration(rec.Timing.Network), n, plural(n, "container"), roundDuration(rec.Timing.Containers))
	}
	example := t.Nodes[0].Name
	if ps := t.Pods(); len(ps) > 0 {
		example = ps[0].Name
	}
	// One command per line: a line pasted into a shell runs one command.
	fmt.Fprintf(stdout, "next:\n  labctl status %s\n  labctl exec %s -- ip route\n  labctl down %s\n", t.Name, example, t.Name)
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
