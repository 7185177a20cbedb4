package helper

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/labctl/labctl/emulator/process"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The environment of a helper. Only the role is read before Main decides
// that this process is a helper; all four are removed before its main runs.
const (
	envRole   = "LABCTL_HELPER_ROLE"
	envConfig = "LABCTL_HELPER_CONFIG" // the role's configuration, JSON
	envReady  = "LABCTL_HELPER_READY"  // "3": file descriptor 3 takes the report
	envNetns  = "LABCTL_HELPER_NETNS"  // the namespace path to watch
)

// readyFD is the file descriptor a helper reports on.
const readyFD = 3

type roleMain func(ctx context.Context, config []byte) int

// Filled by Register and RegisterApplet from init functions, which run one
// at a time: no lock. Maps are made on first use, so a binary pays for
// nothing it does not register.
var (
	roles   map[string]roleMain
	applets map[string]func(args []string) int
)

// Register makes main the part the labctl binary plays when started as
// role (by Start, Environ or Command), with the configuration the parent
// passed decoded into a C. main's context is cancelled when the network
// namespace the helper was started in is gone (see Start); main must then
// end. Its result is the process's exit code. Call Register from an init
// function; a role registered twice panics.
func Register[C any](role string, main func(ctx context.Context, cfg C) int) {
	if role == "" {
		panic("helper: empty role")
	}
	if _, dup := roles[role]; dup {
		panic("helper: role " + role + " registered twice")
	}
	if roles == nil {
		roles = map[string]roleMain{}
	}
	roles[role] = func(ctx context.Context, raw []byte) int {
		var cfg C
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return failed(fmt.Errorf("helper %q: read its configuration: %w", role, err))
		}
		return main(ctx, cfg)
	}
}

// RegisterApplet makes main the program the labctl binary becomes when it
// is called by name (argv[0], as through a link named curl). main gets the
// arguments after the name and returns the exit code.
func RegisterApplet(name string, main func(args []string) int) {
	if _, dup := applets[name]; dup || name == "" {
		panic("helper: applet " + name + " registered twice or unnamed")
	}
	if applets == nil {
		applets = map[string]func([]string) int{}
	}
	applets[name] = main
}

// Main runs the helper role or applet this process was started as, if it
// is not the CLI, and returns its exit code. Call it first thing in main():
//
//	if code, handled := helper.Main(); handled {
//		os.Exit(code)
//	}
//
// It returns handled=false for an ordinary CLI invocation.
func Main() (code int, handled bool) {
	if role := os.Getenv(envRole); role != "" {
		return runRole(role), true
	}
	if len(os.Args) > 0 {
		if applet := applets[filepath.Base(os.Args[0])]; applet != nil {
			return applet(os.Args[1:]), true
		}
	}
	return 0, false
}

func runRole(role string) int {
	config, netns, ready := os.Getenv(envConfig), os.Getenv(envNetns), os.Getenv(envReady)
	for _, name := range []string{envRole, envConfig, envNetns, envReady} {
		os.Unsetenv(name)
	}
	if ready == strconv.Itoa(readyFD) {
		// Close-on-exec: what the helper executes (a container's
		// command) must not hold the pipe open, and a container init's
		// exec reports success by closing it.
		unix.CloseOnExec(readyFD)
		report.f = os.NewFile(readyFD, "ready")
	}
	main := roles[role]
	if main == nil {
		return failed(fmt.Errorf("unknown %s=%q", envRole, role))
	}
	ctx := context.Background()
	if netns != "" {
		ctx = watchNamespace(ctx, netns, watchInterval)
	}
	return main(ctx, []byte(config))
}

// failed reports an error of the mechanism itself, before the role runs.
func failed(err error) int {
	fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
	Ready(err)
	return 2
}

// The one report of this helper, sent by Ready.
var report struct {
	sync.Mutex
	f *os.File // nil once sent, and in a helper without a ready pipe
}

// The report: readyOK, or readyError followed by the error's text.
const (
	readyOK    = "ok"
	readyError = "error: "
)

// Ready sends the helper's one report to its parent: ready (err == nil), or
// the error that keeps it from running, which the parent's Start returns
// as a *ReportedError. Only the first call counts; without a ready pipe
// (Command) it does nothing.
func Ready(err error) {
	report.Lock()
	defer report.Unlock()
	if report.f == nil {
		return
	}
	msg := readyOK
	if err != nil {
		msg = readyError + err.Error()
	}
	_, _ = report.f.WriteString(msg)
	report.f.Close()
	report.f = nil
	if err == nil {
		// The helper has started and runs on: let go of the binary's
		// pages only starting needed (see process.ReleaseStartupPages).
		_ = process.ReleaseStartupPages()
	}
}
