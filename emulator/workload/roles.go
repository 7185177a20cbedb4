package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"golang.org/x/sys/unix"

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

// ExecCommand returns a command that runs opts in a container as a child
// labctl (exe), for callers that want an ordinary exec.Cmd: the child
// joins the container (see Command), runs the command as its own child
// and exits with its code, passing its stdin, stdout and stderr on. Exit
// codes of its own: 127 when the command is not found, 126 when it cannot
// be run, 1 when the container is not running.
func ExecCommand(exe string, opts ExecOptions) (*exec.Cmd, error) {
	return helper.Command(exe, roleExec, opts, "labctl-exec")
}

func runExec(_ context.Context, opts ExecOptions) int {
	cmd, err := Command(opts)
	if err == nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		// The command has the terminal's signals itself (it is in this
		// process's group); the others are passed on.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP)
		if err = cmd.Start(); err == nil {
			go func() {
				for sig := range sigs {
					if sig == unix.SIGTERM || sig == unix.SIGHUP {
						_ = cmd.Process.Signal(sig)
					}
				}
			}()
			_ = cmd.Wait()
			return ExitCode(cmd.ProcessState)
		}
	}
	fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
	switch {
	case errors.Is(err, ErrCommandNotFound):
		return 127
	case errors.Is(err, ErrNotRunning), errors.Is(err, ErrNoContainer):
		return 1
	}
	return 126
}
