package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
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
		Short: "Run a command inside a pod, node or external host",
		Long: `Run a command inside a pod, node or external host (or the router). Standard
input, output, the terminal and the exit code are the command's own (127 when it
is not found, 128+N when signal N killed it). Without a command, starts $SHELL
(or /bin/sh).

In a node, the host's command runs in the node's network namespace and its UTS
namespace, whose hostname is the node's name. In a pod (or external host) that
runs containers, the command joins a container (-c, default the first) like
kubectl exec: the pod's network, UTS, IPC and PID namespaces (ps lists the pod's
processes, PID 1 is the pod's supervisor, the pause container), the container's
mount namespace (the pod's /etc/hosts and /etc/resolv.conf, its root filesystem
if it has one), cgroups and environment. A pod without containers, the router and
the underlay are network namespaces only, like ip netns exec <namespace> CMD.`,
		Example: `  sudo labctl exec node1 -- ip route
  sudo labctl exec node1 -- hostname            # node1
  sudo labctl exec pod1a -- hostname -i         # the pod's IP, from its /etc/hosts
  sudo labctl exec pod1a -- ls -l /proc/1/ns    # the pod's namespaces, held by PID 1
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
			return runExec(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&o.container, "container", "c", "", "the container to join (default: the pod's first)")
	return cmd
}

// runExec runs the command as labctl's child and exits with its exit code.
// It must be a child: a command in a pod is born in the pod's PID
// namespace, which only a new process can join. The terminal is the
// command's: its stdin, stdout and stderr are labctl's; on a terminal it
// runs as a job of its own in the terminal's foreground
// (lab.ExecOptions.Terminal), elsewhere in labctl's process group. Either
// way Ctrl-C and Ctrl-\ from the terminal reach it, while labctl ignores
// them; SIGTERM and SIGHUP sent to labctl are passed on.
func runExec(ctx context.Context, o *execOptions) error {
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
	var env []string
	if t.PodStateDir != "" {
		// A container has its own environment; the terminal's type
		// comes along.
		if t.Container == "" && len(t.Containers) > 0 {
			t.Container = t.Containers[0] // as kubectl: the first
		}
		if term := o.getenv("TERM"); term != "" {
			env = append(env, "TERM="+term)
		}
	}
	ignored := make(chan os.Signal, 1)
	signal.Notify(ignored, os.Interrupt, syscall.SIGQUIT)
	defer signal.Stop(ignored)
	relay := make(chan os.Signal, 4)
	signal.Notify(relay, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(relay)
	opt := lab.ExecOptions{Stdin: o.io.In, Stdout: o.io.Out, Stderr: o.io.ErrOut, Env: env, Signals: relay}
	if in, ok := o.io.In.(*os.File); ok && isTerminal(in) {
		opt.Terminal = in
	}
	code, err := o.manager.Exec(ctx, t, argv, opt)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitStatus{code: code, quiet: true}
	}
	return nil
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
