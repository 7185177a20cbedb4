package main

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/workload"
)

func newExecCmd(g *globals) *cobra.Command {
	var labName, container string
	cmd := &cobra.Command{
		Use:   "exec POD|NODE [-c CONTAINER] [--lab NAME] -- CMD [ARGS...]",
		Short: "Run a command inside a pod's or node's network namespace",
		Long: `Run a command inside a pod's or node's network namespace, like
ip netns exec <namespace> CMD. Standard input, output, the terminal and the exit
code are the command's own. Without a command, starts $SHELL (or /bin/sh).
In a pod that runs containers, the command joins a container (-c, default the
first) like kubectl exec: its namespaces, cgroups, root and environment.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target, argv := args[0], args[1:]
			if cmd.ArgsLenAtDash() > 1 {
				return usageError{"exec takes one pod or node before --"}
			}
			if len(argv) == 0 {
				sh := os.Getenv("SHELL")
				if sh == "" {
					sh = "/bin/sh"
				}
				argv = []string{sh}
			}
			m := g.manager()
			ns, err := resolveTarget(m, labName, target)
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return notRootError{"exec"}
			}
			if dir, ok := podStateDir(m, ns); ok {
				env := []string{}
				if t := os.Getenv("TERM"); t != "" {
					env = append(env, "TERM="+t)
				}
				return workload.Exec(workload.ExecOptions{StateDir: dir, Container: container, Argv: argv, Env: env})
			}
			if container != "" {
				return usageError{fmt.Sprintf("%q runs no containers; leave out -c", target)}
			}
			return kernel.Exec(ns, argv)
		},
	}
	cmd.Flags().StringVar(&labName, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container to join (default: the pod's first)")
	return cmd
}

// podStateDir finds the state directory of the pod behind a namespace, if
// that pod runs containers.
func podStateDir(m lab.Manager, ns string) (string, bool) {
	recs, _, _ := m.List()
	for _, r := range recs {
		for _, n := range r.Namespaces {
			if n.Name == ns {
				if _, ok := r.Pods[n.Object]; ok {
					return m.PodStateDir(r.Name, n.Object), true
				}
			}
		}
	}
	return "", false
}

func newLogsCmd(g *globals) *cobra.Command {
	var labName, container string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-f]",
		Short: "Print a container's output (stdout and stderr, across restarts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := g.manager()
			ns, err := resolveTarget(m, labName, args[0])
			if err != nil {
				return err
			}
			dir, ok := podStateDir(m, ns)
			if !ok {
				return fmt.Errorf("%q runs no containers: %w", args[0], lab.ErrNotFound)
			}
			if container == "" {
				if container, err = workload.DefaultContainer(dir); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return workload.Logs(ctx, cmd.OutOrStdout(), dir, container, follow)
		},
	}
	cmd.Flags().StringVar(&labName, "lab", "", "the lab to look in when several are up")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container (default: the pod's first)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	return cmd
}

// resolveTarget finds the namespace of a pod or node by name, across all
// labs unless one is named.
func resolveTarget(m lab.Manager, labName, target string) (string, error) {
	var recs []*lab.Record
	if labName != "" {
		r, err := m.Load(labName)
		if err != nil {
			return "", err
		}
		recs = []*lab.Record{r}
	} else {
		var err error
		if recs, _, err = m.List(); err != nil {
			return "", err
		}
	}
	var found []string
	var labs []string
	for _, r := range recs {
		for _, ns := range r.Namespaces {
			if ns.Object == target || ns.Name == target {
				found = append(found, ns.Name)
				labs = append(labs, r.Name)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var known []string
		for _, r := range recs {
			for _, ns := range r.Namespaces {
				if ns.Object != "" {
					known = append(known, ns.Object)
				}
			}
		}
		sort.Strings(known)
		if len(known) == 0 {
			return "", fmt.Errorf("no pod or node %q: no labs are up: %w", target, lab.ErrNotFound)
		}
		return "", fmt.Errorf("no pod or node %q (known: %s): %w", target, strings.Join(known, ", "), lab.ErrNotFound)
	}
	return "", usageError{fmt.Sprintf("%q exists in several labs (%s): pick one with --lab", target, strings.Join(labs, ", "))}
}
