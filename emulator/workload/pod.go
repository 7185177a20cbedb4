package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/helper"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/statedir"
)

// ErrNoContainer says a pod has no container of the given name.
var ErrNoContainer = errors.New("no such container")

// Backoff is the delay before a container that exited is started again:
// Initial, doubled after every restart up to Max, and back to Initial once
// a run lasted Reset. Kubernetes uses 10s, 5m and 10m; a lab wants to see a
// crash loop in seconds, not minutes.
type Backoff struct {
	Initial Duration `json:"initial"`
	Max     Duration `json:"max"`
	Reset   Duration `json:"reset"`
}

// DefaultBackoff is 100ms doubling to 5s, reset after 10s of running.
var DefaultBackoff = Backoff{
	Initial: Duration(100 * time.Millisecond),
	Max:     Duration(5 * time.Second),
	Reset:   Duration(10 * time.Second),
}

// shimCgroup is the supervisor's leaf below its pod's cgroup: on cgroup v2
// a cgroup whose children have controllers may not hold processes itself.
// Container names are DNS labels, so they never clash with it.
const shimCgroup = "_shim"

// Options tune StartPod; the zero value is right for the labctl binary.
type Options struct {
	// Executable is the binary that runs the supervisor, container init
	// and builtins (through helper.Main); default os.Executable(). Tests
	// pass their own test binary, whose TestMain calls helper.Main.
	Executable string
	// Cgroups is cgroups.Auto (default), V2, V1 or None.
	Cgroups string
	// Backoff between restarts; default DefaultBackoff.
	Backoff Backoff
	// ReadyTimeout bounds how long StartPod waits for the containers to
	// start (builtin servers: to listen); default 10s.
	ReadyTimeout time.Duration
	// AppletDir holds the applet links (curl, ping -> Executable) that
	// containers find in their PATH; default <StateDir>/bin. One directory
	// shared by all pods, such as /run/labctl/bin, saves creating them per
	// pod.
	AppletDir string
}

// goRuntimeEnv tunes the Go runtime of supervisors and container init (and
// so builtins): one P is plenty for an event loop or a lab server, and
// saves a few hundred KB of resident memory per process. Commands executed
// by init never see it.
const goRuntimeEnv = "GOMAXPROCS=1"

