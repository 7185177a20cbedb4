package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// Exit codes, documented in the README. Scripts and graders rely on them,
// so invalid input is distinct from a runtime failure. They are decided by
// error types (errors.Is / errors.As), never by an error's text.
const (
	exitOK          = 0
	exitFailure     = 1   // the kernel refused something; the lab was rolled back
	exitUsage       = 2   // bad command line
	exitInvalid     = 3   // the topology file is invalid or unreadable
	exitNotFound    = 4   // no such lab, node, pod or container (or previous run)
	exitConflict    = 5   // names in use, lab busy, degraded, changed, interrupted
	exitNotRoot     = 6   // the command needs root
	exitChecksFail  = 7   // run, grade: the scenario ran, and some checks failed or could not run
	exitCannotRun   = 126 // exec: the command cannot be run
	exitCmdNotFound = 127 // exec: the command is not found
	exitInterrupted = 130 // Ctrl-C (SIGINT), SIGTERM or SIGHUP: rolled back
)

// usageError is a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// notRootError says a command needs root.
type notRootError struct{ cmd string }

func (e notRootError) Error() string {
	return "labctl " + e.cmd + " changes network namespaces and needs root: run it with sudo"
}

// exitStatus passes a command's own exit code through (exec), quiet when
// the command already said why.
type exitStatus struct {
	code  int
	quiet bool
	err   error
}

func (e exitStatus) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func (e exitStatus) Unwrap() error { return e.err }

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	var invalid *spec.InvalidError
	var usage usageError
	var notRoot notRootError
	var exit exitStatus
	var checks checksFailedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &exit):
		return exit.code
	case errors.As(err, &checks):
		return exitChecksFail
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &invalid), errors.Is(err, spec.ErrUnreadable), errors.Is(err, scenario.ErrUnreadable):
		return exitInvalid
	case errors.As(err, &usage), errors.Is(err, lab.ErrInvalidName), errors.Is(err, lab.ErrAmbiguous):
		return exitUsage
	case errors.As(err, &notRoot):
		return exitNotRoot
	case errors.Is(err, workload.ErrCommandNotFound), errors.Is(err, exec.ErrNotFound):
		return exitCmdNotFound
	case errors.Is(err, lab.ErrNotFound), errors.Is(err, workload.ErrNoContainer), errors.Is(err, workload.ErrNoPreviousRun):
		return exitNotFound
	case errors.Is(err, lab.ErrConflict), errors.Is(err, lab.ErrIncomplete), errors.Is(err, lab.ErrDegraded), errors.Is(err, lab.ErrBadRecord):
		return exitConflict
	}
	return exitFailure
}
