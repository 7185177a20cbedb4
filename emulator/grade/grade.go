// Package grade runs scenarios against labs: Run brings a scenario's lab
// up, runs its setup steps, injects its faults and grades its checks;
// Grade checks a lab that is up without changing it, as often as a student
// likes. Every check runs natively from inside the lab's namespaces (probe
// and capture) or through the lab facade (commands, logs), never through a
// host binary. Checks run one after the other in file order, so a capture
// sees only its own probe's traffic and a lab graded twice reads the same.
package grade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/spec"
)

// Options tune Run and Grade.
type Options struct {
	// Lab is the lab's name (default: the topology's). One scenario runs
	// as many labs as there are names: a copy per student, with the same
	// addresses in namespaces of their own.
	Lab string
	// Seed picks each fault's variant (Run only).
	Seed int64
	// Keep leaves the lab up after Run, for a student to repair and
	// grade again.
	Keep bool
	// Up tunes bringing the lab up (Run only).
	Up lab.UpOptions
	// Checked, if set, is called after each check with its result.
	Checked func(report.Check)
}

// ErrSetup says a setup step failed: the scenario could not get its lab
// ready, which is a runtime failure, not a failed check.
var ErrSetup = errors.New("setup step failed")

// LabName is the lab a scenario runs as under opt.
func LabName(s *scenario.Scenario, opt Options) string {
	if opt.Lab != "" {
		return opt.Lab
	}
	return s.Topology.Name
}

// Topology is the scenario's topology as the lab opt names.
func Topology(s *scenario.Scenario, opt Options) (*spec.Topology, error) {
	t, err := s.Topology.Renamed(LabName(s, opt))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, lab.ErrInvalidName)
	}
	return t, nil
}

// Run brings the scenario's lab up, runs its setup steps, applies the
// faults opt.Seed picks, grades every check and, unless opt.Keep, takes the
// lab down again, also when something failed. A lab of that name that is
// already up is refused (grade it with Grade). The error is for what kept
// the scenario from being graded; failed checks are in the result.
func Run(ctx context.Context, m lab.Manager, s *scenario.Scenario, opt Options) (res *report.Result, err error) {
	t, err := Topology(s, opt)
	if err != nil {
		return nil, err
	}
	if _, err := m.Load(t.Name); err == nil {
		return nil, fmt.Errorf("run %q: lab %q is already up: grade it with `labctl grade`, or take it down first: %w", s.Title, t.Name, lab.ErrConflict)
	}
	if _, err := m.Up(ctx, t, opt.Up); err != nil {
		return nil, fmt.Errorf("run %q: %w", s.Title, err)
	}
	if !opt.Keep {
		defer func() {
			if _, derr := m.Down(t.Name); derr != nil {
				err = errors.Join(err, fmt.Errorf("run %q: %w", s.Title, derr))
			}
		}()
	}
	g := newGrader(m, s, t)
	if err := g.setup(ctx); err != nil {
		return nil, fmt.Errorf("run %q: %w", s.Title, err)
	}
	chosen := s.Choose(opt.Seed)
	if ops := scenario.FaultOps(t.Name, chosen); len(ops) > 0 {
		if err := m.ApplyFaults(ctx, t.Name, ops); err != nil {
			return nil, fmt.Errorf("run %q: %w", s.Title, err)
		}
	}
	res = report.New(s.Title, s.File, t.Name, "run", opt.Seed)
	for _, c := range chosen {
		res.Faults = append(res.Faults, c.Fault.ID+": "+c.FaultVariant().String())
	}
	return res, g.checks(ctx, res, opt.Checked)
}

// Grade checks a lab that is up against the scenario, changing nothing in
// it: no setup, no faults, no down. The lab must be up with the
// scenario's topology.
func Grade(ctx context.Context, m lab.Manager, s *scenario.Scenario, opt Options) (*report.Result, error) {
	t, err := Topology(s, opt)
	if err != nil {
		return nil, err
	}
	rec, err := m.Load(t.Name)
	if err != nil {
		return nil, fmt.Errorf("grade %q: %w", s.Title, err)
	}
	if rec.Phase != lab.PhaseUp {
		return nil, fmt.Errorf("grade %q: lab %q is not up (an earlier up was interrupted): %w", s.Title, t.Name, lab.ErrIncomplete)
	}
	if rec.Digest != lab.Digest(t) {
		return nil, fmt.Errorf("grade %q: lab %q is up with another topology (%s), not this scenario's: %w", s.Title, t.Name, rec.File, lab.ErrConflict)
	}
	res := report.New(s.Title, s.File, t.Name, "grade", opt.Seed)
	return res, newGrader(m, s, t).checks(ctx, res, opt.Checked)
}

// grader runs one scenario's steps and checks against one lab.
type grader struct {
	m   lab.Manager
	s   *scenario.Scenario
	lab string
	t   *spec.Topology
}

