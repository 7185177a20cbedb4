package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/workload"
)

type execOptions struct {
	io        Streams
	getenv    func(string) string
	manager   lab.Manager
	lab       string
	target    string
	container string
	argv      []string
}

func newExecCmd(g *globals) *cobra.Command {
	o := &execOptions{io: g.io, getenv: g.getenv}
	cmd := &cobra.Command{
		// [flags] before --: whatever follows -- is the command's.
		Use:   "exec POD|NODE|EXTERNAL [-c CONTAINER] [--lab NAME] [flags] [-- COMMAND [ARGS...]]",
		Short: "Run a command inside a pod's, node's or external host's network namespace",
		Long: `Run a command inside a pod's, node's or external host's network namespace (or
the router's), like ip netns exec <namespace> CMD. Standard input, output, the
terminal and the exit code are the command's own (127 when it is not found).
Without a command, starts $SHELL (or /bin/sh). In a pod (or external host) that
runs containers, the command joins a container (-c, default the first) like
kubectl exec: its namespaces, cgroups, root and environment.`,
		Example: `  sudo labctl exec node1 -- ip route
  sudo labctl exec pod1a -c curl-client -- curl 192.168.2.20
  sudo labctl exec --lab two-node pod2          # a shell inside pod2`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			switch {
			case len(args) == 0 || dash == 0:
				return usageErrorf("exec needs a pod or node before the command: labctl exec POD -- COMMAND (see labctl exec --help)")
			case dash > 1 || (dash < 0 && len(args) > 1):
				return usageErrorf("exec takes one pod or node, then -- and the command: labctl exec %s -- %s", args[0], strings.Join(args[1:], " "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.target, o.argv, o.manager = args[0], args[1:], g.manager()
			return runExec(o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&o.container, "container", "c", "", "the container to join (default: the pod's first)")
	return cmd
}

// runExec replaces labctl with the command, so the terminal, signals and
// exit code are the command's own; it returns only on failure.
func runExec(o *execOptions) error {
	t, err := o.manager.Resolve(o.lab, o.target, o.container)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return notRootError{"exec"}
	}
	argv := o.argv
	if len(argv) == 0 {
		sh := o.getenv("SHELL")
		if sh == "" {
			sh = "/bin/sh"
		}
		argv = []string{sh}
	}
	if t.PodStateDir != "" {
		var env []string
		if term := o.getenv("TERM"); term != "" {
			env = append(env, "TERM="+term)
		}
		return workload.Exec(workload.ExecOptions{StateDir: t.PodStateDir, Container: t.Container, Argv: argv, Env: env})
	}
	// The host's program, or labctl's ping or curl applet where the host
	// has none.
	prog, err := applet.Program(argv[0], os.Executable)
	if err != nil {
		return err
	}
	return netns.ExecProgram(t.NamespacePath(), prog, argv)
}

type logsOptions struct {
	io        Streams
	manager   lab.Manager
	lab       string
	pod       string
	container string
	follow    bool
	previous  bool
	tail      int
	stamps    bool
}

func newLogsCmd(g *globals) *cobra.Command {
	o := &logsOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [flags]",
		Short: "Print a container's output (stdout and stderr), as kubectl logs",
		Long: `Print a container's output, stdout and stderr in the order written, as
kubectl logs does: the current run's (while the container waits to be
restarted, the run that just ended), or with --previous the run before, the
one kubectl describe calls Last State. -f follows the run until it ends.
--timestamps puts before each line when labctl's supervisor read it (RFC 3339,
nanoseconds, UTC). -c may be left out when the pod has one container.`,
		Example: `  labctl logs pod2 -c web-server
  labctl logs -f pod1a -c web-server
  labctl logs jobs -c flaky --previous           # the run before the current one
  labctl logs pod2 -c web-server --tail 5 --timestamps`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 2 && o.container == "":
				// kubectl's older form, logs POD CONTAINER.
				return usageErrorf("logs takes one pod; name the container with -c: labctl logs %s -c %s", args[0], args[1])
			case len(args) != 1:
				return usageErrorf("logs takes one pod (see labctl logs --help)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pod, o.manager = args[0], g.manager()
			return runLogs(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&o.container, "container", "c", "", "the container (may be left out when the pod has one)")
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "keep printing the run's new output until it ends")
	cmd.Flags().BoolVarP(&o.previous, "previous", "p", false, "print the previous run's output")
	cmd.Flags().IntVar(&o.tail, "tail", -1, "print only the last N lines (-1: all)")
	cmd.Flags().BoolVar(&o.stamps, "timestamps", false, "put the time each line was read before it")
	return cmd
}

func runLogs(ctx context.Context, o *logsOptions) error {
	if o.tail < -1 {
		return usageErrorf("--tail %d: give a number of lines, or -1 for all", o.tail)
	}
	t, err := o.manager.Resolve(o.lab, o.pod, o.container)
	if err != nil {
		return err
	}
	if t.PodStateDir == "" {
		return fmt.Errorf("%s runs no containers: %w", t, lab.ErrNotFound)
	}
	container := t.Container
	if container == "" {
		if len(t.Containers) > 1 {
			// As kubectl: with several containers, which one is not guessed.
			return usageErrorf("pod %q has %d containers: choose one with -c (%s)", t.Name, len(t.Containers), strings.Join(t.Containers, ", "))
		}
		container = t.Containers[0]
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return workload.ReadLogs(ctx, o.io.Out, t.PodStateDir, workload.LogOptions{
		Container: container, Follow: o.follow, Previous: o.previous, Tail: o.tail, Timestamps: o.stamps,
	})
}
