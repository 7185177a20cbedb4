package workload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func tempFile(t *testing.T, content []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// --tail N counts lines as kubectl does: a final newline ends the last
// line, an unterminated last line is a line.
func TestTailStart(t *testing.T) {
	log := "old run\na\nb\nc\n"
	runStart := int64(len("old run\n"))
	big := strings.Repeat("x", 70<<10) + "\nlast\n" // lines longer than the read buffer
	tests := []struct {
		content string
		start   int64
		n       int
		want    string
	}{
		{log, runStart, 1, "c\n"},
		{log, runStart, 2, "b\nc\n"},
		{log, runStart, 3, "a\nb\nc\n"},
		{log, runStart, 10, "a\nb\nc\n"}, // never before the run's start
		{log, runStart, 0, ""},
		{"a\nb\npartial", 0, 1, "partial"},
		{"a\nb\npartial", 0, 2, "b\npartial"},
		{"a\n\n\n", 0, 2, "\n\n"},
		{big, 0, 1, "last\n"},
		{big, 0, 2, big},
	}
	for _, tt := range tests {
		f := tempFile(t, []byte(tt.content))
		from, err := tailStart(f, tt.start, int64(len(tt.content)), tt.n)
		if err != nil || tt.content[from:] != tt.want {
			t.Errorf("tail %d of %.20q from %d: %q, %v; want %q", tt.n, tt.content, tt.start, tt.content[from:], err, tt.want)
		}
	}
}

// The offsets of the lines that begin in a chunk, across chunk and run
// boundaries.
func TestLineStarts(t *testing.T) {
	for _, tt := range []struct {
		p       string
		off     int64
		midLine bool
		want    []int64
	}{
		{"a\nb\n", 10, false, []int64{10, 12}},
		{"a\nb", 10, false, []int64{10, 12}},
		{"rest\nnext", 10, true, []int64{15}},
		{"\n", 0, true, nil},
	} {
		if got := lineStarts([]byte(tt.p), tt.off, tt.midLine); !slices.Equal(got, tt.want) {
			t.Errorf("lineStarts(%q, %d, %v) = %v, want %v", tt.p, tt.off, tt.midLine, got, tt.want)
		}
	}
}

// Each line gets the time recorded for the offset it begins at, also when
// reading starts in the middle of the log and lines span chunks.
func TestTimestampsPrefixEachLine(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var idx []byte
	for i, off := range []int64{0, 4, 8, 12} {
		idx = binary.LittleEndian.AppendUint64(idx, uint64(off))
		idx = binary.LittleEndian.AppendUint64(idx, uint64(t0.Add(time.Duration(i)*1500*time.Millisecond).UnixNano()))
	}
	var out bytes.Buffer
	p := &logPrinter{w: &out, atLineStart: true, times: &timeIndex{f: tempFile(t, idx)}}
	log := []byte("one\ntwo\nthr\nfo")
	// From the second line, in chunks that split lines.
	for _, chunk := range []struct{ from, to int64 }{{4, 6}, {6, 10}, {10, 14}} {
		if err := p.write(log[chunk.from:chunk.to], chunk.from); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-12-04T10:00:01.5Z two\n2026-12-04T10:00:03Z thr\n2026-12-04T10:00:04.5Z fo"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// A container's runs, read back as kubectl logs reads them: the current
// run, --previous, --tail and --timestamps; the log file itself keeps
// every run unchanged.
func TestReadLogsRuns(t *testing.T) {
	n := newNet(t, 1)
	counter := filepath.Join(t.TempDir(), "runs")
	script := `n=$(( $(cat ` + counter + ` 2>/dev/null || echo 0) + 1 )); echo $n > ` + counter + `
echo "run $n out"; echo "run $n err" >&2; printf "run $n partial"
[ $n -ge 3 ] && exit 0; exit 3`
	c := Container{Name: "crash", Command: []string{"sh", "-c", script}, RestartPolicy: RestartOnFailure}
	_, spec := startPod(t, n, 0, "pod-runs", c, named(testCmd("sleep"), "idle"))
	st := waitStatus(t, spec.StateDir, 10*time.Second, "the third run to complete", func(st PodStatus) bool {
		c := container(st, "crash")
		return c.State == StateTerminated && c.Restarts == 2
	})
	read := func(opt LogOptions) (string, error) {
		t.Helper()
		var b bytes.Buffer
		err := ReadLogs(context.Background(), &b, spec.StateDir, opt)
		return b.String(), err
	}
	run := func(i string) string { return "run " + i + " out\nrun " + i + " err\nrun " + i + " partial" }
	if got := readLog(t, spec.StateDir, "crash"); got != run("1")+run("2")+run("3") {
		t.Errorf("the log file holds every run unchanged:\n%q", got)
	}
	for _, tt := range []struct {
		name string
		opt  LogOptions
		want string
	}{
		{"current run", LogOptions{Container: "crash", Tail: -1}, run("3")},
		{"previous run", LogOptions{Container: "crash", Previous: true, Tail: -1}, run("2")},
		{"tail 1", LogOptions{Container: "crash", Tail: 1}, "run 3 partial"},
		{"tail 2 of the previous run", LogOptions{Container: "crash", Previous: true, Tail: 2}, "run 2 err\nrun 2 partial"},
		{"follow a run that ended", LogOptions{Container: "crash", Follow: true, Tail: -1}, run("3")},
	} {
		if got, err := read(tt.opt); err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}

	got, err := read(LogOptions{Container: "crash", Previous: true, Timestamps: true, Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	prev := container(st, "crash").PreviousRun()
	lines := strings.Split(got, "\n")
	if len(lines) != 3 {
		t.Fatalf("--timestamps --previous: %q", got)
	}
	for i, line := range lines {
		stamp, text, _ := strings.Cut(line, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || !strings.HasSuffix(stamp, "Z") {
			t.Errorf("line %q: no RFC 3339 UTC time: %v", line, err)
			continue
		}
		if text != strings.Split(run("2"), "\n")[i] {
			t.Errorf("line %d: %q", i, text)
		}
		// Read by the supervisor between the run's start and its end.
		if at.Before(prev.StartedAt.Add(-time.Millisecond)) || at.After(prev.FinishedAt.Add(time.Millisecond)) {
			t.Errorf("line %q: time %v outside the run (%v to %v)", text, at, prev.StartedAt, prev.FinishedAt)
		}
	}

	_, err = read(LogOptions{Container: "idle", Previous: true, Tail: -1})
	if !errors.Is(err, ErrNoPreviousRun) || !strings.Contains(err.Error(), `previous terminated container "idle"`) {
		t.Errorf("--previous of a container in its first run: %v", err)
	}
}

// logs -f follows one run, as kubectl logs -f follows one container: it
// ends when the run ends, before the next run's output.
func TestFollowEndsWithTheRun(t *testing.T) {
	n := newNet(t, 1)
	c := Container{Name: "tick", Command: []string{"sh", "-c", "echo start $$; sleep 0.3; echo end $$; exit 3"}, RestartPolicy: RestartOnFailure}
	_, spec := startPod(t, n, 0, "pod-follow", c)
	waitStatus(t, spec.StateDir, 10*time.Second, "the run", func(st PodStatus) bool { return container(st, "tick").State == StateRunning })
	var b bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ReadLogs(ctx, &b, spec.StateDir, LogOptions{Container: "tick", Follow: true, Tail: -1}); err != nil || ctx.Err() != nil {
		t.Fatalf("follow: %v (context: %v)", err, ctx.Err())
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "start ") || lines[1] != "end "+strings.TrimPrefix(lines[0], "start ") {
		t.Errorf("follow printed %q; want one run's start and end", b.String())
	}
}

// The first lines' times reach their file a while after the lines (so a
// lab's start burst creates no extra files); a reader asking at once waits
// for them.
func TestTimestampsOfFirstLines(t *testing.T) {
	n := newNet(t, 1)
	c := Container{Name: "hello", Command: []string{"sh", "-c", "echo hello; echo world; sleep 60"}}
	_, spec := startPod(t, n, 0, "pod-hello", c)
	before := time.Now()
	var out string
	for time.Since(before) < 5*time.Second && !strings.Contains(out, "world") {
		var b bytes.Buffer
		if err := ReadLogs(context.Background(), &b, spec.StateDir, LogOptions{Container: "hello", Timestamps: true, Tail: -1}); err != nil {
			t.Fatal(err)
		}
		out = b.String()
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("--timestamps: %q", out)
	}
	for i, want := range []string{"hello", "world"} {
		stamp, text, _ := strings.Cut(lines[i], " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || text != want || at.After(time.Now()) || time.Since(at) > 10*time.Second {
			t.Errorf("line %q: %v", lines[i], err)
		}
	}
}
