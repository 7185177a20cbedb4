package lab

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// Removal says what Down removed.
type Removal struct {
	Lab string
	// Namespaces lists the namespaces deleted.
	Namespaces []string
	// Processes counts the processes ended: supervisors, helpers and
	// anything else that lived in the lab's namespaces.
	Processes int
	// Recovered lists namespaces found by their marker alone: their
	// records under the state directory were lost.
	Recovered []string
	// Left lists names that now belong to a namespace labctl did not
	// create for this lab; they were left alone.
	Left []string
	// Skipped lists recorded processes that could not be proven the lab's
	// and were not signalled.
	Skipped []string
}

// execGrace is how long a process found in a lab's namespace (a shell from
// `labctl exec`, say) gets between SIGTERM and SIGKILL.
const execGrace = 2 * time.Second

// Down removes a lab: its processes, namespaces and state. It works from
// the lab's record, from the ownership records when the lab record is lost
// or unusable, and from the markers inside the namespaces when both are
// lost. Nothing it cannot prove is the lab's is touched.
func (m Manager) Down(name string) (Removal, error) {
	if err := checkLabName(name); err != nil {
		return Removal{Lab: name}, fmt.Errorf("down: %w", err)
	}
	unlock, err := m.lock(name)
	if err != nil {
		return Removal{Lab: name}, fmt.Errorf("down %q: %w", name, err)
	}
	defer unlock()
	return m.down(name)
}

// down is Down with the lab's lock held.
func (m Manager) down(name string) (Removal, error) {
	res := Removal{Lab: name}
	own := m.Ownership()
	rec, recErr := m.Load(name)
	badRecord := errors.Is(recErr, ErrBadRecord)
	if recErr != nil && !errors.Is(recErr, ErrNotFound) && !badRecord {
		return res, fmt.Errorf("down %q: %w", name, recErr)
	}
	all, err := m.findNamespaces(name)
	if err != nil {
		return res, fmt.Errorf("down %q: %w", name, err)
	}
	if rec == nil && !badRecord && len(all) == 0 {
		return res, fmt.Errorf("down %q: no such lab: %w", name, ErrNotFound)
	}
	for _, o := range all {
		if _, err := own.Get(o.Name); err != nil {
			res.Recovered = append(res.Recovered, o.Name)
		}
	}

	// Pin every namespace proven the lab's: processes are matched against
	// them, and none can be swapped for another while they are open.
	var held []netns.Handle
	for _, o := range all {
		if h, st := o.Open(); st == netns.Ours {
			held = append(held, h)
		}
	}
	closeHeld := func() {
		for _, h := range held {
			h.Close()
		}
		held = nil
	}
	defer closeHeld()
	proof, err := newProvenance(name, held)
	if err != nil {
		return res, fmt.Errorf("down %q: %w", name, err)
	}

	// Processes first: a process inside a namespace keeps it alive.
	var errs []error
	if rec != nil {
		n, skipped, err := m.stopRecorded(rec, proof)
		res.Processes += n
		res.Skipped = append(res.Skipped, skipped...)
		errs = append(errs, err)
	}
	errs = append(errs, workload.SweepLab(name, ""))
	pids, err := netns.ProcessesIn(held)
	errs = append(errs, err)
	res.Processes += endProcesses(pids, proof, execGrace)
	closeHeld()

	left, err := kernel.DeleteNamespaces(own, all)
	errs = append(errs, err)
	res.Left = left
	for _, o := range all {
		if !slices.Contains(left, o.Name) {
			res.Namespaces = append(res.Namespaces, o.Name)
		}
	}
	sort.Strings(res.Namespaces)
	m.removeState(name)
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("down %q: %w", name, err)
	}
	return res, nil
}

// findNamespaces lists a lab's namespaces: every ownership record of the
// lab, and every namespace named like the lab's whose marker says it is
// the lab's in this state directory but whose record is lost.
func (m Manager) findNamespaces(name string) ([]netns.OwnedNamespace, error) {
	own := m.Ownership()
	recs, err := own.List()
	if err != nil {
		return nil, err
	}
	var all []netns.OwnedNamespace
	known := map[string]bool{}
	for _, o := range recs {
		if o.Lab == name {
			all = append(all, o)
			known[o.Name] = true
		}
	}
	found, err := own.Discover(func(ns string) bool {
		return strings.HasPrefix(ns, name+"-") && !known[ns]
	})
	if err != nil {
		return nil, err
	}
	for _, o := range found {
		if o.Lab == name {
			all = append(all, o)
		}
	}
	return all, nil
}

