package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// The labctl binary plays several parts: the CLI, each pod's supervisor, the
// first moments of each container, the builtin workloads and a few applets.
// The part is chosen before any CLI parsing, by Main:
//
//   - LABCTL_WORKLOAD_ROLE=shim|init in the environment selects the
//     supervisor or container init. Only StartPod and the supervisor set it,
//     and both remove it before user code runs, so no container inherits it.
//     An environment variable rather than a hidden subcommand keeps the
//     contract independent of the CLI framework and of argv, which is free
//     to carry a readable process title ("labctl-shim two-node/pod1a").
//   - Otherwise the program name (argv[0]) selects an applet: a link named
//     curl or ping to the labctl binary runs the applet of that name. This
//     is how `labctl exec POD -c client -- curl ...` works without curl on
//     the host: client containers find such links first in their PATH.
const (
	envRole     = "LABCTL_WORKLOAD_ROLE"
	envStateDir = "LABCTL_WORKLOAD_DIR"  // shim: the pod's state directory
	envInit     = "LABCTL_WORKLOAD_INIT" // init: its initConfig as JSON
	envExec     = "LABCTL_WORKLOAD_EXEC" // exec: its ExecOptions as JSON
	roleShim    = "shim"
	roleInit    = "init"
	roleExec    = "exec"
)

// applets are the programs the labctl binary becomes when called by these
// names.
var applets = map[string]func(args []string) int{
	"curl": curlMain,
	"ping": pingMain,
}

// AppletNames lists the applets, for documentation and tests.
func AppletNames() []string { return []string{"curl", "ping"} }

// Main runs the part of the labctl binary this process was started for, if
// it is not the CLI. Call it first thing in main():
//
//	if code, handled := workload.Main(); handled {
//		os.Exit(code)
//	}
//
// It returns handled=false for an ordinary CLI invocation.
func Main() (code int, handled bool) {
	switch os.Getenv(envRole) {
	case "":
	case roleShim:
		return runShim(os.Getenv(envStateDir)), true
	case roleInit:
		return runInit(), true
	case roleExec:
		return runExec(), true
	default:
		fmt.Fprintf(os.Stderr, "labctl: unknown %s=%q\n", envRole, os.Getenv(envRole))
		return 2, true
	}
	if len(os.Args) > 0 {
		if applet, ok := applets[filepath.Base(os.Args[0])]; ok {
			return applet(os.Args[1:]), true
		}
	}
	return 0, false
}

// ExecCommand returns a command that runs opts in a container without
// replacing the calling process: a child labctl (exe) that joins the
// container and becomes the command (see Exec), so its stdin, stdout,
// stderr and exit code are the command's. Exit codes of its own: 127 when
// the command is not found, 126 when it cannot be run, 1 when the
// container is not running.
func ExecCommand(exe string, opts ExecOptions) (*exec.Cmd, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "labctl-exec")
	cmd.Env = []string{envRole + "=" + roleExec, envExec + "=" + string(b)}
	return cmd, nil
}

func runExec() int {
	var opts ExecOptions
	if err := json.Unmarshal([]byte(os.Getenv(envExec)), &opts); err != nil {
		fmt.Fprintf(os.Stderr, "labctl: exec: %v\n", err)
		return 126
	}
	os.Unsetenv(envRole)
	os.Unsetenv(envExec)
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
