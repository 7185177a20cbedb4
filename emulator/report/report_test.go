package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/golden"
)

// sample is a graded break-fix exercise: passes, failures with hints, a
// check that could not run, faults and timings.
func sample() *Result {
	r := New("Break-fix: a missing host-gw route", "scenarios/break-fix-missing-route.yaml", "alice", "run", 7)
	r.Faults = []string{"missing-route: deleteRoute in node2: 192.168.1.0/24"}
	for _, c := range []Check{
		{ID: "same-node", Title: "pod1a pings pod1b", Section: "What still works", Kind: "ping", Expect: "pass",
			Status: Pass, Points: 1, MaxPoints: 1, Expected: "pod1b answers pod1a: 3/3 replies", Observed: "3/3 replies, TTL 64",
			Attempts: 1, Duration: 12 * time.Millisecond, Line: 28},
		{ID: "pod1a-to-pod2", Title: "pod1a pings pod2", Section: "Pods across nodes", Kind: "ping", Expect: "pass",
			Status: Fail, MaxPoints: 3, Expected: "pod2 answers pod1a: 3/3 replies, TTL 62", Observed: "0/3 replies: no reply in time",
			Hint:     "A pod's packets for another node's pod subnet are routed by its own node; replies are routed back by the other. Compare the routes of both nodes: each needs the other's pod subnet via the other's node IP.",
			Attempts: 3, Duration: 3200 * time.Millisecond, Line: 40},
		{ID: "isolated", Section: "Pods across nodes", Kind: "tcp", Expect: "fail",
			Status: Pass, Points: 2, MaxPoints: 2, Expected: "not: pod1a connects to 192.168.9.9 port 80", Observed: "no connection to 192.168.9.9:80: no reply in time",
			Attempts: 1, Duration: time.Second, Line: 52},
		{ID: "logs", Title: "the server saw pod1a # no NAT", Section: "Pods across nodes", Kind: "logs", Expect: "pass",
			Status: Error, MaxPoints: 1, Expected: `the log has "192.168.1.10 - - ["`, Observed: `pod "pod2" has no container "web" & <more>`,
			Hint: "Look at labctl logs pod2 -c web-server.", Attempts: 1, Line: 60},
	} {
		r.Add(c)
	}
	r.Finish(4250 * time.Millisecond)
	return r
}

func TestTotals(t *testing.T) {
	r := sample()
	if r.Points != 3 || r.MaxPoints != 7 || r.Passed != 2 || r.Failed != 1 || r.Errors != 1 || r.OK() || r.Status() != Error {
		t.Errorf("totals: %d/%d points, %d passed, %d failed, %d errors, status %s", r.Points, r.MaxPoints, r.Passed, r.Failed, r.Errors, r.Status())
	}
	if len(r.Sections) != 2 || len(r.Sections[1].Checks) != 3 {
		t.Errorf("sections: %+v", r.Sections)
	}
	s := r.Stable()
	if s.Seconds != 0 || s.Sections[1].Checks[0].Attempts != 0 || r.Sections[1].Checks[0].Attempts != 3 {
		t.Error("Stable keeps timings or changes the original")
	}
}

// Every format, golden.
func TestFormats(t *testing.T) {
	for _, tt := range []struct {
		file  string
		write func(*bytes.Buffer, *Result) error
	}{
		{"table.golden", func(b *bytes.Buffer, r *Result) error { return Write(b, r, "table", false) }},
		{"table-color.golden", func(b *bytes.Buffer, r *Result) error { return Write(b, r, "table", true) }},
		{"json.golden", func(b *bytes.Buffer, r *Result) error { return Write(b, r, "json", false) }},
		{"tap.golden", func(b *bytes.Buffer, r *Result) error { return Write(b, r, "tap", false) }},
		{"junit.golden", func(b *bytes.Buffer, r *Result) error { return JUnit(b, r) }},
		{"classroom.golden", func(b *bytes.Buffer, r *Result) error { return WriteClassroom(b, r) }},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b, sample()); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "testdata/"+tt.file, b.Bytes())
		})
	}
	if err := Write(new(bytes.Buffer), sample(), "yaml", false); err == nil {
		t.Error("an unknown format was accepted")
	}
}

// A passing result: the table says nothing but the passes and the total,
// TAP has no YAML blocks, Classroom says pass.
func TestAllPassing(t *testing.T) {
	r := New("Two nodes", "s.yaml", "two-node", "grade", 1)
	r.Add(Check{ID: "ping", Section: "s", Kind: "ping", Expect: "pass", Status: Pass, Points: 2, MaxPoints: 2, Observed: "3/3 replies"})
	var table, tap bytes.Buffer
	if err := Table(&table, r, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(table.String(), "hint") || strings.Contains(table.String(), "seed") || !strings.Contains(table.String(), "Total: 2/2 points, 1 of 1 check passed") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := TAP(&tap, r); err != nil {
		t.Fatal(err)
	}
	if tap.String() != "TAP version 14\n1..1\nok 1 - ping\n# points 2/2\n" {
		t.Errorf("tap: %q", tap.String())
	}
	if c := Classroom(r); c.Status != Pass || c.MaxScore != 2 || c.Tests[0].Score != 2 {
		t.Errorf("classroom: %+v", c)
	}
}

// The JUnit XML reads back as what CI servers parse; the classroom output
// decodes to the reporter's shape, its scores adding up to the points.
func TestMachineFormatsReadBack(t *testing.T) {
	r := sample()
	var b bytes.Buffer
	if err := JUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 4 || doc.Failures != 1 || doc.Errors != 1 || len(doc.Suites) != 2 || doc.Suites[1].Cases[2].Error == nil {
		t.Errorf("junit read back: %+v", doc)
	}
	b.Reset()
	if err := WriteClassroom(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || lines[1] != "points=3/7" {
		t.Fatalf("outputs: %q", lines)
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "result="))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Version  int    `json:"version"`
		Status   string `json:"status"`
		MaxScore int    `json:"max_score"`
		Tests    []struct {
			Name   string `json:"name"`
			Status string `json:"status"`
			Score  int    `json:"score"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, tc := range res.Tests {
		total += tc.Score
	}
	if res.Version != 1 || res.Status != "error" || res.MaxScore != 7 || total != 3 || len(res.Tests) != 4 {
		t.Errorf("classroom result: %+v", res)
	}
}
