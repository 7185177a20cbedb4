package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/workload"
)

// ExecOptions connect a command run by Exec; nil streams are empty input
// and discarded output.
type ExecOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Env is added to the environment: the host's for a node or pod
	// namespace, the container's own for a container.
	Env []string
}

// Exit codes Exec reports for commands that never ran, as shells do.
const (
	ExitCannotRun = 126
	ExitNotFound  = 127
)

// Exec runs argv in a target as a child of this process and returns its
// exit code; this process is not replaced (the CLI's interactive exec is).
// In a node or a pod (no container) the command is the host's, run in the
// target's network namespace (labctl's ping or curl applet when the host
// has no such program); in a container it joins the container (its
// namespaces, cgroups, root and environment) through a child labctl.
// A command that is not found exits ExitNotFound with the reason on
// Stderr. The error is for what kept labctl from running it at all.
func (m Manager) Exec(ctx context.Context, t Target, argv []string, opt ExecOptions) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("exec: no command")
	}
	var cmd *exec.Cmd
	if t.Container != "" {
		if t.PodStateDir == "" {
			return 0, fmt.Errorf("exec in %s: the pod runs no containers: %w", t, ErrNotFound)
		}
		exe, err := m.executable()
		if err != nil {
			return 0, err
		}
		cmd, err = workload.ExecCommand(exe, workload.ExecOptions{StateDir: t.PodStateDir, Container: t.Container, Argv: argv, Env: opt.Env})
		if err != nil {
			return 0, err
		}
	} else {
		// The host's program, or labctl's applet where the host has no
		// ping or curl.
		path, err := applet.Program(argv[0], m.executable)
		if err != nil {
			if opt.Stderr != nil {
				fmt.Fprintf(opt.Stderr, "labctl: exec %q: %v\n", argv[0], err)
			}
			if errors.Is(err, exec.ErrNotFound) {
				return ExitNotFound, nil
			}
			return ExitCannotRun, nil
		}
		cmd = exec.Command(path, argv[1:]...)
		cmd.Args[0] = argv[0]
		cmd.Env = append(cmd.Environ(), opt.Env...)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opt.Stdin, opt.Stdout, opt.Stderr
	cmd.Dir = "/"
	// The child inherits the network namespace of the thread that forks
	// it; the container helper joins the container itself.
	start := cmd.Start
	if t.Container == "" {
		start = func() error { return netns.Do(t.NamespacePath(), cmd.Start) }
	}
	if err := start(); err != nil {
		return 0, fmt.Errorf("exec in %s: %w", t, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case errors.As(err, &exit):
		return exit.ExitCode(), nil
	case err != nil:
		return 0, fmt.Errorf("exec in %s: %w", t, err)
	}
	return 0, nil
}

// ExecResult is what a command run by Output printed and how it ended.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// Output runs argv in a target like Exec and captures its output.
func (m Manager) Output(ctx context.Context, t Target, argv []string) (ExecResult, error) {
	var out, errOut bytes.Buffer
	code, err := m.Exec(ctx, t, argv, ExecOptions{Stdout: &out, Stderr: &errOut})
	return ExecResult{Stdout: out.Bytes(), Stderr: errOut.Bytes(), ExitCode: code}, err
}
