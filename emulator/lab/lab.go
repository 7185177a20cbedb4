// Package lab manages whole labs: it brings a topology up through the plan
// and kernel packages, keeps a record of each lab under the state directory,
// and finds labs again for down, status and exec.
package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/helper"
	"github.com/labctl/labctl/emulator/ipipd"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/statedir"
)

// DefaultStateDir lives on tmpfs like /run/netns, so records vanish with the
// namespaces they describe when the machine reboots.
const DefaultStateDir = "/run/labctl"

// Errors the CLI maps to exit codes and messages.
var (
	ErrNotFound   = errors.New("not found")
	ErrAlreadyUp  = errors.New("already up")
	ErrConflict   = errors.New("conflict")
	ErrIncomplete = errors.New("incomplete")
	// ErrDegraded says a lab is up but broken: a namespace or a process
	// of it is missing (`up --repair` restores it).
	ErrDegraded = errors.New("degraded")
	// ErrInvalidName says a lab, node or pod name cannot be one.
	ErrInvalidName = errors.New("invalid name")
)

// Manager finds and changes labs recorded under StateDir.
type Manager struct {
	StateDir string
	// Executable is the labctl binary helper processes run from (default:
	// this program), e.g. the userspace IPIP datapath.
	Executable string
}

func (m Manager) executable() (string, error) {
	if m.Executable != "" {
		return m.Executable, nil
	}
	return os.Executable()
}

// UpTiming splits the time of one Up: building the kernel objects (and
// starting userspace datapaths), then starting the pods' containers.
type UpTiming struct {
	Network    time.Duration
	Containers time.Duration
	// Started is how many containers were started.
	Started int
}

// Datapath is the IPIP datapath of one node.
type Datapath struct {
	kernel.IPIPDatapath
	Process *Process `json:"process,omitempty"`
}

const (
	PhaseCreating = "creating"
	PhaseUp       = "up"
	// PhaseDegraded is never recorded: Health reports it for a lab whose
	// record says up but whose namespaces or processes are not all there.
	PhaseDegraded = "degraded"
)

// dir is the state directory as an absolute path: helper processes and
// records keep paths into it, whatever the working directory.
func (m Manager) dir() string {
	d := m.StateDir
	if d == "" {
		d = DefaultStateDir
	}
	if abs, err := filepath.Abs(d); err == nil {
		d = abs
	}
	return d
}

// StateDir returns the absolute state directory.
func (m Manager) Dir() string { return m.dir() }

