package workload

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/statedir"
)

// Container states, as Kubernetes names them, plus unknown for a pod whose
// supervisor died.
const (
	StateWaiting    = "waiting"
	StateRunning    = "running"
	StateTerminated = "terminated"
	StateUnknown    = "unknown"
)

// Reasons a container is waiting or terminated.
const (
	ReasonCreating         = "ContainerCreating"
	ReasonCompleted        = "Completed"  // exited 0
	ReasonError            = "Error"      // exited non-zero or was killed
	ReasonOOMKilled        = "OOMKilled"  // the kernel's OOM killer hit it at its memory limit
	ReasonStartError       = "StartError" // its command could not be started
	ReasonCrashLoopBackOff = "CrashLoopBackOff"
	ReasonStopped          = "Stopped" // the pod was stopped
)

// Pod phases.
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded" // every container exited 0 and none restarts
	PhaseFailed    = "Failed"    // every container ended, at least one in failure
	PhaseStopped   = "Stopped"   // StopPod stopped it
	PhaseUnknown   = "Unknown"   // the supervisor is gone without stopping the pod
)

// Shim identifies a pod's supervisor process: keep it (in the lab record) to
// stop the pod later. PID and StartTime together guard against PID reuse.
type Shim struct {
	Lab       string   `json:"lab"`
	Pod       string   `json:"pod"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"`
	StateDir  string   `json:"stateDir"`
	Cgroups   []string `json:"cgroups,omitempty"` // the pod's cgroup directories
}

// Process is the supervisor's identity.
func (s Shim) Process() process.ID { return process.ID{PID: s.PID, StartTime: s.StartTime} }

// PodStatus is what the supervisor reports about a pod.
type PodStatus struct {
	Lab      string         `json:"lab"`
	Pod      string         `json:"pod"`
	Hostname string         `json:"hostname"`
	PodIP    string         `json:"podIP,omitempty"`
	Phase    string         `json:"phase"`
	Shim     Shim           `json:"shim"`
	Cgroup   cgroups.Driver `json:"cgroup"`
	// CgroupSettings are the pod cgroup's values (the containers' are in
	// ContainerStatus).
	CgroupSettings []cgroups.Setting `json:"cgroupSettings,omitempty"`
	Containers     []ContainerStatus `json:"containers"`
	UpdatedAt      time.Time         `json:"updatedAt"`
}

// ContainerStatus is one container's state.
type ContainerStatus struct {
	Name     string `json:"name"`
	Builtin  string `json:"builtin,omitempty"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message,omitempty"`
	Restarts int    `json:"restarts"`
	// PID and PIDStartTime identify the running process.
	PID          int       `json:"pid,omitempty"`
	PIDStartTime uint64    `json:"pidStartTime,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	// LogStart is where the current (or last) run's output begins in
	// the container's log, in bytes.
	LogStart int64 `json:"logStart,omitempty"`
	// Termination describes the end of the current run when State is
	// terminated; LastTermination the run before, as kubectl's "Last State".
	Termination     *Termination      `json:"termination,omitempty"`
	LastTermination *Termination      `json:"lastTermination,omitempty"`
	RestartPolicy   RestartPolicy     `json:"restartPolicy"`
	Cgroups         []string          `json:"cgroups,omitempty"`
	CgroupSettings  []cgroups.Setting `json:"cgroupSettings,omitempty"`
}

// Summary is the container's state in a few words for a status table:
// "Running", "Waiting: CrashLoopBackOff (last exit 1)",
// "Terminated: OOMKilled (exit 137)".
func (c ContainerStatus) Summary() string {
	var s string
	switch c.State {
	case StateRunning:
		s = "Running"
	case StateWaiting:
		s = "Waiting"
	case StateTerminated:
		s = "Terminated"
	default:
		s = "Unknown"
	}
	if c.Reason != "" {
		s += ": " + c.Reason
	}
	if c.State == StateTerminated && c.Termination != nil {
		s += fmt.Sprintf(" (exit %d)", c.Termination.ExitCode)
	} else if code, ok := c.LastExitCode(); ok && c.State != StateUnknown {
		s += fmt.Sprintf(" (last exit %d)", code)
	}
	return s
}

// PreviousRun is the run kubectl calls the container's last state: the
// run before the current one while it runs, the run that just ended while
// it waits to be restarted, and the run before the last one once it has
// terminated for good. Nil when there is none.
func (c ContainerStatus) PreviousRun() *Termination {
	if c.State != StateTerminated && c.Termination != nil {
		return c.Termination
	}
	return c.LastTermination
}

// Termination is how a container run ended.
type Termination struct {
	ExitCode   int       `json:"exitCode"` // 128+signal for a killed process, as Kubernetes reports it
	Signal     string    `json:"signal,omitempty"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt"`
	// LogStart and LogEnd delimit the run's output in the container's
	// log, in bytes (`logs --previous`).
	LogStart int64 `json:"logStart,omitempty"`
	LogEnd   int64 `json:"logEnd,omitempty"`
}

// LastExitCode returns the exit code of the most recent run that ended.
func (c ContainerStatus) LastExitCode() (int, bool) {
	if c.Termination != nil {
		return c.Termination.ExitCode, true
	}
	if c.LastTermination != nil {
		return c.LastTermination.ExitCode, true
	}
	return 0, false
}

