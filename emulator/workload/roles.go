package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/labctl/labctl/emulator/helper"
)

// The parts this package adds to the labctl binary, as helper roles (see
// emulator/helper): each pod's supervisor, the init of each container
// (which becomes the container's command, or runs its builtin), and the
// container side of `labctl exec`. The applets containers find in their
// PATH are emulator/applet's.
const (
	roleShim = "pod-shim"
	roleInit = "container-init"
	roleExec = "container-exec"
)

func init() {
	helper.Register(roleShim, runShim)
	helper.Register(roleInit, runInit)
	helper.Register(roleExec, runExec)
}

// ExecCommand returns a command that runs opts in a container without
// replacing the calling process: a child labctl (exe) that joins the
// container and becomes the command (see Exec), so its stdin, stdout,
// stderr and exit code are the command's. Exit codes of its own: 127 when
// the command is not found, 126 when it cannot be run, 1 when the
// container is not running.
func ExecCommand(exe string, opts ExecOptions) (*exec.Cmd, error) {
	return helper.Command(exe, roleExec, opts, "labctl-exec")
}

func runExec(_ context.Context, opts ExecOptions) int {
	err := Exec(opts) // returns only on failure
	fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
	switch {
	case errors.Is(err, ErrCommandNotFound):
		return 127
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrNoContainer):
		return 1
	}
	return 126
}
