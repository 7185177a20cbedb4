package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/helper"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/quantity"
	"github.com/labctl/labctl/emulator/statedir"
)

// The supervisor ("shim") is one process per pod, the equivalent of the pause
// container plus containerd-shim: it holds the pod's namespaces (network,
// UTS, IPC, PID as its PID 1, mount: sandbox.go), starts the containers,
// restarts them by policy, keeps status.json current and stops everything
// on SIGTERM, or when the pod's network namespace is gone (helper's
// namespace watch). As PID 1 of the pod it takes every process of the pod
// with it when it ends, whatever ends it.
//
// Inside the pod, /proc is the pod's: PIDs the supervisor forks, waits
// for and signals are the pod's. The status records host PIDs (hostPID),
// since everything that reads it works from the host.
//
// All its state belongs to one goroutine, locked to its thread: containers
// are forked from that thread because PR_SET_PDEATHSIG fires when the
// forking thread ends, not the process, and it must end only with the
// supervisor. Exits are collected with wait4(-1) in the same loop that
// forks, so an exit can never be seen before its PID is known.

type shim struct {
	cfg         *podConfig
	stateDir    string
	dir         *statedir.Dir // stateDir, held open for the supervisor's life
	self        Shim
	cg          *cgroups.Pod // nil without cgroups
	podSettings []cgroups.Setting
	ctrs        []*ctr
	byPID       map[int]*ctr
	events      chan event
	pending     bool // StartPod still waits for the report
	dirty       bool // status.json is out of date

	stopping   bool
	killed     bool // grace period over, SIGKILL sent
	failure    string
	shimCgroup bool
	// spawner forks containers into their cgroups (cgroup v1).
	spawner *cgroups.Spawner
	sandbox sandbox
}

type ctr struct {
	spec   *Container
	policy RestartPolicy
	status ContainerStatus
	env    []string
	dirs   []string // cgroup directories
	log    *containerLog

	pid       int
	running   bool // a process exists and is not yet reaped
	gen       int  // run number, to drop events of earlier runs
	readyCh   chan string
	readyDone bool
	startErr  string
	// firstErr is why the container's first run could not start: the
	// pod's start fails with it, even if a restart came before the report.
	firstErr string
	oomBase  uint64
	backoff  time.Duration
	timer    *time.Timer
}

type eventKind int

const (
	evReady eventKind = iota
	evRestart
	evGraceOver
)

type event struct {
	kind eventKind
	c    *ctr
	gen  int
}

// runShim is the supervisor's main; its configuration is the pod's state
// directory, and ctx ends when the pod's network namespace is gone.
func runShim(ctx context.Context, stateDir string) int {
	// Checked again here: the supervisor trusts nothing it was not handed
	// through statedir either.
	dir, err := openPodDir(stateDir)
	if err != nil {
		helper.Ready(fmt.Errorf("supervisor: %w", err))
		return 1
	}
	defer dir.Close()
	cfg, err := readPodConfigIn(dir)
	if err != nil {
		helper.Ready(fmt.Errorf("supervisor: %w", err))
		return 1
	}
	s := &shim{
		cfg:      cfg,
		stateDir: stateDir,
		dir:      dir,
		byPID:    map[int]*ctr{},
		events:   make(chan event, 64),
		pending:  true,
	}
	s.self = Shim{Lab: cfg.Spec.Lab, Pod: cfg.Spec.Pod, StateDir: stateDir,
		Cgroups: cfg.Cgroup.PodDirs(cfg.Spec.Lab, cfg.Spec.Pod), PID: os.Getpid()}
	// Until setup mounts the pod's /proc, /proc is the host's: it tells
	// the PID the host knows the supervisor by (inside the pod it is 1).
	if link, err := os.Readlink("/proc/self"); err == nil {
		if pid, err := strconv.Atoi(link); err == nil {
			s.self.PID = pid
		}
	}
	if self, err := process.Of(s.self.PID); err == nil {
		s.self.StartTime = self.StartTime
	}
	return s.run(ctx)
}

