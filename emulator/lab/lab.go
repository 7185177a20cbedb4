// Package lab manages whole labs: it brings a topology up through the plan
// and kernel packages, keeps a record of each lab under the state directory,
// and finds labs again for down, status and exec.
package lab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
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

// Record is what labctl remembers about a lab that is up.
type Record struct {
	Name       string           `json:"name"`
	ID         string           `json:"id"`
	File       string           `json:"file,omitempty"`
	Digest     string           `json:"digest"`
	Phase      string           `json:"phase"` // "creating" until up finished
	CreatedAt  time.Time        `json:"createdAt"`
	Topology   *spec.Topology   `json:"topology"`
	Namespaces []plan.Namespace `json:"namespaces"`
	// Datapaths holds, per node with an IPIP device, what serves it and
	// the userspace datapath process when there is one.
	Datapaths map[string]*Datapath `json:"datapaths,omitempty"`
	// Pods holds the supervisor of every pod that runs containers.
	Pods map[string]workload.Shim `json:"pods,omitempty"`

	// Timing says where the time of the Up that returned this record went;
	// it is not saved.
	Timing UpTiming `json:"-"`
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
)

func (m Manager) dir() string {
	if m.StateDir == "" {
		return DefaultStateDir
	}
	return m.StateDir
}

// Ownership is where namespace ownership records live.
func (m Manager) Ownership() kernel.Ownership {
	return kernel.Ownership{Dir: filepath.Join(m.dir(), "netns")}
}

func (m Manager) recordPath(name string) string {
	return filepath.Join(m.dir(), "labs", name+".json")
}

// Load returns the record of a lab.
func (m Manager) Load(name string) (*Record, error) {
	data, err := os.ReadFile(m.recordPath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("lab %q: corrupt record %s: %w", name, m.recordPath(name), err)
	}
	return &r, nil
}

