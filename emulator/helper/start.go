package helper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/process"
)

// Options describe a helper to Start.
type Options struct {
	Role   string // as registered by the helper's package
	Config any    // passed to the role's main, as JSON
	// Executable is the labctl binary; default os.Executable(). Tests pass
	// their test binary, whose TestMain calls Main.
	Executable string
	// Args is the helper's argv, its first element the process title
	// ("labctl-shim", say); default [Role].
	Args []string
	// Env is the helper's environment besides the role's own variables;
	// nothing of the caller's is passed on unless listed here.
	Env []string
	// Namespace is the path of the network namespace to start the helper
	// in (/run/netns/NAME); the helper ends when that path no longer
	// refers to it. Empty: the caller's namespace, unwatched.
	Namespace string
	// Cloneflags are extra namespaces the helper gets, e.g. CLONE_NEWUTS.
	Cloneflags uintptr
	// Cgroups are cgroup v1 directories the helper is born in (see
	// cgroups.Driver.BornIn): it is forked from a thread that joined them
	// and is then thrown away. On cgroup v2 leave it empty and let the
	// helper join its cgroup itself.
	Cgroups []string
	// Log takes the helper's stdout and stderr; nil discards them.
	Log *os.File
	// ReadyTimeout bounds the wait for the helper's report; default 10s.
	ReadyTimeout time.Duration
	// StopGrace is how long a helper that failed to become ready gets
	// between SIGTERM and SIGKILL; default 2s.
	StopGrace time.Duration
	// Prepare runs on the forking thread, in Namespace, just before the
	// fork: what it changes of the thread (a namespace it unshares and
	// sets up, say) the helper inherits. The thread is thrown away
	// afterwards.
	Prepare func() error
	// NoReport: the helper gets no ready pipe and Start returns as soon
	// as it runs, for a helper whose state the parent made itself
	// (Prepare) and that has nothing to report; the wait for a Go
	// program to come up is saved.
	NoReport bool
}

// ErrNoReport says a helper's ready pipe closed without a report: the
// helper exited before it was ready (or, for container init, executed its
// command, which closes the pipe).
var ErrNoReport = errors.New("exited before it was ready")

// ErrNotReady says a helper did not report within its timeout.
var ErrNotReady = errors.New("not ready")

// ReportedError is the error a helper reported instead of being ready
// (Ready with an error), in its own words.
type ReportedError struct{ Msg string }

func (e *ReportedError) Error() string { return e.Msg }

// maxReport bounds what is read of a report.
const maxReport = 1 << 20

// Start starts the helper o describes and waits until it reports ready.
// The helper is detached: its own session, stdin /dev/null, working
// directory /, no Pdeathsig; it outlives the caller (then init, or a
// subreaper, is its parent). Nothing reaps it while the caller runs but
// its Stop (process.ID.Stop reaps a child). It returns the helper's identity, to stop it
// later (process.ID.Stop). If the helper reports an error (*ReportedError),
// exits first (ErrNoReport), does not report within o.ReadyTimeout
// (ErrNotReady) or ctx ends, Start stops it and returns the error with the
// identity it had.
func Start(ctx context.Context, o Options) (process.ID, error) {
	if o.Role == "" {
		return process.ID{}, errors.New("start helper: no role")
	}
	if err := ctx.Err(); err != nil {
		return process.ID{}, err
	}
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return process.ID{}, fmt.Errorf("find the labctl binary: %w", err)
		}
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 10 * time.Second
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Second
	}
	own, err := environ(o.Role, o.Config, !o.NoReport, o.Namespace)
	if err != nil {
		return process.ID{}, err
	}
	// The role's variables first: a name given twice is read from its
	// first entry.
	env := append(own, o.Env...)
	args := o.Args
	if len(args) == 0 {
		args = []string{o.Role}
	}

	null, err := os.Open(os.DevNull)
	if err != nil {
		return process.ID{}, err
	}
	defer null.Close()
	out := null
	if o.Log != nil {
		out = o.Log
	}
	files := []uintptr{null.Fd(), out.Fd(), out.Fd()}
	var r, w *os.File
	if !o.NoReport {
		if r, w, err = os.Pipe(); err != nil {
			return process.ID{}, err
		}
		defer r.Close()
		files = append(files, w.Fd())
	}
	attr := &syscall.ProcAttr{
		Dir:   "/", // pin no directory of the caller
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:     true, // out of the caller's session: Ctrl-C and logout leave it alone
			Cloneflags: o.Cloneflags,
		},
	}
	var pid int
	err = onForkingThread(o.Namespace, o.Cgroups, o.Prepare, func() error {
		var err error
		pid, err = syscall.ForkExec(exe, args, attr)
		return err
	})
	if w != nil {
		w.Close() // the helper holds the only write end now
	}
	if err != nil {
		return process.ID{}, fmt.Errorf("start %s as helper %q: %w", exe, o.Role, err)
	}
	id, err := process.Of(pid) // its PID cannot be reused yet: it is our unreaped child
	if err != nil {
		_ = unix.Kill(pid, unix.SIGKILL) // our child, not yet reaped: safe
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		return process.ID{}, fmt.Errorf("helper %d: %w", pid, err)
	}
	if o.NoReport {
		return id, nil
	}
	if err := AwaitReady(ctx, r, o.ReadyTimeout); err != nil {
		_ = id.Stop(o.StopGrace)
		return id, err
	}
	return id, nil
}