// report tells StartPod how the start went: msg is empty or why not.
func (s *shim) report(msg string) {
	s.pending = false
	if msg == "" {
		helper.Ready(nil)
	} else {
		helper.Ready(errors.New(msg))
	}
}

func (s *shim) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s labctl-shim %s/%s: %s\n", time.Now().Format(time.RFC3339Nano),
		s.cfg.Spec.Lab, s.cfg.Spec.Pod, fmt.Sprintf(format, args...))
}

func (s *shim) run(ctx context.Context) int {
	runtime.LockOSThread() // never unlocked: see the comment at the top
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD)
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE)

	if err := s.setup(); err != nil {
		s.logf("%v", err)
		s.report(err.Error())
		s.cleanupOwnCgroups()
		return 1
	}
	for _, c := range s.ctrs {
		s.start(c)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	nsGone := ctx.Done()
	for {
		s.maybeReport()
		if s.stopping && !s.anyRunning() {
			break
		}
		s.flushStatus()
		select {
		case sig := <-sigs:
			if sig == unix.SIGCHLD {
				s.reap()
			} else {
				s.logf("got %v: stopping", sig)
				s.stop()
			}
		case ev := <-s.events:
			s.handle(ev)
		case <-tick.C:
			s.reap() // in case a SIGCHLD was merged away
		case <-nsGone:
			// A supervisor whose lab was deleted behind its back stops,
			// so no process outlives its lab.
			nsGone = nil
			s.logf("network namespace %s is gone: stopping", s.cfg.Spec.Namespace)
			s.stop()
		}
	}
	s.finish()
	if s.failure != "" {
		return 1
	}
	return 0
}

// setup sets the hostname, prepares the pod's mount namespace, creates the
// cgroups and moves the supervisor into its own.
func (s *shim) setup() error {
	spec := &s.cfg.Spec
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
	}
	sb, err := setupSandbox(s.dir, spec)
	if err != nil {
		return err
	}
	s.sandbox = sb
	for _, n := range sb.notes {
		s.logf("%s", n)
	}
	if s.cfg.NoRootFSApplets != "" {
		s.logf("containers with a root filesystem get no ping or curl of labctl's, only the image's: %s", s.cfg.NoRootFSApplets)
	}
	// Orphans of a container (a daemon that double-forked) are reparented
	// to the supervisor, not to init: they stay part of the pod.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become subreaper: %w", err)
	}
	if s.cfg.Cgroup.Name != cgroups.None {
		cg, err := s.cfg.Cgroup.CreatePod(spec.Lab, spec.Pod)
		if err != nil {
			return err
		}
		s.cg = cg
		var rs []cgroups.Resources
		for _, c := range spec.Containers {
			rs = append(rs, c.Resources)
		}
		if s.podSettings, err = cg.Limit(rs); err != nil {
			return err
		}
		home, err := cg.Child(shimCgroup)
		if err != nil {
			return err
		}
		if !s.cfg.BornInCgroups {
			if err := cg.Join(shimCgroup, os.Getpid()); err != nil {
				return err
			}
		}
		s.shimCgroup = true
		if s.cfg.Cgroup.BornIn() {
			s.spawner = cgroups.NewSpawner(home)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		policy := c.RestartPolicy
		if policy == "" {
			policy = spec.RestartPolicy
		}
		s.ctrs = append(s.ctrs, &ctr{
			spec:    c,
			policy:  policy,
			env:     spec.environ(c, s.cfg.appletsFor(c)),
			backoff: time.Duration(s.cfg.Backoff.Initial),
			status: ContainerStatus{
				Name: c.Name, Builtin: string(c.Builtin), State: StateWaiting,
				Reason: ReasonCreating, RestartPolicy: policy,
			},
		})
	}
	return nil
}