// StartPod starts a pod's supervisor in the pod's network namespace and
// UTS, IPC, PID and mount namespaces of its own (the pod sandbox:
// sandbox.go; hostname = spec.Hostname), and returns once
// every container has started: commands have been executed, builtin servers
// listen. The supervisor is detached (own session) and outlives the caller;
// keep the returned Shim to stop it. On error nothing of the pod is left
// running.
func StartPod(ctx context.Context, spec PodSpec, opts Options) (Shim, error) {
	fail := func(err error) (Shim, error) { return Shim{}, fmt.Errorf("pod %q: %w", spec.Pod, err) }
	if err := spec.check(); err != nil {
		return fail(err)
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.Pod
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = RestartAlways
	}
	if spec.GracePeriod == 0 {
		spec.GracePeriod = DefaultGracePeriod
	}
	exe := opts.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return fail(fmt.Errorf("find the labctl binary: %w", err))
		}
	}
	if opts.Backoff == (Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 10 * time.Second
	}
	// The pod's directory is opened (and created) through statedir:
	// refused unless only root can change it. Its path from here on has
	// every link resolved.
	dir, err := statedir.Open(spec.StateDir)
	if err != nil {
		return fail(err)
	}
	defer dir.Close()
	spec.StateDir = dir.Path()
	if opts.AppletDir == "" {
		opts.AppletDir = filepath.Join(spec.StateDir, appletDir)
	}
	driver, err := cgroups.Detect(opts.Cgroups)
	if err != nil {
		return fail(err)
	}
	rootfs := false
	for _, c := range spec.Containers {
		if driver.Name == cgroups.None && !c.Resources.IsZero() {
			return fail(fmt.Errorf("container %q: resources need cgroups, and there are none: %s", c.Name, driver.Note))
		}
		if c.RootFS != "" {
			if fi, err := os.Stat(c.RootFS); err != nil || !fi.IsDir() {
				return fail(fmt.Errorf("container %q: root filesystem %q is not a directory", c.Name, c.RootFS))
			}
			rootfs = true
		}
	}
	cfg := podConfig{
		Spec:        spec,
		Executable:  exe,
		Cgroup:      driver,
		Backoff:     opts.Backoff,
		AppletDir:   opts.AppletDir,
		ReadyWithin: Duration(opts.ReadyTimeout),
	}
	if rootfs {
		// Only a static binary runs inside any image (see mountApplets).
		if err := applet.StaticallyLinked(exe); err != nil {
			cfg.NoRootFSApplets = err.Error()
		}
	}
	// On cgroup v1 the supervisor is born in its cgroup (see
	// cgroups.Spawner). Whatever StartPod fails on, it removes the pod's
	// cgroups.
	var shimHome []string
	started := false
	defer func() {
		if !started {
			for _, dir := range driver.PodDirs(spec.Lab, spec.Pod) {
				_ = cgroups.Remove(dir)
			}
		}
	}()
	if driver.BornIn() {
		pc, err := driver.CreatePod(spec.Lab, spec.Pod)
		if err == nil {
			shimHome, err = pc.Child(shimCgroup)
		}
		if err != nil {
			return fail(err)
		}
		cfg.BornInCgroups = true
	}
	if err := prepareStateDir(dir, &cfg); err != nil {
		return fail(err)
	}

	logf, err := dir.OpenFile(shimLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fail(err)
	}
	readyWithin := opts.ReadyTimeout + time.Second
	id, err := helper.Start(ctx, helper.Options{
		Role:       roleShim,
		Config:     spec.StateDir,
		Executable: exe,
		Args:       []string{"labctl-shim", spec.Lab + "/" + spec.Pod},
		Env:        []string{"PATH=" + defaultPath, goRuntimeEnv},
		Namespace:  spec.Namespace,
		Cloneflags: sandboxCloneflags,
		// Forked from a thread that joined the supervisor's cgroups and
		// is then thrown away (the supervisor uses no Pdeathsig).
		Cgroups:      shimHome,
		Log:          logf,
		ReadyTimeout: readyWithin,
		// A supervisor that failed stops its containers first.
		StopGrace: spec.GracePeriod + 3*time.Second,
	})
	logf.Close()
	if err != nil && id.PID == 0 { // it never started
		return fail(err)
	}
	shim := Shim{
		Lab: spec.Lab, Pod: spec.Pod, PID: id.PID, StartTime: id.StartTime,
		StateDir: spec.StateDir, Cgroups: driver.PodDirs(spec.Lab, spec.Pod),
	}
	if err != nil {
		var reported *helper.ReportedError
		switch {
		case errors.Is(err, helper.ErrNotReady):
			err = fmt.Errorf("containers did not start within %v", readyWithin)
		case errors.Is(err, helper.ErrNoReport):
			err = errors.New("the supervisor exited before its containers started")
		}
		if !errors.As(err, &reported) {
			if tail := lastLine(dir, shimLog); tail != "" {
				err = fmt.Errorf("%w (supervisor: %s)", err, tail)
			}
		}
		// Start stopped the supervisor; what is left of the pod (its
		// cgroups, a status claiming containers run) goes now.
		if serr := StopPod(shim, 0); serr != nil {
			err = errors.Join(err, serr)
		}
		return fail(err)
	}
	started = true
	return shim, nil
}