func (m Manager) save(r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := m.recordPath(r.Name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// List returns every recorded lab, by name.
func (m Manager) List() ([]*Record, error) {
	entries, err := os.ReadDir(filepath.Join(m.dir(), "labs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var recs []*Record
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		r, err := m.Load(name)
		if err != nil {
			continue
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return recs, nil
}

// lock takes the lab's lock so two labctl processes never change one lab
// at once. The lock dies with the process.
func (m Manager) lock(name string) (func(), error) {
	dir := filepath.Join(m.dir(), "locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab %q is being changed by another labctl process: %w", name, ErrConflict)
	}
	return func() { f.Close() }, nil
}

// Digest identifies a topology's content, so `up` can tell "already up"
// from "up with a different topology".
func Digest(t *spec.Topology) string {
	c := *t
	c.File = ""
	data, _ := json.Marshal(c)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// UpOptions tune Up.
type UpOptions struct {
	Workers  int
	Progress func(done, total int)
	// Warn receives advice that does not stop the lab, such as a host
	// neighbour table too small for it.
	Warn func(string)
}

// Up builds the lab. If the same topology is already up it changes nothing
// and returns the record with ErrAlreadyUp.
func (m Manager) Up(ctx context.Context, t *spec.Topology, opt UpOptions) (*Record, error) {
	p, err := plan.Compile(t)
	if err != nil {
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	unlock, err := m.lock(t.Name)
	if err != nil {
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	defer unlock()

	digest := Digest(t)
	if old, err := m.Load(t.Name); err == nil {
		switch {
		case old.Phase != PhaseUp:
			return nil, fmt.Errorf("up %q: an earlier up was interrupted; run `labctl down %s` first: %w", t.Name, t.Name, ErrIncomplete)
		case old.Digest == digest:
			return old, fmt.Errorf("up %q: %w (nothing changed)", t.Name, ErrAlreadyUp)
		default:
			return nil, fmt.Errorf("up %q: the lab is up with a different topology (from %s); run `labctl down %s` first: %w", t.Name, old.File, t.Name, ErrConflict)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	if err := m.preflight(p); err != nil {
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	if w := NeighbourAdvice(t); w != "" && opt.Warn != nil {
		opt.Warn(w)
	}

	rec := &Record{
		Name: t.Name, ID: newID(), Digest: digest, Phase: PhaseCreating,
		CreatedAt: time.Now().UTC(), Topology: t, Namespaces: p.Namespaces,
	}
	if t.File != "" {
		if abs, err := filepath.Abs(t.File); err == nil {
			rec.File = abs
		}
	}
	// The record exists before the first namespace does, so a crash at any
	// point leaves something `labctl down` can find.
	if err := m.save(rec); err != nil {
		return nil, fmt.Errorf("up %q: save record: %w", t.Name, err)
	}
	start := time.Now()
	res, err := kernel.Apply(ctx, p, kernel.Options{
		Owner: m.Ownership(), LabID: rec.ID, Workers: opt.Workers, Progress: opt.Progress,
	})
	if err == nil {
		err = m.startDatapaths(rec, res)
		rec.Timing.Network = time.Since(start)
		if err == nil {
			start = time.Now()
			err = m.startContainers(ctx, rec)
			rec.Timing.Containers = time.Since(start)
		}
		if err != nil {
			_ = m.stopContainers(rec)
			m.stopProcesses(rec)
			err = errors.Join(err, kernel.Rollback(m.Ownership(), p, rec.ID))
		}
	}
	if err != nil {
		// Apply already removed what it built; drop the pods' state
		// (status, logs) and the record too.
		_ = os.RemoveAll(filepath.Join(m.dir(), "pods", t.Name))
		_ = os.Remove(m.recordPath(t.Name))
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("up %q: interrupted; everything created was removed: %w", t.Name, err)
		}
		return nil, fmt.Errorf("up %q: %w (everything created was removed)", t.Name, err)
	}
	rec.Phase = PhaseUp
	if err := m.save(rec); err != nil {
		return nil, fmt.Errorf("up %q: save record: %w", t.Name, err)
	}
	return rec, nil
}

// preflight refuses to start when any namespace name the plan needs is
// already taken, before anything is created.
func (m Manager) preflight(p *plan.Plan) error {
	owned, _ := m.Ownership().List()
	owner := map[string]string{}
	for _, o := range owned {
		if o.State() == kernel.Ours {
			owner[o.Name] = o.Lab
		}
	}
	var taken []string
	for _, ns := range p.Namespaces {
		if _, err := os.Lstat(kernel.NamespacePath(ns.Name)); err == nil {
			if lab, ok := owner[ns.Name]; ok {
				taken = append(taken, fmt.Sprintf("%q (lab %q)", ns.Name, lab))
			} else {
				taken = append(taken, fmt.Sprintf("%q (not created by labctl)", ns.Name))
			}
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("namespace names already in use: %s; rename the lab: %w", strings.Join(taken, ", "), ErrConflict)
	}
	return nil
}

// Down removes a lab: every namespace recorded as created for it, whether
// or not its lab record survived.
func (m Manager) Down(name string) error {
	unlock, err := m.lock(name)
	if err != nil {
		return fmt.Errorf("down %q: %w", name, err)
	}
	defer unlock()
	owned, err := m.Ownership().List()
	if err != nil {
		return fmt.Errorf("down %q: %w", name, err)
	}
	var mine []kernel.OwnedNamespace
	for _, o := range owned {
		if o.Lab == name {
			mine = append(mine, o)
		}
	}
	rec, recErr := m.Load(name)
	if len(mine) == 0 && recErr != nil {
		return fmt.Errorf("down %q: no such lab: %w", name, ErrNotFound)
	}
	var stopErr error
	if rec != nil {
		// Processes first: a process inside a namespace keeps it alive.
		stopErr = m.stopContainers(rec)
		m.stopProcesses(rec)
	} else {
		stopErr = workload.SweepLab(name, "")
	}
	err = errors.Join(stopErr, kernel.DeleteNamespaces(m.Ownership(), mine))
	_ = os.RemoveAll(filepath.Join(m.dir(), "pods", name))
	if rerr := os.Remove(m.recordPath(name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("down %q: %w", name, err)
	}
	return nil
}

// DownAll removes every lab and every leftover namespace labctl recorded as
// its own, and returns the names of the labs it removed.
func (m Manager) DownAll() ([]string, error) {
	names := map[string]bool{}
	recs, _ := m.List()
	for _, r := range recs {
		names[r.Name] = true
	}
	owned, err := m.Ownership().List()
	if err != nil {
		return nil, err
	}
	for _, o := range owned {
		names[o.Lab] = true
	}
	var done []string
	var errs []error
	for name := range names {
		if err := m.Down(name); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		done = append(done, name)
	}
	sort.Strings(done)
	return done, errors.Join(errs...)
}

// startDatapaths starts the userspace IPIP datapath of every node whose
// kernel lacks ipip (or that asked for it), and records every node's.
func (m Manager) startDatapaths(rec *Record, res *kernel.Result) error {
	if len(res.IPIP) == 0 {
		return nil
	}
	rec.Datapaths = map[string]*Datapath{}
	exe, err := m.executable()
	if err != nil {
		return err
	}
	logDir := filepath.Join(m.dir(), "logs", rec.Name)
	for _, ns := range rec.Namespaces {
		dp, ok := res.IPIP[ns.Name]
		if !ok {
			continue
		}
		d := &Datapath{IPIPDatapath: dp}
		rec.Datapaths[ns.Object] = d
		if dp.Kind != spec.DatapathUserspace {
			continue
		}
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return err
		}
		log := filepath.Join(logDir, ns.Object+"-ipip.log")
		proc, err := startProcess(ns.Name, exe, []string{"internal", "ipip-datapath", "--device", dp.Device, "--netns", ns.Name}, log)
		if err != nil {
			return fmt.Errorf("node %q: start userspace ipip datapath: %w", ns.Object, err)
		}
		d.Process = &proc
	}
	return nil
}

// stopProcesses ends every helper process of a lab.
func (m Manager) stopProcesses(rec *Record) {
	for _, d := range rec.Datapaths {
		if d.Process != nil {
			_ = d.Process.Stop(2 * time.Second)
		}
	}
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