// start forks a container's init. Failures to even fork are treated like an
// init that reported an error: the container ends with StartError.
func (s *shim) start(c *ctr) {
	c.gen++
	c.startErr, c.readyDone = "", false
	c.status.PID, c.status.PIDStartTime = 0, 0
	if err := s.fork(c); err != nil {
		if c.log != nil {
			c.status.LogStart = c.log.offset() // a run that never started wrote nothing
		}
		s.logf("container %q: %v", c.spec.Name, err)
		c.startErr, c.readyDone = err.Error(), true
		if c.status.Restarts == 0 {
			c.firstErr = c.startErr
		}
		s.ended(c, Termination{ExitCode: 128, Reason: ReasonStartError, Message: err.Error(), FinishedAt: time.Now()})
		return
	}
	if c.status.Restarts > 0 {
		s.logf("container %q: restarted (%d), pid %d", c.spec.Name, c.status.Restarts, c.pid)
	}
}

func (s *shim) fork(c *ctr) error {
	spec := c.spec
	if s.cg != nil {
		dirs, settings, err := s.cg.Container(spec.Name, spec.Resources)
		if err != nil {
			return err
		}
		c.dirs, c.status.Cgroups, c.status.CgroupSettings = dirs, dirs, settings
		c.oomBase = s.cfg.Cgroup.OOMKills(dirs)
	}
	ic := initConfig{
		Lab: s.cfg.Spec.Lab, Pod: s.cfg.Spec.Pod, Name: spec.Name,
		Builtin:    spec.Builtin,
		Argv:       append(slices.Clone(spec.Command), spec.Args...),
		Env:        c.env,
		WorkingDir: spec.WorkingDir,
		RootFS:     spec.RootFS,
		Port:       spec.port(),
		PodIP:      s.cfg.Spec.PodIP,
		EtcFiles:   s.sandbox.etc,
		PodShm:     s.sandbox.shm,
	}
	if spec.RootFS != "" && s.cfg.appletsFor(spec) != "" {
		ic.AppletBinary = s.cfg.Executable
	}
	born := s.spawner != nil
	if !born {
		ic.Cgroups = c.dirs // init joins them itself
	}
	env, err := helper.Environ(roleInit, ic)
	if err != nil {
		return err
	}
	env = append(env, goRuntimeEnv)
	if c.log == nil {
		if c.log, err = openContainerLog(s.dir, spec.Name, s.logf); err != nil {
			return err
		}
	}
	out, logStart, err := c.log.startRun()
	if err != nil {
		return err
	}
	defer out.Close()
	c.status.LogStart = logStart
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	title := "labctl-init"
	if spec.Builtin != "" {
		title = "labctl-" + string(spec.Builtin)
	}
	sys := &syscall.SysProcAttr{
		Setpgid:   true, // the container's processes form a group: SIGTERM reaches all of them
		Pdeathsig: unix.SIGKILL,
	}
	if spec.RootFS != "" {
		sys.Cloneflags = unix.CLONE_NEWNS
	}
	var pid int
	forkInit := func() error {
		var err error
		pid, err = syscall.ForkExec("/proc/self/exe", []string{title, s.cfg.Spec.Lab + "/" + s.cfg.Spec.Pod + "/" + spec.Name}, &syscall.ProcAttr{
			Dir: "/",
			Env: env,
			// stdout and stderr share one pipe, so lines of the two
			// streams stay in the order they were written (logwrite.go).
			Files: []uintptr{null.Fd(), out.Fd(), out.Fd(), w.Fd()},
			Sys:   sys,
		})
		return err
	}
	if born {
		err = s.spawner.SpawnIn(c.dirs, forkInit)
	} else {
		err = forkInit()
	}
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("start init: %w", err)
	}
	c.pid, c.running = pid, true
	s.byPID[pid] = c
	// The PID cannot be reused before the loop reaps it: it is the
	// host's PID of this very process.
	if hp, err := hostPID(s.sandbox.hostProc, pid); err == nil {
		c.status.PID = hp
		if id, err := process.Of(pid); err == nil {
			c.status.PIDStartTime = id.StartTime
		}
	} else {
		s.logf("container %q: %v", spec.Name, err)
	}
	c.status.StartedAt = time.Now()
	c.status.State, c.status.Reason, c.status.Message = StateWaiting, ReasonCreating, ""
	c.readyCh = make(chan string, 1)
	go s.awaitReady(r, c, c.gen)
	return nil
}

