package workload

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/process"
)

// How a command joins a running pod, as `kubectl exec` (runc exec,
// nsenter) does: it must be born in the pod's PID namespace, since setns
// into a PID namespace moves only the children of the caller, and it must
// be in the container's mount namespace, which setns allows only to a
// thread that shares its file-system attributes (root, working directory)
// with no other thread, while all threads of a Go program share them. So
// the command is forked from a throwaway thread (netns.OnThrowawayThread)
// that first gives itself a private copy of those attributes
// (unshare(CLONE_FS), allowed in a multi-threaded process), joins the
// container's cgroups (the child is born in them), then enters all of the
// container's namespaces at once through a pidfd, which names the process
// exactly: network, UTS, IPC, PID and mount. Its root and working
// directory are now the container's, so the program is looked up where the
// container sees its files. The child inherits everything; the thread is
// then thrown away. The caller stays the command's parent (it waits for
// it and passes its exit code on), like nsenter --fork, so `labctl exec`
// no longer replaces itself.

// ExecOptions name a container, or the pod itself, and the command to run
// in it.
type ExecOptions struct {
	StateDir  string `json:"stateDir"`  // the pod's state directory
	Container string `json:"container"` // default: the pod's first container
	// Sandbox runs the command in the pod's own namespaces, those of its
	// supervisor (the pause container): the host's files with the pod's
	// /etc/hosts, /etc/resolv.conf, /proc and /dev/shm, no container's
	// cgroups, and the caller's environment plus Env. Container must be
	// empty.
	Sandbox bool     `json:"sandbox,omitempty"`
	Argv    []string `json:"argv"` // default: /bin/sh
	Env     []string `json:"env"`  // added to the container's environment, e.g. TERM
}

// Cmd is a command prepared to run in a pod: Command fills in its
// arguments, environment and working directory; set its streams, then
// Start or Run it (not the embedded exec.Cmd's Start: only Cmd.Start
// joins the pod). Wait, Process and ProcessState are exec.Cmd's.
type Cmd struct {
	*exec.Cmd
	join Join
	// notFound is added to ErrCommandNotFound's message: why labctl's
	// applet of that name is not there either.
	notFound string
}

// Join says where StartIn starts a command.
type Join struct {
	// Process is the process whose namespaces of the kinds Namespaces
	// (CLONE_NEW* flags) the command joins, through a pidfd checked
	// against its start time.
	Process    process.ID
	Namespaces int
	// Netns is a network namespace joined by its path (/run/netns/NAME)
	// before Process's namespaces, e.g. a node's, whose UTS namespace is
	// held by another process.
	Netns string
	// Cgroups are the cgroup directories the command is born in; on
	// cgroup v2 (CgroupV2) the one directory of the unified hierarchy.
	Cgroups  []string
	CgroupV2 bool

	// lookPath, when set, is the PATH in which the command's Args[0] is
	// looked up after joining, as the joined mount namespace sees files.
	lookPath string
}

