package main

import (
	"errors"
	"strings"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
)

// Exit codes, documented in the README. Scripts and graders rely on them,
// so invalid input is distinct from a runtime failure.
const (
	exitOK       = 0
	exitFailure  = 1 // the kernel refused something; the lab was rolled back
	exitUsage    = 2 // bad command line
	exitInvalid  = 3 // the topology file is invalid
	exitNotFound = 4 // no such lab, pod or node
	exitConflict = 5 // names already in use, or another labctl is busy with the lab
	exitNotRoot  = 6 // the command needs root
)

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

type notRootError struct{ cmd string }

func (e notRootError) Error() string {
	return "labctl " + e.cmd + " changes network namespaces and needs root: run it with sudo"
}

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	var invalid *spec.InvalidError
	var usage usageError
	var notRoot notRootError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &invalid):
		return exitInvalid
	case errors.As(err, &usage):
		return exitUsage
	case errors.As(err, &notRoot):
		return exitNotRoot
	case errors.Is(err, lab.ErrInvalidName):
		return exitUsage
	case errors.Is(err, lab.ErrNotFound):
		return exitNotFound
	case errors.Is(err, lab.ErrConflict), errors.Is(err, lab.ErrIncomplete), errors.Is(err, lab.ErrDegraded), errors.Is(err, lab.ErrBadRecord):
		return exitConflict
	case isCobraUsage(err):
		return exitUsage
	}
	return exitFailure
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