// awaitReady reads the container's start report: ready (a builtin
// listens) or the pipe closed without a report (the command was executed)
// mean started; an error is the reason it did not start.
func (s *shim) awaitReady(r *os.File, c *ctr, gen int) {
	defer r.Close()
	within := time.Duration(s.cfg.ReadyWithin)
	var msg string
	switch err := helper.AwaitReady(context.Background(), r, within); {
	case err == nil, errors.Is(err, helper.ErrNoReport):
	case errors.Is(err, helper.ErrNotReady):
		msg = fmt.Sprintf("not started within %v", within)
	default:
		msg = err.Error()
	}
	c.readyCh <- msg
	s.events <- event{kind: evReady, c: c, gen: gen}
}

func (s *shim) handle(ev event) {
	switch ev.kind {
	case evReady:
		if ev.gen == ev.c.gen && !ev.c.readyDone {
			s.readied(ev.c, <-ev.c.readyCh)
		}
	case evRestart:
		c := ev.c
		if ev.gen != c.gen || s.stopping || c.running {
			return
		}
		c.status.Restarts++
		c.status.LastTermination = c.status.Termination
		c.status.Termination = nil
		s.start(c)
		s.writeStatus()
	case evGraceOver:
		if s.stopping && !s.killed {
			s.killed = true
			for _, c := range s.ctrs {
				if c.running {
					s.logf("container %q: still running after the grace period: SIGKILL", c.spec.Name)
					s.killContainer(c)
				}
			}
		}
	}
}

// readied applies a container's start report.
func (s *shim) readied(c *ctr, msg string) {
	c.readyDone = true
	if msg != "" {
		c.startErr = msg
		if c.status.Restarts == 0 {
			c.firstErr = msg
		}
		s.logf("container %q: %s", c.spec.Name, msg)
		if c.running {
			s.killContainer(c) // an init that timed out; one that failed exits by itself
		}
		return
	}
	if c.running {
		c.status.State, c.status.Reason = StateRunning, ""
	}
	s.writeStatus()
}

// maybeReport tells StartPod how the first start went, once every container
// has answered.
func (s *shim) maybeReport() {
	if !s.pending {
		return
	}
	var failed []string
	for _, c := range s.ctrs {
		if !c.readyDone {
			return
		}
		if c.firstErr != "" {
			failed = append(failed, fmt.Sprintf("container %q: %s", c.spec.Name, c.firstErr))
		}
	}
	msg := strings.Join(failed, "; ")
	s.pending = false
	if msg != "" {
		// A pod that cannot start is not left half running.
		s.failure = msg
		s.stopNow()
	}
	// Status first: whoever StartPod returns to may read it at once.
	s.writeStatus()
	s.flushStatus()
	s.report(msg)
}

// reap collects every exited child; PIDs that are not containers are
// orphans the supervisor adopted as subreaper.
func (s *shim) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		c := s.byPID[pid]
		if c == nil {
			continue
		}
		delete(s.byPID, pid)
		s.exited(c, ws)
	}
}