// Command prepares argv to run in a running container of the pod at
// opts.StateDir, as `kubectl exec` does: in all of its namespaces (those of
// the pod, and its own mount namespace if it has a root filesystem), its
// cgroups (its limits apply), its working directory and its environment.
// With opts.Sandbox it runs in the pod's namespaces instead. Errors:
// ErrNoContainer, ErrNotRunning, and ErrCommandNotFound from Start.
func Command(opts ExecOptions) (*Cmd, error) {
	dir, err := openPodDir(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	pc, err := readPodConfigIn(dir)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("exec: %w", err)
	}
	st, stErr := readStatus(dir)
	dir.Close()
	argv := opts.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh"}
	}
	if opts.Sandbox {
		if opts.Container != "" {
			return nil, fmt.Errorf("exec in pod %q: a container (%q) and the sandbox at once", pc.Spec.Pod, opts.Container)
		}
		fail := func(err error) error { return fmt.Errorf("exec in pod %q: %w", pc.Spec.Pod, err) }
		switch {
		case stErr != nil:
			return nil, fail(stErr)
		case st.Phase == PhaseStopped || !st.Shim.Process().Alive():
			return nil, fail(fmt.Errorf("the pod's supervisor is not running: %w", ErrNotRunning))
		}
		cmd := &exec.Cmd{Args: argv, Dir: "/", Env: append(os.Environ(), opts.Env...)}
		// The host's programs, then labctl's ping and curl where the host
		// has none, as in the pod's containers.
		path := envValue(cmd.Env, "PATH")
		if path == "" {
			path = defaultPath
		}
		if pc.AppletDir != "" {
			path += ":" + pc.AppletDir
		}
		return &Cmd{Cmd: cmd, join: Join{
			Process:    st.Shim.Process(),
			Namespaces: podNamespaces,
			lookPath:   path,
		}}, nil
	}
	name := opts.Container
	if name == "" {
		name = pc.Spec.Containers[0].Name
	}
	fail := func(err error) error { return fmt.Errorf("exec in pod %q container %q: %w", pc.Spec.Pod, name, err) }
	c, err := pc.container(name)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if stErr != nil {
		return nil, fail(stErr)
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
		return nil, fail(fmt.Errorf("container is not running: %s: %w", state, ErrNotRunning))
	}
	wd := c.WorkingDir
	if wd == "" {
		wd = "/"
	}
	env := mergeEnv(pc.Spec.environ(c, pc.appletsFor(c)), opts.Env)
	cmd := &exec.Cmd{Args: argv, Dir: wd, Env: env}
	var notFound string
	if c.RootFS != "" && pc.NoRootFSApplets != "" && slices.Contains(applet.Names(), argv[0]) {
		notFound = "labctl's own " + argv[0] + " cannot serve in a root filesystem: " + pc.NoRootFSApplets
	}
	return &Cmd{Cmd: cmd, notFound: notFound, join: Join{
		Process:    process.ID{PID: cs.PID, StartTime: cs.PIDStartTime},
		Namespaces: podNamespaces,
		Cgroups:    cs.Cgroups,
		CgroupV2:   pc.Cgroup.Name == cgroups.V2,
		lookPath:   envValue(env, "PATH"),
	}}, nil
}

// podNamespaces are the namespaces a command in a pod joins: the pod's,
// and for a container with a root filesystem its own mount namespace.
const podNamespaces = unix.CLONE_NEWNET | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID | unix.CLONE_NEWNS

// Start starts the command in the pod (see the top of this file). A
// program that is not found is ErrCommandNotFound, a container or pod that
// stopped meanwhile ErrNotRunning.
func (c *Cmd) Start() error {
	err := StartIn(c.Cmd, c.join)
	if c.notFound != "" && errors.Is(err, ErrCommandNotFound) {
		err = fmt.Errorf("%w; %s", err, c.notFound)
	}
	return err
}

