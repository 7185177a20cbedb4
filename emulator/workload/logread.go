package workload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/labctl/labctl/emulator/statedir"
)

// LogOptions choose what ReadLogs prints, as kubectl logs' flags do.
type LogOptions struct {
	// Container is the container; "" is the pod's first.
	Container string
	// Follow keeps printing what the run writes until it ends (or ctx).
	Follow bool
	// Previous prints the previous run's output instead of the current
	// one's: the run kubectl calls the container's last state
	// (ContainerStatus.PreviousRun).
	Previous bool
	// Tail prints only the last Tail lines; negative prints all.
	Tail int
	// Timestamps prefixes each line with when the supervisor read it, in
	// RFC 3339 with nanoseconds, UTC, as kubectl logs --timestamps.
	Timestamps bool
}

// ErrNoPreviousRun says a container has not ended a run yet.
var ErrNoPreviousRun = errors.New("no previous run")

// ReadLogs copies a container's output (stdout and stderr in the order
// written) to w: its current run's, as kubectl logs shows it (while it
// waits to be restarted, the run that just ended), or with
// opt.Previous the run before.
func ReadLogs(ctx context.Context, w io.Writer, stateDir string, opt LogOptions) error {
	dir, err := openPodDir(stateDir)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer dir.Close()
	pc, err := readPodConfigIn(dir)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	container := opt.Container
	if container == "" {
		container = pc.Spec.Containers[0].Name
	}
	if _, err := pc.container(container); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	fail := func(err error) error {
		return fmt.Errorf("logs of pod %q container %q: %w", pc.Spec.Pod, container, err)
	}
	run, err := selectRun(dir, container, opt.Previous)
	if err != nil {
		return fail(err)
	}
	f, err := dir.OpenFile(logName(container), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && !opt.Follow {
		return nil
	}
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	end := run.end
	if end < 0 {
		if end, err = fileSize(f); err != nil {
			return fail(err)
		}
	}
	from := run.start
	if opt.Tail >= 0 {
		if from, err = tailStart(f, run.start, end, opt.Tail); err != nil {
			return fail(err)
		}
	}
	lw := &logPrinter{w: w, atLineStart: true}
	if opt.Timestamps {
		if lw.times, err = openTimes(dir, container, end > from); err != nil {
			return fail(err)
		}
		if lw.times != nil {
			defer lw.times.f.Close()
		}
	}
	if err := copyRange(f, from, end, lw); err != nil {
		return fail(err)
	}
	if !opt.Follow || run.end >= 0 {
		return nil
	}
	if err := follow(ctx, dir, f, container, run.start, end, lw); err != nil {
		return fail(err)
	}
	return nil
}

// logRun is a run's output in the log: [start, end), end -1 while the
// run may still write.
type logRun struct{ start, end int64 }

// selectRun finds the run to print from the status the supervisor wrote.
// Without one (the pod's supervisor never wrote it), the whole log is the
// run.
func selectRun(dir *statedir.Dir, container string, previous bool) (logRun, error) {
	c, _, ok := containerStatus(dir, container)
	if !previous {
		if !ok {
			return logRun{0, -1}, nil
		}
		return logRun{c.LogStart, -1}, nil
	}
	var prev *Termination
	if ok {
		prev = c.PreviousRun()
	}
	if prev == nil {
		// The kubelet's words for it.
		return logRun{}, fmt.Errorf("previous terminated container %q not found: %w", container, ErrNoPreviousRun)
	}
	return logRun{prev.LogStart, max(prev.LogStart, prev.LogEnd)}, nil
}

// containerStatus reads a container's status and its pod's phase.
func containerStatus(dir *statedir.Dir, container string) (ContainerStatus, string, bool) {
	st, err := readStatus(dir)
	if err != nil {
		return ContainerStatus{}, "", false
	}
	for _, c := range st.Containers {
		if c.Name == container {
			return c, st.Phase, true
		}
	}
	return ContainerStatus{}, "", false
}

// follow keeps copying what the run at start appends, from pos on, until
// the run ends (kubectl logs -f ends with the container it follows), the
// pod stops or ctx ends.
func follow(ctx context.Context, dir *statedir.Dir, f *os.File, container string, start, pos int64, lw *logPrinter) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// The end is judged before copying, so the run's last words,
		// written before it ended, are copied.
		c, phase, ok := containerStatus(dir, container)
		ended := !ok || runEnded(c, phase, start)
		end, err := fileSize(f)
		if err != nil {
			return err
		}
		if ok && c.LogStart > start {
			end = min(end, c.LogStart) // the next run's output is not this run's
		}
		if err := copyRange(f, pos, end, lw); err != nil {
			return err
		}
		pos = end
		if ended {
			return nil
		}
	}
}