// DownAll removes every lab of this state directory: those with records
// (usable or not), those only ownership records know, and those only the
// markers inside namespaces still name. It returns what it removed.
func (m Manager) DownAll() ([]Removal, error) {
	names := map[string]bool{}
	recs, bad, _ := m.List()
	for _, r := range recs {
		names[r.Name] = true
	}
	for _, b := range bad {
		names[b.Name] = true
	}
	own := m.Ownership()
	owned, err := own.List()
	if err != nil {
		return nil, err
	}
	for _, o := range owned {
		names[o.Lab] = true
	}
	found, err := own.Discover(func(string) bool { return true })
	if err != nil {
		return nil, err
	}
	for _, o := range found {
		names[o.Lab] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		if spec.CheckName(n) == nil {
			sorted = append(sorted, n)
		}
	}
	sort.Strings(sorted)
	var done []Removal
	var errs []error
	for _, name := range sorted {
		r, err := m.Down(name)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			errs = append(errs, err)
		default:
			done = append(done, r)
		}
	}
	return done, errors.Join(errs...)
}

// provenance decides whether a process is the lab's: it lives in one of
// the lab's proven namespaces, or in the lab's cgroups. A recorded PID and
// start time alone prove nothing: a record can be forged or stale.
type provenance struct {
	lab        string
	namespaces map[[2]uint64]bool
}

func newProvenance(lab string, held []netns.Handle) (*provenance, error) {
	p := &provenance{lab: lab, namespaces: map[[2]uint64]bool{}}
	for _, h := range held {
		var st unix.Stat_t
		if err := unix.Fstat(int(h), &st); err != nil {
			return nil, err
		}
		p.namespaces[[2]uint64{st.Dev, st.Ino}] = true
	}
	return p, nil
}

// owns reports whether pid is the lab's (nil trusts everything: for
// processes this very run started).
func (p *provenance) owns(pid int) bool {
	if p == nil {
		return true
	}
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && p.namespaces[[2]uint64{st.Dev, st.Ino}] {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	return err == nil && strings.Contains(string(data), "/"+cgroups.Root+"/"+p.lab+"/")
}

// stopRecorded stops the lab's supervisors and helper processes as its
// record names them, each only once proven the lab's.
func (m Manager) stopRecorded(rec *Record, proof *provenance) (stopped int, skipped []string, err error) {
	var shims []workload.Shim
	for pod, s := range rec.Pods {
		switch {
		case !s.Process().Alive():
		case proof.owns(s.PID):
			shims = append(shims, s)
			stopped++
		default:
			skipped = append(skipped, fmt.Sprintf("process %d recorded as pod %q's supervisor is not the lab's; left alone", s.PID, pod))
			continue
		}
	}
	// StopPods also cleans up after supervisors that already died.
	err = workload.StopPods(shims, workload.DefaultGracePeriod)
	for node, d := range rec.Datapaths {
		if d.Process == nil || !d.Process.Alive() {
			continue
		}
		if !proof.owns(d.Process.PID) {
			skipped = append(skipped, fmt.Sprintf("process %d recorded as node %q's IPIP datapath is not the lab's; left alone", d.Process.PID, node))
			continue
		}
		if serr := d.Process.Stop(2 * time.Second); serr != nil {
			err = errors.Join(err, serr)
		}
		stopped++
	}
	var holders []*Process
	for node, p := range rec.Hostnames {
		if p == nil || !p.Alive() {
			continue
		}
		if !proof.owns(p.PID) {
			skipped = append(skipped, fmt.Sprintf("process %d recorded as node %q's hostname holder is not the lab's; left alone", p.PID, node))
			continue
		}
		holders = append(holders, p)
	}
	err = errors.Join(err, stopAll(holders))
	stopped += len(holders)
	sort.Strings(skipped)
	return stopped, skipped, err
}

// endProcesses ends processes found in the lab's namespaces (SIGTERM, then
// SIGKILL after grace), all at once, each through a pidfd checked against
// the start time read when it was found.
func endProcesses(pids []int, proof *provenance, grace time.Duration) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for _, pid := range pids {
		id, err := process.Of(pid)
		// Checked again after reading the start time: the PID may have
		// been reused since the scan.
		if err != nil || !proof.owns(pid) {
			continue
		}
		wg.Go(func() {
			if id.Stop(grace) == nil {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return n
}
