package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/emulator/workload"
)

// ApplyFaults breaks a lab that is up, for a break-fix exercise: each
// operation (plan/fault.go) is performed from inside its namespace, which
// must be one of the lab's and proven the lab's by its ownership record,
// like every change labctl makes. Kernel operations go through the plan
// applier; StopContainer stops a container of a running pod. Nothing is
// rolled back: a fault applied is the lab's new state until `labctl down`.
func (m Manager) ApplyFaults(ctx context.Context, name string, ops []plan.Op) error {
	if err := checkLabName(name); err != nil {
		return fmt.Errorf("apply faults: %w", err)
	}
	unlock, err := m.lock(name)
	if err != nil {
		return fmt.Errorf("apply faults to %q: %w", name, err)
	}
	defer unlock()
	rec, err := m.Load(name)
	if err != nil {
		return fmt.Errorf("apply faults: %w", err)
	}
	if rec.Phase != PhaseUp {
		return fmt.Errorf("apply faults to %q: the lab is not up (an earlier up was interrupted): %w", name, ErrIncomplete)
	}
	ours := map[string]bool{}
	for _, ns := range rec.Namespaces {
		ours[ns.Name] = true
	}
	var units []plan.Unit
	var stops []plan.StopContainer
	for _, op := range ops {
		where := op.Where()
		if !ours[where] {
			return fmt.Errorf("apply faults to %q: %s: namespace %q is not the lab's: %w", name, op.Describe(), where, ErrNotFound)
		}
		if s, ok := op.(plan.StopContainer); ok {
			stops = append(stops, s)
			continue
		}
		i := slices.IndexFunc(units, func(u plan.Unit) bool { return u.Namespace == where })
		if i < 0 {
			units = append(units, plan.Unit{Namespace: where})
			i = len(units) - 1
		}
		units[i].Ops = append(units[i].Ops, op)
	}
	if len(units) > 0 {
		existing := make([]string, len(units))
		for i, u := range units {
			existing[i] = u.Namespace
		}
		p := &plan.Plan{Lab: name, Stages: []plan.Stage{{Name: "faults", Units: units}}}
		if _, err := kernel.Apply(ctx, p, kernel.Options{Owner: m.Ownership(), LabID: rec.ID, Existing: existing}); err != nil {
			return fmt.Errorf("apply faults to %q: %w", name, err)
		}
	}
	for _, s := range stops {
		if err := m.stopContainer(rec, s.Pod, s.Container); err != nil {
			return fmt.Errorf("apply faults to %q: %w", name, err)
		}
	}
	return nil
}

// ErrNotRunning says a container has no process to stop.
var ErrNotRunning = workload.ErrNotRunning

// StopContainer stops one container of a running pod (SIGTERM, SIGKILL
// after the grace period), as `ctr task kill` would; the pod's restart
// policy decides whether it starts again.
func (m Manager) StopContainer(name, pod, container string) error {
	if err := checkLabName(name); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	rec, err := m.Load(name)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return m.stopContainer(rec, pod, container)
}

// stopContainer signals the container's process as the pod's supervisor
// reports it, only once it is proven to live in the pod's namespace: a
// status file can be stale or forged.
func (m Manager) stopContainer(rec *Record, pod, container string) error {
	what := fmt.Sprintf("stop container %q of %s %q", container, supervisedKind(rec, pod), pod)
	if _, ok := rec.Pods[pod]; !ok {
		return fmt.Errorf("%s: the pod runs no containers: %w", what, ErrNotFound)
	}
	st, err := workload.ReadStatus(m.PodStateDir(rec.Name, pod))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	i := slices.IndexFunc(st.Containers, func(c workload.ContainerStatus) bool { return c.Name == container })
	if i < 0 {
		return fmt.Errorf("%s: %w", what, errors.Join(ErrNotFound, workload.ErrNoContainer))
	}
	c := st.Containers[i]
	if c.PID == 0 {
		return fmt.Errorf("%s: it is %s: %w", what, c.State, ErrNotRunning)
	}
	h, err := netns.Open(netns.Path(plan.NamespaceName(rec.Name, pod)))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer h.Close()
	proof, err := newProvenance(rec.Name, []netns.Handle{h})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !proof.owns(c.PID) {
		return fmt.Errorf("%s: process %d is not the pod's; left alone", what, c.PID)
	}
	if err := (process.ID{PID: c.PID, StartTime: c.PIDStartTime}).Stop(workload.DefaultGracePeriod); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
