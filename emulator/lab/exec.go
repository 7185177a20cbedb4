package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/applet"
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
	// Signals received here are passed on to the command while it runs
	// (the CLI relays SIGTERM and SIGHUP).
	Signals <-chan os.Signal
	// Terminal, when it is the terminal this process runs in the
	// foreground of (the CLI's stdin), makes the command a job of its own
	// on it (term.go): an interactive shell in a pod needs that.
	Terminal *os.File
}

// Exit codes Exec reports for commands that never ran, as shells do.
const (
	ExitCannotRun = 126
	ExitNotFound  = 127
)

// Exec runs argv in a target as a child of this process and returns its
// exit code (128 plus the signal for a command killed by one, as shells
// report it). In a node the command is the host's, in the node's network
// namespace and UTS namespace (its hostname: nodes.go). In a pod that runs
// containers it joins a container, as `kubectl exec` does (its
// namespaces, cgroups, root and environment), or with no container the
// pod's own namespaces, those of its supervisor (network, UTS, IPC, PID,
// mount): the host's programs, with the pod's hostname, /etc/hosts and
// /etc/resolv.conf, and only the pod's processes in /proc. A pod without
// containers is a network namespace and nothing more, as in the textbook.
// A command that is not found exits ExitNotFound, one that cannot run
// ExitCannotRun, with the reason on Stderr. The error is for what kept
// labctl from running it at all.
func (m Manager) Exec(ctx context.Context, t Target, argv []string, opt ExecOptions) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("exec: no command")
	}
	cannot := func(code int, err error) (int, error) {
		if opt.Stderr != nil {
			fmt.Fprintf(opt.Stderr, "labctl: %v\n", err)
		}
		return code, nil
	}
	var cmd *exec.Cmd
	var start func() error
	switch {
	case t.PodStateDir != "":
		wc, err := workload.Command(workload.ExecOptions{
			StateDir: t.PodStateDir, Container: t.Container, Sandbox: t.Container == "", Argv: argv, Env: opt.Env,
		})
		if err != nil {
			return 0, fmt.Errorf("exec in %s: %w", t, err)
		}
		cmd, start = wc.Cmd, wc.Start
	case t.Container != "":
		return 0, fmt.Errorf("exec in %s: the pod runs no containers: %w", t, ErrNotFound)
	default:
		// The host's program, or labctl's applet where the host has no
		// ping or curl.
		path, err := applet.Program(argv[0], m.executable)
		if err != nil {
			code := ExitCannotRun
			if errors.Is(err, exec.ErrNotFound) {
				code = ExitNotFound
			}
			return cannot(code, fmt.Errorf("exec %q: %w", argv[0], err))
		}
		cmd = &exec.Cmd{Path: path, Args: argv, Env: append(os.Environ(), opt.Env...)}
		j, warn := nodeJoin(t)
		if warn != "" && opt.Stderr != nil {
			fmt.Fprintln(opt.Stderr, warn)
		}
		join := workload.Join{Netns: j.netns}
		if j.holder.PID != 0 {
			join.Process, join.Namespaces = j.holder, unix.CLONE_NEWUTS
		}
		start = func() error { return workload.StartIn(cmd, join) }
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opt.Stdin, opt.Stdout, opt.Stderr
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	tty := opt.Terminal
	if tty != nil && !foregroundOn(tty) {
		tty = nil
	}
	if tty != nil {
		asJob(cmd, tty)
	}
	switch err := start(); {
	case errors.Is(err, workload.ErrCommandNotFound):
		return cannot(ExitNotFound, err)
	case errors.Is(err, workload.ErrCannotRun):
		return cannot(ExitCannotRun, err)
	case err != nil:
		return 0, fmt.Errorf("exec in %s: %w", t, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	defer stop()
	relayed := make(chan struct{})
	defer close(relayed)
	if opt.Signals != nil {
		go func() {
			for {
				select {
				case sig := <-opt.Signals:
					_ = cmd.Process.Signal(sig)
				case <-relayed:
					return
				}
			}
		}()
	}
	if tty != nil {
		waitJob(cmd, tty)
	}
	err := cmd.Wait()
	if tty != nil {
		setForeground(tty, unix.Getpgrp())
	}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case errors.As(err, &exit):
		return workload.ExitCode(exit.ProcessState), nil
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
