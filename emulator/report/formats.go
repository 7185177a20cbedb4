package report

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Formats lists what -o accepts.
var Formats = []string{"table", "json", "tap"}

// Write renders r in one of Formats.
func Write(w io.Writer, r *Result, format string, color bool) error {
	switch format {
	case "table", "":
		return Table(w, r, color)
	case "json":
		return JSON(w, r)
	case "tap":
		return TAP(w, r)
	}
	return fmt.Errorf("unknown output format %q (use %s)", format, strings.Join(Formats, ", "))
}

// Table writes the result for a person at a terminal: a line per check
// under its section (result, points, what was observed), and under a check
// that did not pass what was expected and the hint; then the total. With
// color, PASS is green and FAIL and ERROR are red.
func Table(w io.Writer, r *Result, color bool) error {
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "%s\nlab %s", r.Title, r.Lab)
	if len(r.Faults) > 0 {
		fmt.Fprintf(b, ", seed %d", r.Seed)
	}
	b.WriteString("\n")
	for _, f := range r.Faults {
		fmt.Fprintf(b, "fault %s\n", f)
	}
	// Columns are measured over every section at once, so the whole
	// table lines up; section names stand on lines of their own.
	idW, ptsW := len("CHECK")-2, len("POINTS")
	for _, c := range r.Checks() {
		idW = max(idW, len(c.ID))
		ptsW = max(ptsW, len(fmt.Sprintf("%d/%d", c.Points, c.MaxPoints)))
	}
	indent := strings.Repeat(" ", 2+idW+2+len("RESULT")+2+ptsW+2)
	fmt.Fprintf(b, "\n%-*s  %-6s  %-*s  %s\n", idW+2, "CHECK", "RESULT", ptsW, "POINTS", "OBSERVED")
	for _, s := range r.Sections {
		fmt.Fprintf(b, "%s\n", s.Name)
		for _, c := range s.Checks {
			word := strings.ToUpper(string(c.Status))
			pad := strings.Repeat(" ", 6-len(word))
			fmt.Fprintf(b, "  %-*s  %s%s  %-*s  %s\n", idW, c.ID, paint(c.Status, word, color), pad, ptsW,
				fmt.Sprintf("%d/%d", c.Points, c.MaxPoints), oneLine(c.Observed))
			if c.Status == Pass {
				continue
			}
			fmt.Fprintf(b, "%sexpected: %s\n", indent, oneLine(c.Expected))
			for i, line := range wrap(c.Hint, 80) {
				label := "hint: "
				if i > 0 {
					label = "      "
				}
				fmt.Fprintf(b, "%s%s%s\n", indent, label, line)
			}
		}
	}
	total := len(r.Checks())
	fmt.Fprintf(b, "\nTotal: %d/%d points, %d of %d %s passed", r.Points, r.MaxPoints, r.Passed, total, plural(total, "check"))
	if r.Errors > 0 {
		fmt.Fprintf(b, ", %d could not run", r.Errors)
	}
	b.WriteString("\n")
	return b.Flush()
}

