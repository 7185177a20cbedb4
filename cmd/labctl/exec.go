package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/lab"
)

func newExecCmd(g *globals) *cobra.Command {
	var labName string
	cmd := &cobra.Command{
		Use:   "exec POD|NODE [--lab NAME] -- CMD [ARGS...]",
		Short: "Run a command inside a pod's or node's network namespace",
		Long: `Run a command inside a pod's or node's network namespace, like
ip netns exec <namespace> CMD. Standard input, output, the terminal and the exit
code are the command's own. Without a command, starts $SHELL (or /bin/sh).`,
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
			ns, err := resolveTarget(g.manager(), labName, target)
			if err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return notRootError{"exec"}
			}
			return kernel.Exec(ns, argv)
		},
	}
	cmd.Flags().StringVar(&labName, "lab", "", "the lab to look in when several are up")
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
		if recs, err = m.List(); err != nil {
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