// Run starts the command and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// StartIn starts cmd, which must not have been started, where j says: it
// is forked from a throwaway thread that entered j's namespaces and
// cgroups (see the top of this file). cmd.Path must be set unless j looks
// the program up.
func StartIn(cmd *exec.Cmd, j Join) error {
	netnsFD := -1
	if j.Netns != "" {
		h, err := netns.Open(j.Netns)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", j.Netns, err)
		}
		defer h.Close()
		netnsFD = int(h)
	}
	pidfd := -1
	if j.Namespaces != 0 {
		fd, err := j.Process.Open()
		if errors.Is(err, process.ErrGone) {
			return fmt.Errorf("process %d is gone: %w", j.Process.PID, ErrNotRunning)
		}
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pidfd = fd
	}
	if j.CgroupV2 && len(j.Cgroups) > 0 {
		// On v2 a thread cannot step into a cgroup of its own: the
		// child is cloned into it (CLONE_INTO_CGROUP).
		fd, err := unix.Open(j.Cgroups[len(j.Cgroups)-1], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open cgroup: %w", err)
		}
		defer unix.Close(fd)
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	var err error
	netns.OnThrowawayThread(func() {
		if j.Namespaces&unix.CLONE_NEWNS != 0 {
			if err = unix.Unshare(unix.CLONE_FS); err != nil {
				err = fmt.Errorf("unshare file-system attributes: %w", err)
				return
			}
		}
		if !j.CgroupV2 {
			if err = cgroups.JoinThread(j.Cgroups); err != nil {
				return
			}
		}
		if netnsFD >= 0 {
			if err = unix.Setns(netnsFD, unix.CLONE_NEWNET); err != nil {
				err = fmt.Errorf("enter network namespace %s: %w", j.Netns, err)
				return
			}
		}
		if pidfd >= 0 {
			if err = enterNamespaces(pidfd, j.Process, j.Namespaces); err != nil {
				return
			}
		}
		if j.lookPath != "" || cmd.Path == "" {
			// The thread's root is the joined one now: look where the
			// command will.
			if cmd.Path, err = lookPath(cmd.Args[0], j.lookPath, "/"); err != nil {
				if !errors.Is(err, ErrCommandNotFound) {
					err = cannotRun{err}
				}
				return
			}
		}
		switch err = cmd.Start(); {
		case errors.Is(err, unix.ENOMEM) && j.Namespaces&unix.CLONE_NEWPID != 0:
			// fork into a PID namespace whose PID 1 has exited.
			err = fmt.Errorf("%w: the pod is stopping: %w", err, ErrNotRunning)
		case err != nil:
			err = cannotRun{err}
		}
	})
	return err
}

// ErrCannotRun says a command was found but could not be started (exit
// code 126, as shells report it): not executable, a bad binary.
var ErrCannotRun = errors.New("cannot run")

// cannotRun is an error that says why a command could not be started; it
// is ErrCannotRun.
type cannotRun struct{ err error }

func (e cannotRun) Error() string        { return e.err.Error() }
func (e cannotRun) Unwrap() error        { return e.err }
func (e cannotRun) Is(target error) bool { return target == ErrCannotRun }

// nsFiles names the /proc/PID/ns files of the namespace kinds, in the
// order enterNamespaces joins them.
var nsFiles = []struct {
	flag int
	name string
}{
	{unix.CLONE_NEWNET, "net"}, {unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWIPC, "ipc"},
	{unix.CLONE_NEWPID, "pid"}, {unix.CLONE_NEWNS, "mnt"},
}

// enterNamespaces moves the calling thread into the namespaces (CLONE_NEW*
// flags) of the process behind pidfd, all at once. Kernels before 5.8
// cannot setns through a pidfd; there the /proc/PID/ns files are opened
// and the process is checked to still be the same one afterwards, so the
// files opened were its namespaces.
func enterNamespaces(pidfd int, target process.ID, types int) error {
	err := unix.Setns(pidfd, types)
	if !errors.Is(err, unix.EINVAL) {
		if err != nil {
			return fmt.Errorf("enter namespaces: %w", err)
		}
		return nil
	}
	type nsFD struct{ fd, flag int }
	var fds []nsFD
	defer func() {
		for _, f := range fds {
			unix.Close(f.fd)
		}
	}()
	for _, ns := range nsFiles {
		if types&ns.flag == 0 {
			continue
		}
		fd, err := unix.Open("/proc/"+strconv.Itoa(target.PID)+"/ns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s namespace: %w", ns.name, err)
		}
		fds = append(fds, nsFD{fd, ns.flag})
	}
	if !target.Alive() {
		return fmt.Errorf("process %d is gone: %w", target.PID, ErrNotRunning)
	}
	for _, f := range fds {
		if err := unix.Setns(f.fd, f.flag); err != nil {
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

// ExitCode is the exit code a shell reports for a command that ended with
// state: its own, or 128 plus the signal that killed it.
func ExitCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}

// ErrNotRunning says a container has no running process to exec into.
var ErrNotRunning = errors.New("not running")