// lock takes the lab's lock so two labctl processes never change one lab
// at once. The lock dies with the process, and its file is removed when it
// is released, so lock files never pile up (statedir.Dir.Lock says how a
// locker that raced with a removal still gets a lock of its own).
func (m Manager) lock(name string) (unlock func(), err error) {
	if err := checkLabName(name); err != nil {
		return nil, err
	}
	d, err := m.state()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if err := d.MkdirAll("locks", 0o755); err != nil {
		return nil, err
	}
	// A lock is also held, for the instant between fork and exec, by any
	// child this process forks meanwhile (it shares the open file): a
	// caller running several labs at once (the grader, tests) must not
	// take that for another labctl.
	deadline := time.Now().Add(lockPatience)
	for {
		release, err := d.Lock("locks/" + name + ".lock")
		switch {
		case err == nil:
			return release, nil
		case !errors.Is(err, statedir.ErrLocked):
			return nil, err
		case time.Now().After(deadline):
			return nil, fmt.Errorf("lab %q is being changed by another labctl process: %w", name, ErrConflict)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockPatience is how long lock waits for a lab's lock.
const lockPatience = time.Second

// Digest identifies a topology's content, so `up` can tell "already up"
// from "up with a different topology".
func Digest(t *spec.Topology) string {
	c := *t
	c.File = ""
	data, _ := json.Marshal(c)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// startDatapaths starts the userspace IPIP datapath of every node whose
// kernel lacks ipip (or that asked for it), and records every node's.
func (m Manager) startDatapaths(rec *Record, res *kernel.Result) error {
	if len(res.IPIP) == 0 {
		return nil
	}
	if rec.Datapaths == nil {
		rec.Datapaths = map[string]*Datapath{}
	}
	for _, ns := range rec.Namespaces {
		dp, ok := res.IPIP[ns.Name]
		if !ok {
			continue
		}
		d := &Datapath{IPIPDatapath: dp}
		rec.Datapaths[ns.Object] = d
		if err := m.startDatapath(rec, ns, d); err != nil {
			return err
		}
	}
	return nil
}

// startDatapath starts the userspace IPIP datapath process of one node, if
// its device is served from userspace.
func (m Manager) startDatapath(rec *Record, ns plan.Namespace, d *Datapath) error {
	if d.Kind != spec.DatapathUserspace {
		return nil
	}
	exe, err := m.executable()
	if err != nil {
		return err
	}
	state, err := m.state()
	if err != nil {
		return err
	}
	defer state.Close()
	logDir := "logs/" + rec.Name
	if err := state.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	rel := logDir + "/" + ns.Object + "-ipip.log"
	log, err := state.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	logPath := state.Join(rel)
	id, err := helper.Start(context.Background(), helper.Options{
		Role:       ipipd.HelperRole,
		Config:     ipipd.HelperConfig{Device: d.Device, Namespace: ns.Name, StatsFile: ipipd.StatsFileFor(state.Join(rel))},
		Executable: exe,
		Args:       []string{"labctl-ipip-datapath", rec.Name + "/" + ns.Object, d.Device},
		Namespace:  netns.Path(ns.Name),
		Log:        log,
	})
	if errors.Is(err, helper.ErrNoReport) || errors.Is(err, helper.ErrNotReady) {
		err = fmt.Errorf("%w (see %s)", err, logPath)
	}
	if err != nil {
		return fmt.Errorf("node %q: start userspace ipip datapath: %w", ns.Object, err)
	}
	d.Process = &Process{PID: id.PID, StartTime: id.StartTime, Log: logPath}
	return nil
}

// stopProcesses ends every helper process of a lab.
func (m Manager) stopProcesses(rec *Record) {
	for _, d := range rec.Datapaths {
		if d.Process != nil {
			_ = d.Process.Stop(2 * time.Second)
		}
	}
	_ = m.stopNodes(rec, nil)
}

// NeighbourAdvice warns when a lab may need more neighbour (ARP) entries
// than the host allows. The table is shared by all namespaces and its limit
// (net.ipv4.neigh.default.gc_thresh3) can only be raised on the host, which
// labctl never changes itself.
func NeighbourAdvice(t *spec.Topology) string {
	data, err := os.ReadFile("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
	if err != nil {
		return ""
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return ""
	}
	return neighbourAdvice(t, limit)
}

func neighbourAdvice(t *spec.Topology, limit int) string {
	need := EstimateNeighbours(t)
	if need <= limit {
		return ""
	}
	return fmt.Sprintf("lab %q may need about %d neighbour (ARP) entries, more than the host's limit of %d shared by all namespaces; "+
		"if pods cannot reach each other (\"neighbour table overflow\" in the kernel log), raise it on the host with: "+
		"sysctl -w net.ipv4.neigh.default.gc_thresh3=%d net.ipv4.neigh.default.gc_thresh2=%d",
		t.Name, need, limit, roundUp(2*need), roundUp(need))
}

// EstimateNeighbours counts the entries a lab needs when every pod talks to
// its gateway and every node to its pods and to every other node.
func EstimateNeighbours(t *spec.Topology) int {
	pods := len(t.Pods())
	nodes := len(t.Nodes)
	return 2*pods + nodes*(nodes-1)
}

func roundUp(n int) int { return (n + 1023) / 1024 * 1024 }
