package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/grade"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/yamldoc"
)

// reportOptions are the outputs run and grade share.
type reportOptions struct {
	output    string
	junit     string
	classroom string
}

func (r *reportOptions) flags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&r.output, "output", "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().StringVar(&r.junit, "junit", "", "also write the result as JUnit XML to this file")
	cmd.Flags().StringVar(&r.classroom, "classroom", "", `also append GitHub Classroom's autograding outputs (result, points) to this file, e.g. "$GITHUB_OUTPUT"`)
}

func (r *reportOptions) check() error {
	for _, f := range report.Formats {
		if r.output == f {
			return nil
		}
	}
	return usageErrorf("unknown output format %q (use %s)", r.output, strings.Join(report.Formats, ", "))
}

// write renders the result on out and into the files asked for, and says
// how the grading ended: nil when every check passed.
func (r *reportOptions) write(out io.Writer, res *report.Result) error {
	err := report.Write(out, res, r.output, r.output == "table" && isTerminal(out))
	if r.junit != "" && err == nil {
		err = writeFile(r.junit, os.O_TRUNC, func(w io.Writer) error { return report.JUnit(w, res) })
	}
	if r.classroom != "" && err == nil {
		// $GITHUB_OUTPUT collects every step's outputs: append to it.
		err = writeFile(r.classroom, os.O_APPEND, func(w io.Writer) error { return report.WriteClassroom(w, res) })
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		return checksFailedError{failed: res.Failed, errors: res.Errors, points: res.Points, max: res.MaxPoints}
	}
	return nil
}

func writeFile(path string, mode int, write func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o644)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

type runOptions struct {
	io      Streams
	manager lab.Manager
	file    string
	lab     string
	seed    int64
	keep    bool
	dryRun  bool
	workers int
	report  reportOptions
}

func newRunCmd(g *globals) *cobra.Command {
	o := &runOptions{io: g.io}
	cmd := &cobra.Command{
		Use:   "run SCENARIO",
		Short: "Run a graded scenario: up, setup, faults, checks, down",
		Long: `Run a scenario: bring its lab up, run its setup steps, inject its faults (a
--seed picks each student's variant), grade every check, print the score with a
hint for each failure, and take the lab down again (unless --keep, which leaves
it for a student to repair and grade again with labctl grade).

--lab runs the scenario's topology under another lab name: the same addresses
in namespaces of their own, so a whole class can run one scenario at once.
--dry-run prints the lab's script, the setup steps, the faults as the commands
that do the same damage, and the checks, and changes nothing.

Exit codes: 0 every check passed, 7 some checks failed, 3 the scenario is
invalid, 1 something kept the scenario from being graded.`,
		Example: `  sudo labctl run scenarios/two-node-basics.yaml
  sudo labctl run --keep --seed 17 --lab alice scenarios/break-fix-missing-route.yaml
  labctl run --dry-run --seed 17 scenarios/break-fix-missing-route.yaml
  sudo labctl run -o tap scenarios/backend-vxlan.yaml
  sudo labctl run --junit result.xml --classroom "$GITHUB_OUTPUT" scenarios/two-node-basics.yaml`,
		Args: exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file, o.manager = args[0], g.manager()
			return runRun(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.lab, "lab", "", "lab name (default: the topology's); one per student")
	cmd.Flags().Int64Var(&o.seed, "seed", 1, "picks each fault's variant: the same seed, the same faults")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "leave the lab up afterwards (to repair it and run labctl grade)")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the lab, setup, faults and checks as a script instead of running them")
	cmd.Flags().IntVar(&o.workers, "workers", 0, "namespaces configured at once (default: 2 per CPU)")
	o.report.flags(cmd)
	return cmd
}

func runRun(ctx context.Context, o *runOptions) error {
	if err := o.report.check(); err != nil {
		return err
	}
	s, err := loadScenario(o.file)
	if err != nil {
		return err
	}
	opt := grade.Options{Lab: o.lab, Seed: o.seed, Keep: o.keep}
	if o.dryRun {
		return writeScenarioScript(o.io.Out, s, opt)
	}
	if os.Geteuid() != 0 {
		return notRootError{"run"}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	name := grade.LabName(s, opt)
	prog := newProgress(o.io.ErrOut, "up "+name)
	opt.Up = lab.UpOptions{Workers: o.workers, Progress: prog.update,
		Warn: func(msg string) { fmt.Fprintln(o.io.ErrOut, "warning: "+msg) }}
	res, err := grade.Run(ctx, o.manager, s, opt)
	prog.finish()
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintf(o.io.ErrOut, "lab %q is still up: repair it, then labctl grade --lab %s %s; labctl down %s removes it\n", name, name, o.file, name)
	}
	return o.report.write(o.io.Out, res)
}

