package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
)

// Streams are a command's standard input and outputs; tests pass buffers.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// globals are what every command shares: the streams and the flags of the
// root command.
type globals struct {
	io       Streams
	getenv   func(string) string
	stateDir string
}

func (g *globals) manager() lab.Manager { return lab.Manager{StateDir: g.stateDir} }

// run runs labctl with args and returns its exit code: the one place an
// error becomes a message and a code.
func run(ctx context.Context, args []string, io Streams, getenv func(string) string) int {
	g := &globals{io: io, getenv: getenv}
	root := newRootCmd(g)
	root.SetArgs(args)
	root.SetIn(io.In)
	root.SetOut(io.Out)
	root.SetErr(io.ErrOut)
	err := root.ExecuteContext(ctx)
	reportError(io.ErrOut, err)
	return exitCode(err)
}

// reportError prints an error the way labctl's users read it: a topology's
// problems one per line, each pointing at the file; anything else once.
func reportError(w io.Writer, err error) {
	var invalid *spec.InvalidError
	var exit exitStatus
	switch {
	case err == nil, errors.As(err, &exit) && exit.quiet:
	case errors.As(err, &invalid):
		for _, p := range invalid.Problems {
			fmt.Fprintln(w, p.Error())
		}
		what := "topology"
		if errors.As(err, new(invalidScenarioError)) {
			what = "scenario"
		}
		fmt.Fprintf(w, "labctl: the %s is invalid (%d %s)\n", what, len(invalid.Problems), plural(len(invalid.Problems), "problem"))
	default:
		fmt.Fprintln(w, "labctl: "+err.Error())
	}
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "labctl",
		Short: "Build and explore Kubernetes pod networks made of real kernel objects",
		Long: `labctl turns one topology file into a running multi-node pod network on this
machine: nodes and pods are network namespaces, wired with veth pairs, bridges
and routes exactly as a CNI plugin would, so you can inspect them with the
usual tools (ip netns exec <namespace> ip route).

  labctl up topologies/two-node.yaml     bring the lab up
  labctl status two-node                 see its nodes, pods, IPs and namespaces
  labctl status two-node node1           see node1's interfaces, routes, neighbours
  labctl exec pod1a -- ip route          run a command inside a pod
  labctl down two-node                   remove everything the lab created`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without this cobra reports an unknown command as plain text;
		// labctl's exit codes are decided by error types, never by text.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for \"labctl\" (see labctl --help)", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Records and helper processes keep paths into the state
			// directory, whatever their working directory.
			abs, err := filepath.Abs(g.stateDir)
			if err != nil {
				return usageErrorf("--state-dir %q: %v", g.stateDir, err)
			}
			g.stateDir = abs
			return nil
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v (see labctl %s --help)", err, cmd.Name())
	})
	defaultDir := g.getenv("LABCTL_STATE_DIR")
	if defaultDir == "" {
		defaultDir = lab.DefaultStateDir
	}
	root.PersistentFlags().StringVar(&g.stateDir, "state-dir", defaultDir, "where labctl records its labs (env LABCTL_STATE_DIR)")
	build := readBuildInfo(debug.ReadBuildInfo)
	root.Version = build.line()
	root.SetVersionTemplate("{{.Version}}\n")
	// labctl's own completion command documents how to install it.
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newValidateCmd(g), newUpCmd(g), newDownCmd(g), newStatusCmd(g), newExecCmd(g), newLogsCmd(g), newCaptureCmd(g),
		newVersionCmd(g, build), newCompletionCmd(g), newConntrackCmd(g))
	registerCompletions(g, root)
	root.AddCommand(newRunCmd(g), newGradeCmd(g), newStopCmd(g))
	root.AddCommand(newTraceCmd(g), newGraphCmd(g))
	root.AddCommand(newTuiCmd(g))
	return root
}

// exactArgs, rangeArgs: cobra's argument checks, returning usage errors.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (see labctl %s --help)", cmd.Name(), what, cmd.Name())
		}
		return nil
	}
}

func rangeArgs(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < min || len(args) > max {
			return usageErrorf("%s takes %s (see labctl %s --help)", cmd.Name(), what, cmd.Name())
		}
		return nil
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	if word == "process" {
		return "processes"
	}
	return word + "s"
}