// runEnded reports whether the run whose output began at start is over:
// the container left it (terminated, waiting to restart, restarted) or
// the pod stopped or lost its supervisor.
func runEnded(c ContainerStatus, podPhase string, start int64) bool {
	switch {
	case podPhase == PhaseStopped, podPhase == PhaseUnknown, c.LogStart != start:
		return true
	case c.State == StateRunning:
		return false
	}
	return !(c.State == StateWaiting && c.Reason == ReasonCreating)
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// copyRange copies the log's bytes [from, to) through lw.
func copyRange(f *os.File, from, to int64, lw *logPrinter) error {
	buf := make([]byte, 32<<10)
	for from < to {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), to-from)], from)
		if n > 0 {
			if werr := lw.write(buf[:n], from); werr != nil {
				return werr
			}
			from += int64(n)
		}
		if err == io.EOF {
			return nil // truncated under us: nothing more to read
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// tailStart returns where the last n lines of [start, end) begin. A final
// newline ends the last line; it does not begin an empty one.
func tailStart(f *os.File, start, end int64, n int) (int64, error) {
	if n == 0 {
		return end, nil
	}
	buf := make([]byte, 32<<10)
	pos := end
	skipFinal := true
	for pos > start {
		size := min(int64(len(buf)), pos-start)
		chunk := buf[:size]
		if _, err := f.ReadAt(chunk, pos-size); err != nil && err != io.EOF {
			return 0, err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				skipFinal = false
				continue
			}
			if skipFinal {
				skipFinal = false
				continue
			}
			if n--; n == 0 {
				return pos - size + int64(i) + 1, nil
			}
		}
		pos -= size
	}
	return start, nil
}

// logPrinter writes log bytes, with each line's time before it when
// times is set.
type logPrinter struct {
	w           io.Writer
	times       *timeIndex
	atLineStart bool
}

// write writes p, which starts at offset off of the log.
func (lw *logPrinter) write(p []byte, off int64) error {
	if lw.times == nil {
		_, err := lw.w.Write(p)
		return err
	}
	for len(p) > 0 {
		if lw.atLineStart {
			at, err := lw.times.at(off)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(lw.w, at.UTC().Format(time.RFC3339Nano)+" "); err != nil {
				return err
			}
		}
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line = p[:i+1]
		}
		if _, err := lw.w.Write(line); err != nil {
			return err
		}
		lw.atLineStart = line[len(line)-1] == '\n'
		p, off = p[len(line):], off+int64(len(line))
	}
	return nil
}

// timeIndex reads a container's line times (logwrite.go) in log order.
type timeIndex struct {
	f      *os.File
	sought bool
	next   int64     // the entry at() reads next
	cur    timeEntry // the last entry at or before the offset asked
}

type timeEntry struct {
	off int64
	t   time.Time
}

// timesPatience is how long a reader waits for line times the supervisor
// still holds (timesDelay), with a margin.
const timesPatience = 2*timesDelay + time.Second

// openTimes opens a container's line times; nil when none are needed (the
// range to print is empty). The file appears timesDelay after the first
// line: until then it is waited for.
func openTimes(dir *statedir.Dir, container string, needed bool) (*timeIndex, error) {
	deadline := time.Now().Add(timesPatience)
	for {
		f, err := dir.OpenFile(timesName(container), os.O_RDONLY, 0)
		switch {
		case err == nil:
			return &timeIndex{f: f}, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		case !needed:
			return nil, nil
		case time.Now().After(deadline):
			return nil, errors.New("no line times were recorded (the pod's supervisor predates --timestamps: `labctl up --reconfigure` restarts it)")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// entry reads entry k, false past the end.
func (x *timeIndex) entry(k int64) (timeEntry, bool) {
	var b [timeEntrySize]byte
	if _, err := x.f.ReadAt(b[:], k*timeEntrySize); err != nil {
		return timeEntry{}, false
	}
	return timeEntry{
		off: int64(binary.LittleEndian.Uint64(b[:8])),
		t:   time.Unix(0, int64(binary.LittleEndian.Uint64(b[8:]))),
	}, true
}

// at returns the time of the line beginning at off: the entry recorded for
// exactly that offset, waited for while the supervisor may still hold it.
// Offsets asked must not decrease; the first is found by binary search,
// the rest by reading on.
func (x *timeIndex) at(off int64) (time.Time, error) {
	if !x.sought {
		x.seek(off)
		x.sought = true
	}
	var deadline time.Time
	for {
		for {
			e, ok := x.entry(x.next)
			if !ok || e.off > off {
				break
			}
			x.cur, x.next = e, x.next+1
		}
		if x.next > 0 && x.cur.off == off {
			return x.cur.t, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(timesPatience)
		} else if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("no time was recorded for the line at byte %d of the log", off)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seek positions the index at the last entry at or before off.
func (x *timeIndex) seek(off int64) {
	size, err := fileSize(x.f)
	if err != nil {
		return
	}
	lo, hi := int64(0), size/timeEntrySize // entries [0, lo) are at or before off
	for lo < hi {
		mid := (lo + hi) / 2
		if e, ok := x.entry(mid); ok && e.off <= off {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo > 0 {
		x.cur, _ = x.entry(lo - 1)
	}
	x.next = lo
}