// onForkingThread runs fork on a thread in the network namespace at ns
// (the caller's if empty) and, with cgroups or prepare, on a throwaway
// thread that joined them and ran prepare first, so that the child is born
// where it belongs.
func onForkingThread(ns string, dirs []string, prepare func() error, fork func() error) error {
	if len(dirs) == 0 && prepare == nil {
		if ns == "" {
			return fork()
		}
		return netns.Do(ns, fork)
	}
	prepared := func() error {
		if err := cgroups.JoinThread(dirs); err != nil {
			return err
		}
		if prepare != nil {
			if err := prepare(); err != nil {
				return err
			}
		}
		return fork()
	}
	if ns != "" {
		return netns.DoThrowaway(ns, prepared)
	}
	var err error
	netns.OnThrowawayThread(func() { err = prepared() })
	return err
}

// AwaitReady reads a helper's one report from r, the read end of the pipe
// that is its file descriptor 3: nil for ready, *ReportedError for the
// error it reported, ErrNoReport when the pipe closed without a report,
// ErrNotReady after timeout, ctx's error when ctx ends first. Every write
// end of the pipe must be closed in the caller, or it waits for the
// timeout.
func AwaitReady(ctx context.Context, r *os.File, timeout time.Duration) error {
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(r, maxReport))
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w within %v", ErrNotReady, timeout)
	case err != nil:
		return fmt.Errorf("read the helper's report: %w", err)
	}
	switch msg := string(b); {
	case msg == readyOK:
		return nil
	case msg == "":
		return ErrNoReport
	case strings.HasPrefix(msg, readyError):
		return &ReportedError{Msg: strings.TrimPrefix(msg, readyError)}
	default:
		return fmt.Errorf("the helper reported %q, which is neither %q nor an error", msg, readyOK)
	}
}

// Environ returns the environment entries that make the labctl binary play
// role with cfg and report on file descriptor 3, for a parent that forks
// the helper itself (a pod's supervisor its containers' init) and reads the
// report with AwaitReady.
func Environ(role string, cfg any) ([]string, error) {
	return environ(role, cfg, true, "")
}

// Command returns a command that runs exe as role with cfg, for a helper
// that becomes another program (the container side of `labctl exec`): it
// gets no ready pipe and no namespace watch, and its streams and exit code
// are the caller's to connect. argv is its argv; default [role].
func Command(exe, role string, cfg any, argv ...string) (*exec.Cmd, error) {
	env, err := environ(role, cfg, false, "")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	if len(argv) == 0 {
		argv = []string{role}
	}
	cmd.Args = argv
	cmd.Env = env
	return cmd, nil
}

func environ(role string, cfg any, ready bool, netns string) ([]string, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("helper %q: configuration: %w", role, err)
	}
	env := []string{envRole + "=" + role, envConfig + "=" + string(b)}
	if ready {
		env = append(env, envReady+"="+strconv.Itoa(readyFD))
	}
	if netns != "" {
		env = append(env, envNetns+"="+netns)
	}
	return env, nil
}
