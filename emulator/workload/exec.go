package workload

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/process"
)

// ExecOptions name a container and the command to run in it.
type ExecOptions struct {
	StateDir  string   `json:"stateDir"`  // the pod's state directory
	Container string   `json:"container"` // default: the pod's first container
	Argv      []string `json:"argv"`      // default: /bin/sh
	Env       []string `json:"env"`       // added to the container's environment, e.g. TERM
}

// Exec replaces the calling process with a command inside a running
// container, as `kubectl exec` does: in the container's network and UTS
// namespaces, its cgroups (its limits apply), its root filesystem if it has
// one, its working directory and its environment. Stdin, stdout, the
// terminal and the exit code are the command's own. It returns only on
// failure.
//
// Namespaces are entered with setns on a pidfd, which names the container
// process exactly (no PID reuse race). A root filesystem is entered with
// chroot to /proc/PID/root: setns into a mount namespace is refused to a
// multi-threaded process, and every Go process is one. The command then
// sees the container's files and mounts, though not its mount table.
func Exec(opts ExecOptions) error {
	dir, err := openPodDir(opts.StateDir)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	// Close-on-exec, like every descriptor statedir opens; closed early
	// all the same, as nothing below needs it.
	pc, err := readPodConfigIn(dir)
	if err != nil {
		dir.Close()
		return fmt.Errorf("exec: %w", err)
	}
	st, stErr := readStatus(dir)
	dir.Close()
	name := opts.Container
	if name == "" {
		name = pc.Spec.Containers[0].Name
	}
	fail := func(err error) error { return fmt.Errorf("exec in pod %q container %q: %w", pc.Spec.Pod, name, err) }
	c, err := pc.container(name)
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if stErr != nil {
		return fail(stErr)
	}
	var cs *ContainerStatus
	for i := range st.Containers {
		if st.Containers[i].Name == name {
			cs = &st.Containers[i]
		}
	}
	if cs == nil || cs.State != StateRunning || cs.PID == 0 {
		state := "unknown"
		if cs != nil {
			state = cs.State
			if cs.Reason != "" {
				state += " (" + cs.Reason + ")"
			}
		}
		return fail(fmt.Errorf("container is not running: %s: %w", state, ErrNotRunning))
	}
	ctrProc := process.ID{PID: cs.PID, StartTime: cs.PIDStartTime}
	pidfd, err := ctrProc.Open()
	if err != nil {
		if errors.Is(err, process.ErrGone) {
			return fail(fmt.Errorf("container process %d is gone: %w", cs.PID, ErrNotRunning))
		}
		return fail(err)
	}
	// pidfd is close-on-exec: the command does not inherit it.
	argv := opts.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh"}
	}
	env := mergeEnv(pc.Spec.environ(c, pc.AppletDir), opts.Env)
	if err := cgroups.Move(os.Getpid(), cs.Cgroups...); err != nil {
		unix.Close(pidfd)
		return fail(err)
	}
	// The new program inherits the namespaces of the thread that calls
	// execve: pin it, and never unlock it (it is replaced or, on error, the
	// process is about to exit anyway).
	runtime.LockOSThread()
	if err := enterNamespaces(pidfd, ctrProc); err != nil {
		return fail(err)
	}
	if c.RootFS != "" {
		if err := unix.Chroot("/proc/" + strconv.Itoa(cs.PID) + "/root"); err != nil {
			return fail(fmt.Errorf("enter root filesystem: %w", err))
		}
	}
	wd := c.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return fail(fmt.Errorf("working directory: %w", err))
	}
	// Looked up after chroot: symlinks inside the root resolve as the
	// container sees them.
	path, err := lookPath(argv[0], envValue(env, "PATH"), "/")
	if err != nil {
		return fail(err)
	}
	err = syscall.Exec(path, argv, env)
	return fail(fmt.Errorf("exec %s: %w", argv[0], err))
}

// enterNamespaces moves the calling thread into the network and UTS
// namespaces of the process behind pidfd. Kernels before 5.8 cannot setns
// through a pidfd; there the /proc/PID/ns files are opened and the process
// is checked to still be the same one afterwards, so the files opened were
// its namespaces.
func enterNamespaces(pidfd int, ctr process.ID) error {
	err := unix.Setns(pidfd, unix.CLONE_NEWNET|unix.CLONE_NEWUTS)
	if !errors.Is(err, unix.EINVAL) {
		if err != nil {
			return fmt.Errorf("enter namespaces: %w", err)
		}
		return nil
	}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, ns := range []string{"net", "uts"} {
		fd, err := unix.Open("/proc/"+strconv.Itoa(ctr.PID)+"/ns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s namespace: %w", ns, err)
		}
		fds = append(fds, fd)
	}
	if !ctr.Alive() {
		return fmt.Errorf("container process %d is gone: %w", ctr.PID, ErrNotRunning)
	}
	for i, nstype := range []int{unix.CLONE_NEWNET, unix.CLONE_NEWUTS} {
		if err := unix.Setns(fds[i], nstype); err != nil {
			return fmt.Errorf("enter namespaces: %w", err)
		}
	}
	return nil
}

// mergeEnv returns base with extra's variables replacing or added to it.
// Replacing matters: with a name twice, programs (Go's among them) read the
// first.
func mergeEnv(base, extra []string) []string {
	env := append([]string(nil), base...)
	for _, kv := range extra {
		name, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if i >= 0 {
			env[i] = kv
		} else {
			env = append(env, kv)
		}
	}
	return env
}

// ErrNotRunning says a container has no running process to exec into.
var ErrNotRunning = errors.New("not running")
