// Command labctl builds Kubernetes-style pod networks out of real kernel
// objects (network namespaces, veth pairs, bridges, routes) from one
// topology file. This package is CLI wiring only; the work happens in
// emulator/.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// globals are the flags every command shares.
type globals struct {
	stateDir string
}

func (g *globals) manager() lab.Manager { return lab.Manager{StateDir: g.stateDir} }

// absStateDir makes --state-dir absolute once, before any command runs:
// records and helper processes keep paths into it.
func (g *globals) absStateDir() error {
	abs, err := filepath.Abs(g.stateDir)
	if err != nil {
		return usageError{fmt.Sprintf("--state-dir %q: %v", g.stateDir, err)}
	}
	g.stateDir = abs
	return nil
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "labctl",
		Short: "Build and explore Kubernetes pod networks made of real kernel objects",
		Long: `labctl turns one topology file into a running multi-node pod network on this
machine: nodes and pods are network namespaces, wired with veth pairs, bridges
and routes exactly as a CNI plugin would, so you can inspect them with the
usual tools (ip netns exec <namespace> ip route).

  labctl up topologies/two-node.yaml     bring the lab up
  labctl status                          see nodes, pods, IPs and namespaces
  labctl exec pod1a -- ip route          run a command inside a pod
  labctl down two-node                   remove everything the lab created`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.absStateDir()
		},
	}
	defaultDir := os.Getenv("LABCTL_STATE_DIR")
	if defaultDir == "" {
		defaultDir = lab.DefaultStateDir
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", defaultDir, "where labctl records its labs (env LABCTL_STATE_DIR)")
	root.AddCommand(newValidateCmd(), newUpCmd(g), newDownCmd(g), newStatusCmd(g), newExecCmd(g), newLogsCmd(g), newCaptureCmd(g), newInternalCmd())
	return root
}

func main() {
	// The same binary is also each pod's supervisor, container init, the
	// builtin servers and the curl/ping applets; those never reach the CLI.
	if code, handled := workload.Main(); handled {
		os.Exit(code)
	}
	cmd := newRootCmd()
	err := cmd.Execute()
	var invalid *spec.InvalidError
	switch {
	case errors.As(err, &invalid):
		// One problem per line, each already pointing at the file.
		for _, p := range invalid.Problems {
			fmt.Fprintln(os.Stderr, p.Error())
		}
		fmt.Fprintf(os.Stderr, "labctl: the topology is invalid (%d %s)\n", len(invalid.Problems), plural(len(invalid.Problems), "problem"))
	case err != nil:
		fmt.Fprintln(os.Stderr, "labctl: "+err.Error())
	}
	os.Exit(exitCode(err))
}
