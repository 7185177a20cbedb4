package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// UpOptions tune Up.
type UpOptions struct {
	Workers  int
	Progress func(done, total int)
	// Warn receives advice that does not stop the lab, such as a host
	// neighbour table too small for it.
	Warn func(string)
	// Repair restores a degraded lab (namespaces or processes missing) and
	// finishes an interrupted up, instead of refusing them.
	Repair bool
	// Reconfigure replaces a lab that is up, with this topology or
	// another, by a fresh one (containerlab's word).
	Reconfigure bool
}

// Up builds the lab. If the same topology is already up and healthy it
// changes nothing and returns the record with ErrAlreadyUp; a degraded lab
// is refused with ErrDegraded unless opt.Repair is set.
func (m Manager) Up(ctx context.Context, t *spec.Topology, opt UpOptions) (*Record, error) {
	if err := checkLabName(t.Name); err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
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
	old, err := m.Load(t.Name)
	switch {
	case err == nil:
		rec, handled, err := m.upExisting(ctx, old, t, p, digest, opt)
		if handled {
			return rec, err
		}
	case errors.Is(err, ErrNotFound):
	case errors.Is(err, ErrBadRecord) && (opt.Repair || opt.Reconfigure):
		if _, err := m.down(t.Name); err != nil {
			return nil, fmt.Errorf("up %q: remove the lab with the unusable record: %w", t.Name, err)
		}
	case errors.Is(err, ErrBadRecord):
		return nil, fmt.Errorf("up %q: %w; `labctl down %s` removes what is left of it, or `labctl up --repair` rebuilds it: %w", t.Name, err, t.Name, ErrConflict)
	default:
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	return m.upFresh(ctx, t, p, digest, opt)
}

// upExisting handles an up of a lab that has a record. handled is false
// when the old lab was removed and a fresh up should follow.
func (m Manager) upExisting(ctx context.Context, old *Record, t *spec.Topology, p *plan.Plan, digest string, opt UpOptions) (*Record, bool, error) {
	name := t.Name
	switch {
	case opt.Reconfigure:
		if _, err := m.down(name); err != nil {
			return nil, true, fmt.Errorf("up %q: remove the running lab: %w", name, err)
		}
		return nil, false, nil
	case old.Phase != PhaseUp && opt.Repair:
		// An interrupted up: what it built is unknown, so build it anew.
		if _, err := m.down(name); err != nil {
			return nil, true, fmt.Errorf("up %q: remove the interrupted lab: %w", name, err)
		}
		return nil, false, nil
	case old.Phase != PhaseUp:
		return nil, true, fmt.Errorf("up %q: an earlier up was interrupted; `labctl up --repair` finishes it, `labctl down %s` removes it: %w", name, name, ErrIncomplete)
	case old.Digest != digest:
		return nil, true, fmt.Errorf("up %q: the lab is up with a different topology (from %s); `labctl up --reconfigure` replaces it, `labctl down %s` removes it: %w", name, old.File, name, ErrConflict)
	}
	h := m.Health(old)
	if h.Phase != PhaseDegraded {
		return old, true, fmt.Errorf("up %q: %w (nothing changed)", name, ErrAlreadyUp)
	}
	if !opt.Repair {
		return old, true, fmt.Errorf("up %q: the lab is degraded: %s; `labctl up --repair` restores it: %w", name, strings.Join(h.Problems, "; "), ErrDegraded)
	}
	rec, err := m.repair(ctx, old, p, h, opt)
	return rec, true, err
}

// upFresh builds a lab that has no record.
func (m Manager) upFresh(ctx context.Context, t *spec.Topology, p *plan.Plan, digest string, opt UpOptions) (*Record, error) {
	if err := m.preflight(p); err != nil {
		return nil, fmt.Errorf("up %q: %w", t.Name, err)
	}
	// What validation cannot know: is this host able to hold the lab?
	if errs := HostCheck(t); len(errs) > 0 {
		return nil, fmt.Errorf("up %q: this host cannot run the lab (nothing was created): %w", t.Name, errors.Join(errs...))
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
	// point leaves something `labctl down` can find (and the namespaces
	// carry markers should the record be lost).
	if err := m.save(rec); err != nil {
		return nil, fmt.Errorf("up %q: save record: %w", t.Name, err)
	}
	start := time.Now()
	res, err := kernel.Apply(ctx, p, kernel.Options{
		Owner: m.Ownership(), LabID: rec.ID, Workers: opt.Workers, Progress: opt.Progress,
	})
	if err == nil {
		err = m.startDatapaths(rec, res)
		if err == nil {
			err = m.startNodes(ctx, rec, nil)
		}
		rec.Timing.Network = time.Since(start)
		if err == nil {
			start = time.Now()
			err = m.startContainers(ctx, rec, nil)
			rec.Timing.Containers = time.Since(start)
		}
		if err != nil {
			_ = m.stopContainers(rec)
			m.stopProcesses(rec)
			err = errors.Join(err, kernel.Rollback(m.Ownership(), rec.ID))
		}
	}
	if err != nil {
		// Apply already removed what it built; drop the pods' state
		// (status, logs), helper logs and the record too.
		m.removeState(t.Name)
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

// removeState removes everything the state directory holds for a lab but
// its lock and ownership records.
func (m Manager) removeState(name string) {
	if d, err := m.state(); err == nil {
		_ = d.RemoveAll("pods/" + name)
		_ = d.RemoveAll("logs/" + name)
		_ = d.Remove(recordFile(name))
		d.Close()
	}
	m.Ownership().CleanTemp()
}

// preflight refuses to start when any namespace name the plan needs is
// already taken or claimed, before anything is created. The claims made
// while creating are what really decide a race; this only explains the
// usual case early and all at once.
func (m Manager) preflight(p *plan.Plan) error {
	own := m.Ownership()
	var taken []string
	for _, ns := range p.Namespaces {
		claim, claimErr := own.Get(ns.Name)
		_, statErr := os.Lstat(netns.Path(ns.Name))
		switch {
		case claimErr == nil && claim.Lab == p.Lab:
			taken = append(taken, fmt.Sprintf("%q (left by an interrupted up or down of this lab: run `labctl down %s`)", ns.Name, p.Lab))
		case claimErr == nil:
			taken = append(taken, fmt.Sprintf("%q (lab %q)", ns.Name, claim.Lab))
		case statErr == nil:
			if id, err := netns.IdentifyPath(netns.Path(ns.Name)); err == nil && id.Marked && id.Marker.State == own.Tag {
				taken = append(taken, fmt.Sprintf("%q (lab %q, whose records are lost: run `labctl down %s`)", ns.Name, id.Marker.Lab, id.Marker.Lab))
			} else {
				taken = append(taken, fmt.Sprintf("%q (not created by labctl with this state directory)", ns.Name))
			}
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("namespace names already in use: %s; rename the lab: %w", strings.Join(taken, ", "), ErrConflict)
	}
	return nil
}