// prepareStateDir fills the pod's directory: applet links, pod.json; and
// forgets the status and stop request of an earlier run.
func prepareStateDir(dir *statedir.Dir, cfg *podConfig) error {
	applets, err := statedir.Open(cfg.AppletDir)
	if err != nil {
		return fmt.Errorf("applet links: %w", err)
	}
	defer applets.Close()
	cfg.AppletDir = applets.Path() // absolute: it goes into containers' PATH
	if err := appletLinks(applets, cfg.Executable); err != nil {
		return fmt.Errorf("applet links: %w", err)
	}
	for _, f := range []string{statusFile, stopFile} {
		if err := dir.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	// Written in place (a rename costs a metadata write): nothing reads
	// it before StartPod returns.
	f, err := dir.OpenFile(podFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// appletLinks makes curl and ping in dir point at exe. Pods may share dir
// and start at once: Symlink replaces a link by rename, never removes it
// first.
func appletLinks(dir *statedir.Dir, exe string) error {
	for _, name := range applet.Names() {
		if target, err := dir.Readlink(name); err == nil && target == exe {
			continue
		}
		if err := dir.Symlink(exe, name); err != nil {
			return err
		}
	}
	return nil
}

// lastLine is the last line of a log, read from its last few KB.
func lastLine(dir *statedir.Dir, name string) string {
	f, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(0, fi.Size()-4096)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	b = bytes.TrimSpace(b[:n])
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// StopPod stops a pod: the supervisor sends its containers SIGTERM, then
// SIGKILL after grace (0: the pod's grace period), and exits. If the
// supervisor does not exit in time, or was already gone, StopPod kills
// whatever is left in the pod's cgroups and every recorded container process
// that is still the process recorded. It then removes the pod's cgroups and
// returns an error if any process of the pod survived.
//
// A record whose PID now belongs to another process (a different start
// time) is never signalled.
func StopPod(shim Shim, grace time.Duration) error {
	var errs []error
	// The state directory only helps (grace period, stop request,
	// recorded container processes): a pod is stopped without it, but a
	// directory statedir refuses is reported.
	state, err := openPodDir(shim.StateDir)
	if err == nil {
		defer state.Close()
	} else if errors.Is(err, statedir.ErrUnsafe) {
		errs = append(errs, err)
	}
	wait := grace
	if wait <= 0 {
		wait = DefaultGracePeriod
		if state != nil {
			if pc, err := readPodConfigIn(state); err == nil && pc.Spec.GracePeriod > 0 {
				wait = pc.Spec.GracePeriod
			}
		}
	}
	switch fd, err := shim.Process().Open(); {
	case err == nil:
		if state != nil && grace > 0 {
			_ = state.WriteFile(stopFile, []byte(grace.String()), 0o644)
		}
		// The supervisor needs the grace period plus time to kill and reap.
		if err := process.Terminate(fd, wait+3*time.Second); err != nil {
			errs = append(errs, fmt.Errorf("signal supervisor %d: %w", shim.PID, err))
		}
		unix.Close(fd)
		shim.Process().Reap()
	case errors.Is(err, process.ErrGone):
		// It exited, and if it was our child it waits to be reaped.
		shim.Process().Reap()
	default:
		errs = append(errs, err)
	}

	// Whatever the supervisor left (it was killed, or died earlier).
	for _, dir := range shim.Cgroups {
		if left := cgroups.Kill(dir, 5*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("cgroup %s: processes %v survived SIGKILL", dir, left))
		}
	}
	st, stErr := PodStatus{}, fs.ErrNotExist
	if state != nil {
		st, stErr = readStatusFile(state)
	}
	if stErr == nil && st.Shim.PID == shim.PID && st.Shim.StartTime == shim.StartTime {
		for _, c := range st.Containers {
			if err := (process.ID{PID: c.PID, StartTime: c.PIDStartTime}).Signal(unix.SIGKILL); err != nil {
				errs = append(errs, fmt.Errorf("container %q: %w", c.Name, err))
			}
		}
	}
	for _, dir := range shim.Cgroups {
		if err := cgroups.RemovePod(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if left := PodProcesses(shim); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes %v survived", left))
	}
	if stErr == nil && st.Phase != PhaseStopped && st.Shim.PID == shim.PID && st.Shim.StartTime == shim.StartTime {
		markStopped(state, st)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop pod %q: %w", shim.Pod, err)
	}
	return nil
}

// markStopped records a pod whose supervisor was killed as stopped, so its
// status does not claim containers are running.
func markStopped(dir *statedir.Dir, st PodStatus) {
	now := time.Now()
	st.Phase = PhaseStopped
	for i := range st.Containers {
		c := &st.Containers[i]
		if c.State != StateTerminated {
			c.State, c.Reason = StateTerminated, ReasonStopped
			c.Termination = &Termination{ExitCode: 137, Signal: "SIGKILL", Reason: ReasonStopped, StartedAt: c.StartedAt, FinishedAt: now}
		}
		c.PID, c.PIDStartTime = 0, 0
	}
	st.UpdatedAt = now
	_ = writeJSON(dir, statusFile, st)
}

// StopPods stops several pods at once: every supervisor gets its SIGTERM
// before StopPod waits for any of them, so `labctl down` of a lab with many
// pods takes one grace period, not one per pod.
func StopPods(shims []Shim, grace time.Duration) error {
	errs := make([]error, len(shims))
	var wg sync.WaitGroup
	for i, s := range shims {
		wg.Go(func() { errs[i] = StopPod(s, grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// PodProcesses lists the processes of a pod that still exist: its
// supervisor, everything in its cgroups and the recorded container
// processes. After StopPod it is empty.
func PodProcesses(shim Shim) []int {
	var pids []int
	if shim.Process().Alive() {
		pids = append(pids, shim.PID)
	}
	for _, dir := range shim.Cgroups {
		if cgroups.Owned(dir) {
			pids = append(pids, cgroups.Procs(dir)...)
		}
	}
	if dir, err := openPodDir(shim.StateDir); err == nil {
		st, err := readStatusFile(dir)
		dir.Close()
		if err == nil && st.Shim.PID == shim.PID && st.Shim.StartTime == shim.StartTime {
			for _, c := range st.Containers {
				if (process.ID{PID: c.PID, StartTime: c.PIDStartTime}).Alive() {
					pids = append(pids, c.PID)
				}
			}
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// SweepLab kills every process in the lab's cgroups and removes them: the
// last resort for `labctl down` when the lab's record (and so its Shims) is
// lost. It knows nothing about pods without cgroups (driver none).
func SweepLab(lab string, cgroupDriver string) error {
	if !validName(lab) {
		return fmt.Errorf("sweep lab %q: not a usable name", lab)
	}
	d, err := cgroups.Detect(cgroupDriver)
	if err != nil {
		return fmt.Errorf("sweep lab %q: %w", lab, err)
	}
	var errs []error
	for _, dir := range d.LabDirs(lab) {
		if left := cgroups.Kill(dir, 5*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("cgroup %s: processes %v survived SIGKILL", dir, left))
		}
		if err := cgroups.Remove(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep lab %q: %w", lab, err)
	}
	return nil
}

// Labs lists the labs that have cgroups, for `labctl down --all`.
func Labs(cgroupDriver string) ([]string, error) {
	d, err := cgroups.Detect(cgroupDriver)
	if err != nil {
		return nil, err
	}
	return d.Labs()
}

// DefaultContainer is the container exec and logs use when none is named:
// the first, as kubectl does.
func DefaultContainer(stateDir string) (string, error) {
	pc, err := readPodConfig(stateDir)
	if err != nil {
		return "", err
	}
	return pc.Spec.Containers[0].Name, nil
}

// ContainerNames lists a pod's containers in spec order.
func ContainerNames(stateDir string) ([]string, error) {
	pc, err := readPodConfig(stateDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, c := range pc.Spec.Containers {
		names = append(names, c.Name)
	}
	return names, nil
}
