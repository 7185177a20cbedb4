package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/process"
	scenarioreport "github.com/labctl/labctl/emulator/report"
	"github.com/labctl/labctl/emulator/scenario"
	"github.com/labctl/labctl/emulator/workload"
)

// scenarioResult holds the numbers of the scenario table (issue 12): one
// student's run and grade, and a class of copies at once.
type scenarioResult struct {
	file   string
	checks int
	runs   int
	run    []time.Duration // labctl run: up, checks, down
	grade  []time.Duration // labctl grade of a lab that is up

	class       int
	classUp     time.Duration // every copy's labctl run --keep, all at once
	classGrade  time.Duration // every copy's labctl grade, all at once
	classDown   time.Duration // every copy's labctl down, all at once
	passed      int           // copies whose run and grade passed every check
	pssPerCopy  int64         // the processes of one copy (supervisors, containers), PSS
	hostPerCopy int64         // MemAvailable lost per copy while the class was up
	err         error
}

// scenarios measures the scenario runner on file: runs times a run and a
// grade of one lab, then class copies brought up and graded at once.
func (b *bench) scenarios(ctx context.Context, file string, class, runs int) *scenarioResult {
	r := &scenarioResult{file: file, class: class}
	s, err := scenario.Load(file)
	if err != nil {
		r.err = err
		return r
	}
	r.checks = len(s.Checks())
	labctl := func(args ...string) (*cmdResult, error) {
		return b.command(ctx, nil, b.labctl, append([]string{"--state-dir", b.stateDir}, args...)...)
	}
	one := namePrefix(b.pid) + "sc"
	fmt.Fprintf(os.Stderr, "labbench: scenario %s: %d runs and grades\n", file, runs)
	for i := 0; i <= runs && ctx.Err() == nil; i++ {
		out, err := labctl("run", "--lab", one, file)
		if err != nil {
			r.err = fmt.Errorf("labctl run: %w", err)
			return r
		}
		if i > 0 { // the first is a warm-up
			r.run = append(r.run, out.wall)
		}
	}
	if _, err := labctl("up", "--name", one, s.TopologyFile); err != nil {
		r.err = fmt.Errorf("labctl up: %w", err)
		return r
	}
	for i := 0; i < runs && ctx.Err() == nil; i++ {
		out, err := labctl("grade", "--lab", one, file)
		if err != nil {
			r.err = fmt.Errorf("labctl grade: %w", err)
			break
		}
		r.grade = append(r.grade, out.wall)
	}
	if _, err := labctl("down", one); err != nil && r.err == nil {
		r.err = fmt.Errorf("labctl down: %w", err)
	}
	r.runs = len(r.grade)
	if r.err != nil || ctx.Err() != nil {
		return r
	}
	r.err = b.class(ctx, r, s, file, labctl)
	return r
}

// class brings r.class copies of the scenario's lab up and grades them,
// all at once, then takes them down, all at once.
func (b *bench) class(ctx context.Context, r *scenarioResult, s *scenario.Scenario, file string, labctl func(...string) (*cmdResult, error)) error {
	names := make([]string, r.class)
	for i := range names {
		names[i] = namePrefix(b.pid) + "c" + strconv.Itoa(i)
	}
	all := func(what func(i int) error) (time.Duration, []error) {
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		start := time.Now()
		for i := range names {
			wg.Go(func() { errs[i] = what(i) })
		}
		wg.Wait()
		return time.Since(start), errs
	}
	defer func() {
		var took []error
		r.classDown, took = all(func(i int) error { _, err := labctl("down", "--ignore-not-found", names[i]); return err })
		for _, err := range took {
			if err != nil {
				fmt.Fprintln(os.Stderr, "labbench: labctl down:", err)
			}
		}
	}()
	before := memAvailable()
	fmt.Fprintf(os.Stderr, "labbench: a class of %d copies of %s at once\n", r.class, file)
	passed := make([]bool, len(names))
	var errs []error
	r.classUp, errs = all(func(i int) error {
		out, err := labctl("run", "--keep", "--lab", names[i], "-o", "json", file)
		if err != nil {
			return err
		}
		var res scenarioreport.Result
		if err := json.Unmarshal(out.stdout, &res); err != nil {
			return err
		}
		passed[i] = res.OK()
		return nil
	})
	if err := firstErr(errs); err != nil {
		return fmt.Errorf("class run: %w", err)
	}
	after := memAvailable()
	var pss int64
	mgr := lab.Manager{StateDir: b.stateDir}
	for _, name := range names {
		for _, pod := range s.Topology.Pods() {
			st, err := workload.ReadStatus(mgr.PodStateDir(name, pod.Name))
			if err != nil {
				continue // a pod without containers
			}
			pids := []int{st.Shim.PID}
			for _, c := range st.Containers {
				pids = append(pids, c.PID)
			}
			for _, pid := range pids {
				if m, err := process.Memory(pid); err == nil {
					pss += m.PSS
				}
			}
		}
	}
	r.pssPerCopy = pss / int64(r.class)
	if before > 0 && after > 0 {
		r.hostPerCopy = (before - after) / int64(r.class)
	}
	r.classGrade, errs = all(func(i int) error {
		out, err := labctl("grade", "--lab", names[i], "-o", "json", file)
		if err != nil {
			return err
		}
		var res scenarioreport.Result
		if err := json.Unmarshal(out.stdout, &res); err != nil {
			return err
		}
		passed[i] = passed[i] && res.OK()
		return nil
	})
	for _, p := range passed {
		if p {
			r.passed++
		}
	}
	return firstErr(errs)
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// memAvailable is the host's MemAvailable in bytes (0 if unknown).
func memAvailable() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func reportScenario(w io.Writer, r *scenarioResult) {
	fmt.Fprintf(w, "\nlabbench: scenario runner and classroom grading (issue 12)\n")
	fmt.Fprintf(w, "scenario  %s, %d checks\n", r.file, r.checks)
	if r.err != nil {
		fmt.Fprintf(w, "ERROR     %v\n", r.err)
	}
	if r.runs > 0 {
		fmt.Fprintf(w, "runs      %d after one uncounted warm-up; times are median (min), whole labctl processes\n", r.runs)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "what\ttime\tnote")
	fmt.Fprintf(tw, "labctl run (up, setup, checks, down)\t%s\tone student\n", cell(r.run))
	fmt.Fprintf(tw, "labctl grade (checks only)\t%s\tone student, lab already up\n", cell(r.grade))
	if r.class > 0 && r.classUp > 0 {
		fmt.Fprintf(tw, "class: %d × labctl run --keep at once\t%s\tall up and graded; %d/%d copies passed every check\n",
			r.class, fmtDur(r.classUp), r.passed, r.class)
		fmt.Fprintf(tw, "class: %d × labctl grade at once\t%s\t\n", r.class, fmtDur(r.classGrade))
		fmt.Fprintf(tw, "class: %d × labctl down at once\t%s\t\n", r.class, fmtDur(r.classDown))
		fmt.Fprintf(tw, "memory per copy: its processes\t%.1f MiB\tPSS of the pods' supervisors and containers\n", mib(r.pssPerCopy))
		fmt.Fprintf(tw, "memory per copy: the host's\t%.1f MiB\tMemAvailable lost while the class was up (kernel objects included)\n", mib(r.hostPerCopy))
	}
	tw.Flush()
	if r.class > 0 && r.passed != r.class {
		fmt.Fprintf(w, "FAIL      %d of %d copies did not pass every check\n", r.class-r.passed, r.class)
	}
}