// loadScenario reads a scenario; its problems are a scenario's, not a
// topology's, in messages.
func loadScenario(file string) (*scenario.Scenario, error) {
	s, err := scenario.Load(file)
	if err != nil {
		return nil, invalidScenarioError{err}
	}
	return s, nil
}

// writeScenarioScript prints what run would do, changing nothing: the
// lab's script, then the setup steps, the chosen faults as commands and
// the checks as comments.
func writeScenarioScript(w io.Writer, s *scenario.Scenario, opt grade.Options) error {
	t, err := grade.Topology(s, opt)
	if err != nil {
		return err
	}
	p, err := plan.Compile(t)
	if err != nil {
		return err
	}
	if err := p.WriteScript(w); err != nil {
		return err
	}
	var b strings.Builder
	if len(s.Setup) > 0 {
		b.WriteString("\n# Setup steps (labctl runs each until it exits as expected):\n")
		for _, st := range s.Setup {
			if st.Sleep > 0 {
				fmt.Fprintf(&b, "sleep %g\n", st.Sleep.Seconds())
				continue
			}
			fmt.Fprintf(&b, "%s\n", execLine(t.Name, st.Command))
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	chosen := s.Choose(opt.Seed)
	if len(chosen) > 0 {
		var notes []string
		for _, c := range chosen {
			notes = append(notes, fmt.Sprintf("%s (variant %d of %d)", c.Fault.ID, c.Variant+1, len(c.Fault.Variants)))
		}
		title := fmt.Sprintf("Faults for seed %d: %s", opt.Seed, strings.Join(notes, ", "))
		if err := plan.WriteOps(w, title, scenario.FaultOps(t.Name, chosen)); err != nil {
			return err
		}
	}
	b.Reset()
	b.WriteString("\n# Checks (labctl grades them natively; nothing here runs them):\n")
	for _, sec := range s.Sections {
		fmt.Fprintf(&b, "#  %s\n", sec.Name)
		for _, c := range sec.Checks {
			fmt.Fprintf(&b, "#    %s (%d %s): %s\n", c.ID, c.Points, plural(c.Points, "point"), grade.Expected(&c))
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// execLine writes a command step as the labctl exec command that does it.
func execLine(labName string, c *scenario.Command) string {
	var b strings.Builder
	b.WriteString("labctl exec --lab " + labName + " " + c.In.Name)
	if c.Container != "" {
		b.WriteString(" -c " + c.Container)
	}
	b.WriteString(" --")
	for _, a := range c.Argv {
		b.WriteString(" " + shellQuote(a))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r == '/' || r == ':' || r == '=' || r == ',' ||
			r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// invalidScenarioError marks a scenario's problems, so they are reported
// as a scenario's (exit code 3, like a topology's).
type invalidScenarioError struct{ err error }

func (e invalidScenarioError) Error() string { return e.err.Error() }
func (e invalidScenarioError) Unwrap() error { return e.err }

// checksFailedError says the grading ran but not every check passed.
type checksFailedError struct{ failed, errors, points, max int }

func (e checksFailedError) Error() string {
	s := fmt.Sprintf("%d %s failed", e.failed, plural(e.failed, "check"))
	if e.errors > 0 {
		s += fmt.Sprintf(", %d could not run", e.errors)
	}
	return s + fmt.Sprintf(" (%d/%d points)", e.points, e.max)
}

// isScenario tells a scenario file from a topology file by its top-level
// keys, misspelt ones too: a key that is (or nearly is) one of a
// scenario's and none of a topology's. A file that cannot be read is left
// to the topology's reading, which says why.
func isScenario(file string) bool {
	data, err := yamldoc.ReadFile(file, yamldoc.Format{Noun: "a file", MaxSize: scenario.MaxFileSize})
	if err != nil {
		return false
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	scenarioKeys := []string{"title", "description", "topology", "setup", "faults", "defaults", "sections"}
	topologyKeys := []string{"name", "network", "nodes", "links", "deployments", "services", "externals"}
	for key := range top {
		if yamldoc.Closest(key, scenarioKeys) != "" && yamldoc.Closest(key, topologyKeys) == "" {
			return true
		}
	}
	return false
}

// validateScenario is labctl validate for a scenario.
func validateScenario(w io.Writer, file string) error {
	s, err := loadScenario(file)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: scenario %q is valid: lab %q, %d %s in %d %s, %d points",
		file, s.Title, s.Topology.Name, len(s.Checks()), plural(len(s.Checks()), "check"), len(s.Sections), plural(len(s.Sections), "section"), s.MaxPoints())
	if len(s.Faults) > 0 {
		variants := 1
		for _, f := range s.Faults {
			variants *= len(f.Variants)
		}
		fmt.Fprintf(w, ", %d %s (%d %s for a seed to pick)", len(s.Faults), plural(len(s.Faults), "fault"), variants, plural(variants, "variant"))
	}
	fmt.Fprintln(w)
	return nil
}
