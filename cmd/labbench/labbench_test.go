package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in      string
		want    []labSize
		wantErr bool
	}{
		{in: "2x3,10x100,50x1000", want: defaultSizes},
		{in: "2/3, 10/100", want: []labSize{{2, 3}, {10, 100}}},
		{in: "1x0", want: []labSize{{1, 0}}},
		{in: "0x3", wantErr: true},
		{in: "10", wantErr: true},
		{in: "ax3", wantErr: true},
		{in: ",", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseSizes(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseSizes(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) && !tt.wantErr {
			t.Errorf("parseSizes(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// The generated labs must be valid for labctl, carry the benchmark's
// unique prefix in every namespace name, and spread pods evenly.
func TestTopologyYAML(t *testing.T) {
	const pid = 4194304 // the largest pid Linux hands out: the longest names
	for _, s := range append(defaultSizes, labSize{3, 2}, labSize{1, 0}) {
		name := labName(pid, s)
		data := topologyYAML(name, s)
		names, err := compileLab(name+".yaml", data)
		if err != nil {
			t.Fatalf("%s: %v\n%s", s, err, data)
		}
		if want := 1 + s.Nodes + s.Pods; len(names) != want {
			t.Errorf("%s: %d namespaces, want %d", s, len(names), want)
		}
		for _, ns := range names {
			if !strings.HasPrefix(ns, namePrefix(pid)) {
				t.Errorf("%s: namespace %q lacks the prefix %q", s, ns, namePrefix(pid))
			}
		}
		perNode := map[int]int{}
		node := -1
		for _, line := range strings.Split(string(data), "\n") {
			switch {
			case strings.HasPrefix(line, "  - name: n"):
				node++
				perNode[node] = 0
			case strings.HasPrefix(line, "      - name: p"):
				perNode[node]++
			}
		}
		lo, hi := s.Pods, 0
		for _, n := range perNode {
			lo, hi = min(lo, n), max(hi, n)
		}
		if len(perNode) != s.Nodes || hi-lo > 1 {
			t.Errorf("%s: pods per node %v, want %d nodes within one pod of each other", s, perNode, s.Nodes)
		}
	}
}

func TestEndOfRunAt(t *testing.T) {
	tr := &cleanupTrace{starts: []int64{100, 300, 600}, ends: []int64{50, 200, 500}}
	tests := []struct {
		at     int64
		want   int64
		wantOK bool
	}{
		{at: 150, want: 200, wantOK: true}, // inside the first run
		{at: 250, want: 200, wantOK: true}, // after it ended (a late reader): still that run
		{at: 350, want: 500, wantOK: true},
		{at: 700, wantOK: false},         // the run that started at 600 has not ended yet
		{at: 10, want: 50, wantOK: true}, // no start seen: the next end bounds it
	}
	for _, tt := range tests {
		got, ok := tr.endOfRunAt(tt.at)
		if ok != tt.wantOK || (ok && got != tt.want) {
			t.Errorf("endOfRunAt(%d) = %d, %v; want %d, %v", tt.at, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNewNsidMessage(t *testing.T) {
	b := appendNewNsid(nil, 7, 42, 9)
	b = appendNewNsid(b, 8, 43, 10)
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	for i, m := range msgs {
		if m.Header.Type != unix.RTM_NEWNSID || m.Header.Seq != uint32(7+i) {
			t.Errorf("message %d: type %d seq %d", i, m.Header.Type, m.Header.Seq)
		}
		id, ok := nsidAttr(m.Data)
		if !ok || id != int32(42+i) {
			t.Errorf("message %d: nsid %d, %v; want %d", i, id, ok, 42+i)
		}
	}
}

func TestCell(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in   []time.Duration
		want string
	}{
		{[]time.Duration{9 * ms, 8700 * time.Microsecond, 12 * ms}, "9.0 ms (8.7)"},
		{[]time.Duration{95 * ms, 93 * ms}, "94 ms (93)"},
		{[]time.Duration{2840 * ms, 2500 * ms, 3000 * ms}, "2.84 s (2.50)"},
		{nil, "n/a"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The web-server lab is valid, with one web-server per pod on two nodes,
// and every namespace carries the benchmark's prefix.
func TestWebLab(t *testing.T) {
	const pid = 4194304
	for _, n := range []int{1, 100, 101} {
		name := namePrefix(pid) + fmt.Sprintf("web%d", n)
		data := webLab(name, n)
		names, err := compileLab(name+".yaml", data)
		if err != nil {
			t.Fatalf("%d: %v\n%s", n, err, data)
		}
		if want := 1 + 2 + n; len(names) != want {
			t.Errorf("%d: %d namespaces, want %d", n, len(names), want)
		}
		for _, ns := range names {
			if !strings.HasPrefix(ns, namePrefix(pid)) {
				t.Errorf("%d: namespace %q lacks the prefix", n, ns)
			}
		}
		if got := strings.Count(string(data), "builtin: web-server"); got != n {
			t.Errorf("%d: %d web servers", n, got)
		}
	}
}

// startedLine reads what labctl up prints (e2e checks labctl prints it).
func TestStartedLine(t *testing.T) {
	m := startedLine.FindStringSubmatch("lab \"x\" is up in 512ms: ...\nnetwork ready in 127.6ms, then 100 containers started in 383.1ms\n")
	if m == nil || m[1] != "127.6ms" || m[2] != "100" || m[3] != "383.1ms" {
		t.Errorf("got %q", m)
	}
}