// The files of a pod's state directory. It is flat: every file costs a
// metadata write, and on a disk (rather than the tmpfs /run usually is) those
// dominate the time to start a pod. Container names are DNS labels, so
// "<name>.log" never clashes with the files starting with "_".
const (
	statusFile = "_status.json"
	podFile    = "_pod.json"
	stopFile   = "_stop"
	shimLog    = "_shim.log"
	appletDir  = "bin"
)

// LogPath is the file holding a container's stdout and stderr.
func LogPath(stateDir, container string) string {
	return filepath.Join(stateDir, logName(container))
}

// logName is a container's log in its pod's state directory.
func logName(container string) string { return container + ".log" }

// ShimLogPath is the supervisor's own log: container exits, restarts,
// failures.
func ShimLogPath(stateDir string) string { return filepath.Join(stateDir, shimLog) }

// maxStateFile bounds what is read back from a pod's state directory
// (pod.json, status.json): far more than any pod needs, far less than
// would hurt the host if something else were there.
const maxStateFile = 4 << 20

// openPodDir opens a pod's existing state directory. Everything workload
// does there goes through statedir: the directory must be root's, and no
// symbolic link in it is ever followed.
func openPodDir(stateDir string) (*statedir.Dir, error) {
	return statedir.OpenExisting(stateDir)
}

// ReadStatus returns the status the pod's supervisor last wrote. If the
// supervisor is gone without having stopped the pod, the phase is Unknown
// and containers that were running are reported unknown.
func ReadStatus(stateDir string) (PodStatus, error) {
	dir, err := openPodDir(stateDir)
	if err != nil {
		return PodStatus{}, fmt.Errorf("pod status: %w", err)
	}
	defer dir.Close()
	return readStatus(dir)
}

func readStatus(dir *statedir.Dir) (PodStatus, error) {
	st, err := readStatusFile(dir)
	if err != nil {
		return st, fmt.Errorf("pod status: %w", err)
	}
	if st.Phase != PhaseStopped && !st.Shim.Process().Alive() {
		st.Phase = PhaseUnknown
		for i := range st.Containers {
			c := &st.Containers[i]
			if c.State == StateRunning || c.State == StateWaiting {
				c.State = StateUnknown
				c.Message = "the pod's supervisor is gone"
			}
		}
	}
	return st, nil
}

// readStatusFile reads status.json as the supervisor wrote it.
func readStatusFile(dir *statedir.Dir) (PodStatus, error) {
	var st PodStatus
	b, err := dir.ReadFile(statusFile, maxStateFile)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", dir.Join(statusFile), err)
	}
	return st, nil
}

// writeJSON replaces a file of the pod's directory atomically, so a reader
// never sees half a status.
func writeJSON(dir *statedir.Dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return dir.WriteFile(name, append(b, '\n'), 0o644)
}

// podConfig is pod.json: the spec plus what StartPod resolved, read by the
// supervisor, by container init (through the supervisor) and by Exec.
type podConfig struct {
	Spec        PodSpec        `json:"spec"`
	Executable  string         `json:"executable"`
	Cgroup      cgroups.Driver `json:"cgroup"`
	Backoff     Backoff        `json:"backoff"`
	AppletDir   string         `json:"appletDir"`
	ReadyWithin Duration       `json:"readyWithin"`
	// NoRootFSApplets says why containers with a root filesystem find no
	// applets at RootFSAppletDir (Executable is dynamically linked); empty
	// when they do, or when no container has a root filesystem.
	NoRootFSApplets string `json:"noRootFSApplets,omitempty"`
	// BornInCgroups: StartPod created the pod's cgroups and started the
	// supervisor in its own, so it need not move itself there.
	BornInCgroups bool `json:"bornInCgroups,omitempty"`
}

// appletsFor is the directory of labctl's applets last on container c's
// PATH: the pod's applet links, or inside a root filesystem
// RootFSAppletDir; "" when it has none.
func (pc *podConfig) appletsFor(c *Container) string {
	switch {
	case c.RootFS == "":
		return pc.AppletDir
	case pc.NoRootFSApplets == "":
		return RootFSAppletDir
	}
	return ""
}

func readPodConfig(stateDir string) (*podConfig, error) {
	dir, err := openPodDir(stateDir)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return readPodConfigIn(dir)
}

func readPodConfigIn(dir *statedir.Dir) (*podConfig, error) {
	b, err := dir.ReadFile(podFile, maxStateFile)
	if err != nil {
		return nil, err
	}
	var pc podConfig
	if err := json.Unmarshal(b, &pc); err != nil {
		return nil, fmt.Errorf("%s: %w", dir.Join(podFile), err)
	}
	return &pc, nil
}

func (pc *podConfig) container(name string) (*Container, error) {
	for i := range pc.Spec.Containers {
		if pc.Spec.Containers[i].Name == name {
			return &pc.Spec.Containers[i], nil
		}
	}
	var names []string
	for _, c := range pc.Spec.Containers {
		names = append(names, c.Name)
	}
	return nil, fmt.Errorf("pod %q has no container %q (containers: %v): %w", pc.Spec.Pod, name, names, ErrNoContainer)
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}