func (s *shim) exited(c *ctr, ws unix.WaitStatus) {
	c.running = false
	if !c.readyDone {
		// The report is complete: the write end closed when the process
		// exited (or executed its command).
		s.readied(c, <-c.readyCh)
	}
	// The container is its main process: what it leaves behind goes too,
	// as when a Kubernetes container's PID namespace ends.
	s.killLeftovers(c)
	t := Termination{StartedAt: c.status.StartedAt, FinishedAt: time.Now()}
	if c.log != nil {
		c.log.drain(500 * time.Millisecond) // the run's last words are in the log
	}
	switch {
	case ws.Signaled():
		t.ExitCode = 128 + int(ws.Signal())
		t.Signal = unix.SignalName(ws.Signal())
	default:
		t.ExitCode = ws.ExitStatus()
	}
	switch {
	case c.startErr != "":
		t.ExitCode, t.Reason, t.Message = 128, ReasonStartError, c.startErr
	case s.cg != nil && s.cfg.Cgroup.OOMKills(c.dirs) > c.oomBase:
		t.Reason = ReasonOOMKilled
		if c.spec.Resources.MemoryLimit > 0 {
			t.Message = "memory limit " + quantity.FormatMemory(c.spec.Resources.MemoryLimit) + " reached"
		}
	case t.ExitCode == 0:
		t.Reason = ReasonCompleted
	default:
		t.Reason = ReasonError
	}
	s.logf("container %q: exited: %s (exit code %d%s)", c.spec.Name, t.Reason, t.ExitCode, sigSuffix(t.Signal))
	s.ended(c, t)
}

func sigSuffix(sig string) string {
	if sig == "" {
		return ""
	}
	return ", " + sig
}

// ended applies the restart policy to a container whose run is over.
func (s *shim) ended(c *ctr, t Termination) {
	c.status.PID, c.status.PIDStartTime = 0, 0
	t.LogStart, t.LogEnd = c.status.LogStart, c.status.LogStart
	if c.log != nil {
		t.LogEnd = c.log.offset()
	}
	restart := false
	if !s.stopping {
		switch c.policy {
		case RestartAlways:
			restart = true
		case RestartOnFailure:
			restart = t.ExitCode != 0
		}
	}
	if !restart {
		c.status.State, c.status.Reason, c.status.Message = StateTerminated, t.Reason, t.Message
		c.status.Termination = &t
		s.writeStatus()
		return
	}
	if !t.StartedAt.IsZero() && t.FinishedAt.Sub(t.StartedAt) >= time.Duration(s.cfg.Backoff.Reset) {
		c.backoff = time.Duration(s.cfg.Backoff.Initial)
	}
	delay := c.backoff
	c.backoff = min(2*c.backoff, time.Duration(s.cfg.Backoff.Max))
	c.status.State, c.status.Reason = StateWaiting, ReasonCrashLoopBackOff
	c.status.Message = fmt.Sprintf("back-off %v restarting container", delay)
	c.status.Termination = &t
	gen := c.gen
	c.timer = time.AfterFunc(delay, func() { s.events <- event{kind: evRestart, c: c, gen: gen} })
	s.writeStatus()
}

// stop begins the graceful shutdown: SIGTERM to every container's process
// group, SIGKILL after the grace period (the stop file StopPod wrote, or the
// pod's).
func (s *shim) stop() {
	if s.stopping {
		return
	}
	grace := s.cfg.Spec.GracePeriod
	if b, err := s.dir.ReadFile(stopFile, 64); err == nil {
		if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
			grace = d
		}
	}
	s.beginStop()
	for _, c := range s.ctrs {
		if c.running {
			_ = unix.Kill(-c.pid, unix.SIGTERM)
		}
	}
	time.AfterFunc(grace, func() { s.events <- event{kind: evGraceOver} })
	s.writeStatus()
}

// stopNow is stop without a grace period, for a pod that failed to start.
func (s *shim) stopNow() {
	if s.stopping {
		return
	}
	s.beginStop()
	s.killed = true
	for _, c := range s.ctrs {
		if c.running {
			s.killContainer(c)
		}
	}
}