// paint colours a status word for a terminal: green for pass, red else.
func paint(s Status, word string, color bool) string {
	if !color {
		return word
	}
	code := "31"
	if s == Pass {
		code = "32"
	}
	return "\x1b[" + code + "m" + word + "\x1b[0m"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	var line strings.Builder
	for _, word := range strings.Fields(text) {
		if line.Len() > 0 && line.Len()+1+len(word) > width {
			lines = append(lines, line.String())
			line.Reset()
		}
		if line.Len() > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(word)
	}
	if line.Len() > 0 {
		lines = append(lines, line.String())
	}
	return lines
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// JSON writes the result as one indented JSON document (kind
// ScenarioResult).
func JSON(w io.Writer, r *Result) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// TAP writes the result as TAP version 14: a test point per check, with
// what it expected, observed and the hint as a YAML block under one that
// did not pass, and the points as a comment at the end.
func TAP(w io.Writer, r *Result) error {
	b := bufio.NewWriter(w)
	checks := r.Checks()
	fmt.Fprintf(b, "TAP version 14\n1..%d\n", len(checks))
	for i, c := range checks {
		ok := "ok"
		if c.Status != Pass {
			ok = "not ok"
		}
		fmt.Fprintf(b, "%s %d - %s\n", ok, i+1, tapEscape(c.Name()))
		if c.Status == Pass {
			continue
		}
		b.WriteString("  ---\n")
		for _, kv := range [][2]string{
			{"section", c.Section}, {"status", string(c.Status)}, {"points", fmt.Sprintf("%d/%d", c.Points, c.MaxPoints)},
			{"expected", c.Expected}, {"observed", c.Observed}, {"hint", c.Hint},
		} {
			if kv[1] != "" {
				fmt.Fprintf(b, "  %s: %s\n", kv[0], strconv.Quote(oneLine(kv[1])))
			}
		}
		if c.Line > 0 {
			fmt.Fprintf(b, "  at: %s\n", strconv.Quote(fmt.Sprintf("%s:%d", r.File, c.Line)))
		}
		b.WriteString("  ...\n")
	}
	fmt.Fprintf(b, "# points %d/%d\n", r.Points, r.MaxPoints)
	return b.Flush()
}

// tapEscape keeps a description on its line and off TAP's directives.
func tapEscape(s string) string {
	s = oneLine(s)
	s = strings.ReplaceAll(s, `\`, `\\`)
	return strings.ReplaceAll(s, "#", `\#`)
}

// JUnit XML, as CI servers read it: a test suite per section, a test case
// per check, failures and errors with what was expected and observed.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Time       string          `xml:"time,attr"`
	Properties *junitProps     `xml:"properties,omitempty"`
	Cases      []junitTestCase `xml:"testcase"`
}

type junitProps struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// JUnit writes the result as JUnit XML.
func JUnit(w io.Writer, r *Result) error {
	doc := junitSuites{Name: r.Title, Tests: len(r.Checks()), Failures: r.Failed, Errors: r.Errors, Time: seconds(r.Seconds)}
	for i, s := range r.Sections {
		suite := junitSuite{Name: s.Name, Tests: len(s.Checks)}
		if i == 0 {
			suite.Properties = &junitProps{Props: []junitProp{
				{"lab", r.Lab}, {"seed", strconv.FormatInt(r.Seed, 10)}, {"points", fmt.Sprintf("%d/%d", r.Points, r.MaxPoints)},
			}}
		}
		total := 0.0
		for _, c := range s.Checks {
			total += c.Seconds
			tc := junitTestCase{Name: c.Name(), ClassName: s.Name, Time: seconds(c.Seconds), File: r.File, Line: c.Line,
				SystemOut: fmt.Sprintf("points %d/%d; observed: %s", c.Points, c.MaxPoints, oneLine(c.Observed))}
			text := fmt.Sprintf("expected: %s\nobserved: %s", oneLine(c.Expected), oneLine(c.Observed))
			if c.Hint != "" {
				text += "\nhint: " + oneLine(c.Hint)
			}
			switch c.Status {
			case Fail:
				suite.Failures++
				tc.Failure = &junitProblem{Message: oneLine(c.Observed), Type: "fail", Text: text}
			case Error:
				suite.Errors++
				tc.Error = &junitProblem{Message: oneLine(c.Observed), Type: "error", Text: text}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		suite.Time = seconds(total)
		doc.Suites = append(doc.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", "  ")
	if err := e.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }

// ClassroomResult is a GitHub Classroom autograding runner's result, the
// JSON the autograding-grading-reporter action reads (base64-encoded,
// from the runner's `result` output): every test with its score, the
// scenario's status and its maximum.
type ClassroomResult struct {
	Version  int             `json:"version"`
	Status   Status          `json:"status"`
	MaxScore int             `json:"max_score"`
	Tests    []ClassroomTest `json:"tests"`
}

// ClassroomTest is one test of a ClassroomResult.
type ClassroomTest struct {
	Name     string  `json:"name"`
	Status   Status  `json:"status"`
	Score    int     `json:"score"`
	Message  string  `json:"message"`
	TestCode string  `json:"test_code"`
	Filename string  `json:"filename"`
	LineNo   int     `json:"line_no"`
	Duration float64 `json:"duration"`
}

// Classroom returns the result as GitHub Classroom's autograding reads it.
func Classroom(r *Result) ClassroomResult {
	c := ClassroomResult{Version: 1, Status: r.Status(), MaxScore: r.MaxPoints, Tests: []ClassroomTest{}}
	for _, ch := range r.Checks() {
		msg := oneLine(ch.Observed)
		if ch.Status != Pass {
			msg = "expected: " + oneLine(ch.Expected) + "; observed: " + msg
			if ch.Hint != "" {
				msg += "; hint: " + oneLine(ch.Hint)
			}
		}
		c.Tests = append(c.Tests, ClassroomTest{
			Name: ch.Name(), Status: ch.Status, Score: ch.Points, Message: msg,
			TestCode: ch.Kind, Filename: r.File, LineNo: ch.Line, Duration: ch.Seconds,
		})
	}
	return c
}

// WriteClassroom writes a GitHub Actions step's outputs in the syntax of
// the file $GITHUB_OUTPUT names: `result`, the base64 ClassroomResult the
// autograding-grading-reporter action takes from a runner step, and
// `points`, "earned/max" as the older education/autograding action's
// Points output gave it.
func WriteClassroom(w io.Writer, r *Result) error {
	data, err := json.Marshal(Classroom(r))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "result=%s\npoints=%d/%d\n", base64.StdEncoding.EncodeToString(data), r.Points, r.MaxPoints)
	return err
}
