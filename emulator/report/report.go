// Package report renders the result of grading a scenario for the people
// and programs that read it: a terminal table (pass or fail, points,
// observed against expected, the hint of each failure, the total), JSON,
// JUnit XML, TAP and GitHub Classroom's autograding result. It is pure:
// package grade fills a Result, the front ends choose a format.
package report

import (
	"time"
)

// Status is how a check ended.
type Status string

const (
	// Pass: the check came to the outcome it expects.
	Pass Status = "pass"
	// Fail: it did not, within its retry window.
	Fail Status = "fail"
	// Error: it could not be run at all (a namespace or container of the
	// lab is missing); it scores nothing, like a failure.
	Error Status = "error"
)

// Result is a graded scenario.
type Result struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Title and File name the scenario; Lab the lab graded.
	Title string `json:"title"`
	File  string `json:"file,omitempty"`
	Lab   string `json:"lab"`
	// Mode is "run" (the lab was brought up for this) or "grade" (a lab
	// that was up was checked, unchanged).
	Mode string `json:"mode"`
	// Seed picked the fault variants; Faults says what they broke.
	Seed     int64     `json:"seed"`
	Faults   []string  `json:"faults,omitempty"`
	Sections []Section `json:"sections"`

	// Outcome is Status(), for readers of the JSON.
	Outcome   Status `json:"status"`
	Points    int    `json:"points"`
	MaxPoints int    `json:"maxPoints"`
	Passed    int    `json:"passed"`
	Failed    int    `json:"failed"`
	Errors    int    `json:"errors"`
	// Duration is the time the checks took (not bringing the lab up).
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
}

// Section is a heading of the report and its checks.
type Section struct {
	Name   string  `json:"name"`
	Checks []Check `json:"checks"`
}

// Check is one graded check.
type Check struct {
	ID      string `json:"id"`
	Title   string `json:"title,omitempty"`
	Section string `json:"-"`
	Kind    string `json:"kind"`
	// Expect is "pass", or "fail" for an isolation check.
	Expect    string `json:"expect"`
	Status    Status `json:"status"`
	Points    int    `json:"points"`
	MaxPoints int    `json:"maxPoints"`
	// Expected and Observed say, in words, what the check asks for and
	// what it saw; they carry no timings, so a lab graded twice reads
	// the same.
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	// Hint is the scenario's hint, kept for checks that did not pass.
	Hint     string        `json:"hint,omitempty"`
	Attempts int           `json:"attempts"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	// Line is where the check is written in File.
	Line int `json:"line,omitempty"`
}

// Name is what reports call the check: its id, and its title if any.
func (c Check) Name() string {
	if c.Title == "" {
		return c.ID
	}
	return c.ID + ": " + c.Title
}

// Checks lists every check in order.
func (r *Result) Checks() []Check {
	var all []Check
	for _, s := range r.Sections {
		all = append(all, s.Checks...)
	}
	return all
}

// Add appends a graded check to its section (a new one when the section
// changes) and counts it in the totals.
func (r *Result) Add(c Check) {
	if n := len(r.Sections); n == 0 || r.Sections[n-1].Name != c.Section {
		r.Sections = append(r.Sections, Section{Name: c.Section})
	}
	s := &r.Sections[len(r.Sections)-1]
	c.Seconds = c.Duration.Seconds()
	s.Checks = append(s.Checks, c)
	r.Points += c.Points
	r.MaxPoints += c.MaxPoints
	switch c.Status {
	case Pass:
		r.Passed++
	case Fail:
		r.Failed++
	default:
		r.Errors++
	}
	r.Outcome = r.Status()
}

// OK reports whether every check passed.
func (r *Result) OK() bool { return r.Failed == 0 && r.Errors == 0 }

// Status is the scenario's as a whole: error if a check could not run,
// else fail if one failed, else pass.
func (r *Result) Status() Status {
	switch {
	case r.Errors > 0:
		return Error
	case r.Failed > 0:
		return Fail
	}
	return Pass
}

// New starts a result.
func New(title, file, lab, mode string, seed int64) *Result {
	return &Result{APIVersion: "labctl.dev/v1", Kind: "ScenarioResult", Title: title, File: file, Lab: lab, Mode: mode, Seed: seed, Outcome: Pass}
}

// Finish records the time the checks took.
func (r *Result) Finish(d time.Duration) {
	r.Duration = d
	r.Seconds = d.Seconds()
}

// Stable returns a copy without timings and attempt counts (what a busy
// machine changes), for comparing results.
func (r *Result) Stable() *Result {
	c := *r
	c.Duration, c.Seconds = 0, 0
	c.Sections = make([]Section, len(r.Sections))
	for i, s := range r.Sections {
		c.Sections[i] = Section{Name: s.Name, Checks: make([]Check, len(s.Checks))}
		for j, ch := range s.Checks {
			ch.Duration, ch.Seconds, ch.Attempts = 0, 0, 0
			c.Sections[i].Checks[j] = ch
		}
	}
	return &c
}