func newGrader(m lab.Manager, s *scenario.Scenario, t *spec.Topology) *grader {
	return &grader{m: m, s: s, lab: t.Name, t: t}
}

// setupPatience is how long a setup command may take to come to its exit
// code: containers start while the lab is already up.
const setupPatience = 5 * time.Second

func (g *grader) setup(ctx context.Context) error {
	for i, st := range g.s.Setup {
		name := st.Name
		if name == "" {
			name = fmt.Sprintf("%d", i+1)
		}
		if st.Sleep > 0 {
			select {
			case <-time.After(st.Sleep):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		deadline := time.Now().Add(setupPatience)
		for {
			o := g.command(ctx, st.Command, setupPatience)
			if o.err == nil && o.ok {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				why := o.observed
				if o.err != nil {
					why = o.err.Error()
				}
				return fmt.Errorf("setup step %s (line %d): %s: %w", name, st.Line, why, ErrSetup)
			}
			time.Sleep(retryPause)
		}
	}
	return nil
}

// checks grades every check in order into res.
func (g *grader) checks(ctx context.Context, res *report.Result, done func(report.Check)) error {
	start := time.Now()
	for _, c := range g.s.Checks() {
		rc := g.grade(ctx, c)
		if err := ctx.Err(); err != nil {
			return err
		}
		res.Add(rc)
		if done != nil {
			done(rc)
		}
	}
	res.Finish(time.Since(start))
	return nil
}

// retryPause is the wait between attempts of a check.
const retryPause = 200 * time.Millisecond

// grade runs one check until it comes to its expected outcome or its retry
// window closes.
func (g *grader) grade(ctx context.Context, c *scenario.Check) report.Check {
	rc := report.Check{
		ID: c.ID, Title: c.Title, Section: c.Section, Kind: c.Kind, Expect: string(c.Expect),
		MaxPoints: c.Points, Line: c.Line, Expected: Expected(c),
	}
	start := time.Now()
	deadline := start.Add(c.Retry)
	var o outcome
	for {
		rc.Attempts++
		o = g.attempt(ctx, c)
		if o.err == nil && o.ok == (c.Expect == scenario.ExpectPass) {
			break
		}
		if ctx.Err() != nil || time.Now().Add(retryPause).After(deadline) {
			break
		}
		select {
		case <-time.After(retryPause):
		case <-ctx.Done():
		}
	}
	rc.Duration = time.Since(start)
	switch {
	case o.err != nil:
		rc.Status, rc.Observed = report.Error, o.err.Error()
	case o.ok == (c.Expect == scenario.ExpectPass):
		rc.Status, rc.Observed, rc.Points = report.Pass, o.observed, c.Points
	default:
		rc.Status, rc.Observed = report.Fail, o.observed
	}
	if rc.Status != report.Pass {
		rc.Hint = c.Hint
	}
	return rc
}

// outcome is one attempt of a check: whether its condition held and what
// was seen, or why it could not run at all.
type outcome struct {
	ok       bool
	observed string
	err      error
}

func held(ok bool, format string, args ...any) outcome {
	return outcome{ok: ok, observed: fmt.Sprintf(format, args...)}
}

func broken(err error) outcome { return outcome{err: err} }

func (g *grader) attempt(ctx context.Context, c *scenario.Check) outcome {
	switch c.Kind {
	case scenario.KindPing:
		return g.ping(ctx, c.Ping, c.Timeout)
	case scenario.KindHTTP:
		return g.http(ctx, c.HTTP, c.Timeout)
	case scenario.KindTCP:
		return g.tcp(ctx, c.TCP, c.Timeout)
	case scenario.KindUDP:
		return g.udp(ctx, c.UDP, c.Timeout)
	case scenario.KindRoute:
		return g.route(c.Route)
	case scenario.KindCommand:
		return g.command(ctx, c.Command, c.Timeout)
	case scenario.KindPingAll:
		return g.pingAll(ctx, c.PingAll, c.Timeout)
	case scenario.KindCapture:
		return g.capture(ctx, c.Capture, c.Timeout)
	case scenario.KindLogs:
		return g.logs(ctx, c.Logs)
	}
	return broken(fmt.Errorf("unknown check kind %q", c.Kind))
}

// namespace is the path of a place's namespace, checked to be there: a
// check of a namespace the lab lost cannot run.
func (g *grader) namespace(p scenario.Place) (string, error) {
	name := plan.NamespaceName(g.lab, p.Name)
	path := netns.Path(name)
	if _, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("%s %q has no namespace %q (is lab %q up and whole? labctl status %s)", roleWord(p.Role), p.Name, name, g.lab, g.lab)
	}
	return path, nil
}

func roleWord(role string) string {
	if role == "" {
		return "pod, node or external host"
	}
	return role
}