func (s *shim) beginStop() {
	s.stopping = true
	for _, c := range s.ctrs {
		if c.timer != nil {
			c.timer.Stop()
		}
		if !c.running && c.status.State == StateWaiting {
			c.status.State, c.status.Reason, c.status.Message = StateTerminated, ReasonStopped, ""
		}
	}
}

// killContainer SIGKILLs a container: its process group, and its cgroup,
// which also holds processes that left the group.
func (s *shim) killContainer(c *ctr) {
	_ = unix.Kill(-c.pid, unix.SIGKILL)
	_ = unix.Kill(c.pid, unix.SIGKILL)
	if len(c.dirs) > 0 {
		cgroups.Kill(c.dirs[len(c.dirs)-1], 0)
	}
}

// killLeftovers removes what a container's main process left running.
// Without cgroups only its process group can be found; the group keeps its
// number while it has members, so the signal cannot hit a stranger.
func (s *shim) killLeftovers(c *ctr) {
	if len(c.dirs) == 0 {
		_ = unix.Kill(-c.pid, unix.SIGKILL)
	} else {
		if left := cgroups.Kill(c.dirs[len(c.dirs)-1], time.Second); len(left) > 0 {
			s.logf("container %q: processes %v survived SIGKILL", c.spec.Name, left)
		}
	}
}

func (s *shim) anyRunning() bool {
	for _, c := range s.ctrs {
		if c.running {
			return true
		}
	}
	return false
}

// finish records the pod as stopped and removes the container cgroups; the
// supervisor's own and the pod's are StopPod's to remove, since the
// supervisor is still inside.
func (s *shim) finish() {
	s.reap()
	if s.cg != nil {
		for _, c := range s.ctrs {
			for _, d := range c.dirs {
				_ = cgroups.Remove(d)
			}
		}
	}
	for _, c := range s.ctrs {
		if c.log != nil {
			c.log.close(500 * time.Millisecond)
		}
	}
	st := s.podStatus()
	st.Phase = PhaseStopped
	if err := writeJSON(s.dir, statusFile, st); err != nil {
		s.logf("write status: %v", err)
	}
	s.logf("stopped")
}

// cleanupOwnCgroups undoes setup when it failed halfway.
func (s *shim) cleanupOwnCgroups() {
	if s.cg == nil || s.shimCgroup {
		return
	}
	for _, d := range s.cg.Dirs() {
		_ = cgroups.Remove(d)
	}
}

func (s *shim) podStatus() PodStatus {
	st := PodStatus{
		Lab: s.cfg.Spec.Lab, Pod: s.cfg.Spec.Pod, Hostname: s.cfg.Spec.Hostname, PodIP: s.cfg.Spec.PodIP,
		Shim: s.self, Cgroup: s.cfg.Cgroup, CgroupSettings: s.podSettings, UpdatedAt: time.Now(),
	}
	allDone, allOK := true, true
	for _, c := range s.ctrs {
		st.Containers = append(st.Containers, c.status)
		if c.status.State != StateTerminated {
			allDone = false
		} else if c.status.Termination != nil && c.status.Termination.ExitCode != 0 {
			allOK = false
		}
	}
	switch {
	case s.stopping:
		st.Phase = PhaseRunning // until finish() says Stopped
	case s.pending:
		st.Phase = PhasePending
	case allDone && allOK:
		st.Phase = PhaseSucceeded
	case allDone:
		st.Phase = PhaseFailed
	default:
		st.Phase = PhaseRunning
	}
	return st
}

// writeStatus marks the status for writing; the loop writes it once per
// batch of events, and not at all while StartPod still waits (status.json
// does not exist before StartPod returns).
func (s *shim) writeStatus() { s.dirty = true }

func (s *shim) flushStatus() {
	if !s.dirty || s.pending {
		return
	}
	s.dirty = false
	if err := writeJSON(s.dir, statusFile, s.podStatus()); err != nil {
		s.logf("write status: %v", err)
	}
}
