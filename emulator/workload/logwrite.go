package workload

import (
	"encoding/binary"
	"os"
	"sync"
	"time"

	"github.com/labctl/labctl/emulator/statedir"
)

// A container's output reaches its supervisor through a pipe per run, as a
// container runtime reads a container's stdout, and is appended unchanged
// to <name>.log. Two facts are kept beside it, so that `logs` can do what
// kubectl logs does: where each run's output begins and ends in the log
// (ContainerStatus.LogStart, Termination.LogStart and LogEnd: --previous)
// and when each line began (<name>.times: --timestamps), the time the
// supervisor read it, as the kubelet's CRI log files keep it.
//
// stdout and stderr share the one pipe, so their lines stay in the order
// they were written.
//
// The times file is created timesDelay after a container's first line,
// not with it: creating a file is a metadata write, about a millisecond on
// a disk file system, and when a lab comes up every container writes its
// first line at once. Until then the first lines' times wait in memory, and
// a reader waits for them (logread.go); once the file exists, each line's
// time is written before the line.

// timesDelay is how long line times may wait in the supervisor's memory
// for their file, and maxPendingTimes how many.
const (
	timesDelay      = time.Second
	maxPendingTimes = 4096
)

// timesName is a container's line-times index in its pod's state
// directory: 16 bytes per line, the line's offset in the log and its time
// in Unix nanoseconds, both little-endian int64, in log order.
func timesName(container string) string { return container + ".times" }

const timeEntrySize = 16

// containerLog is one container's log for the life of its supervisor.
type containerLog struct {
	dir  *statedir.Dir
	name string
	logf func(format string, args ...any)

	mu      sync.Mutex
	log     *os.File
	times   *os.File    // created with the first times written
	pending []byte      // line times not yet written
	flush   *time.Timer // writes pending within timesDelay
	size    int64       // bytes in the log
	midLine bool        // the last byte written was not a newline
	failed  bool        // a log write failed: said once, output dropped since
	noTimes bool        // a times write failed: said once, times dropped since
	copying chan struct{}
}

// openContainerLog opens (creating it) a container's log for appending.
func openContainerLog(dir *statedir.Dir, name string, logf func(string, ...any)) (*containerLog, error) {
	f, err := dir.OpenFile(logName(name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &containerLog{dir: dir, name: name, logf: logf, log: f, size: fi.Size()}, nil
}

// startRun returns the write end of a new run's output pipe, for its
// stdout and stderr (the caller closes it once the run is forked), and
// where in the log the run's output begins.
func (l *containerLog) startRun() (*os.File, int64, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.midLine = false // a run's first line is a line of its own
	l.copying = make(chan struct{})
	go l.copy(r, l.copying)
	return w, l.size, nil
}

// copy appends what the run writes until every writer has closed the pipe.
func (l *containerLog) copy(r *os.File, done chan struct{}) {
	defer close(done)
	defer r.Close()
	// Small: a supervisor holds one per container for its whole life.
	buf := make([]byte, 8<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			l.append(buf[:n], time.Now())
		}
		if err != nil {
			return
		}
	}
}

// append writes the times of the lines that begin in p (or keeps them
// until their file exists), then p.
func (l *containerLog) append(p []byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return
	}
	if !l.noTimes {
		for _, start := range lineStarts(p, l.size, l.midLine) {
			l.pending = binary.LittleEndian.AppendUint64(l.pending, uint64(start))
			l.pending = binary.LittleEndian.AppendUint64(l.pending, uint64(at.UnixNano()))
		}
	}
	if l.times != nil {
		l.writeTimes()
	}
	n, err := l.log.Write(p)
	l.size += int64(n)
	switch {
	case err != nil:
		// The pipe is still drained, so the container never blocks on
		// a full disk; its output is lost from here on, and the
		// supervisor's log says so.
		l.failed = true
		l.logf("container %q: write log: %v (its further output is dropped)", l.name, err)
		return
	case len(l.pending) >= maxPendingTimes*timeEntrySize:
		l.writeTimes()
	case len(l.pending) > 0 && l.flush == nil:
		l.flush = time.AfterFunc(timesDelay, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.writeTimes()
		})
	}
	l.midLine = p[len(p)-1] != '\n'
}

// lineStarts returns the log offsets of the lines that begin in p, which
// is appended at offset off after a line that ended (or not, midLine).
func lineStarts(p []byte, off int64, midLine bool) []int64 {
	var starts []int64
	if !midLine {
		starts = append(starts, off)
	}
	for i, b := range p[:len(p)-1] {
		if b == '\n' {
			starts = append(starts, off+int64(i)+1)
		}
	}
	return starts
}

// writeTimes appends the pending line times to the times file. l.mu is
// held.
func (l *containerLog) writeTimes() {
	if l.flush != nil {
		l.flush.Stop()
		l.flush = nil
	}
	if len(l.pending) == 0 || l.failed || l.noTimes {
		l.pending = l.pending[:0]
		return
	}
	var err error
	if l.times == nil {
		l.times, err = l.dir.OpenFile(timesName(l.name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	if err == nil {
		_, err = l.times.Write(l.pending)
	}
	if err != nil {
		// The output itself is still logged; logs --timestamps will
		// say its lines have no time.
		l.noTimes = true
		l.logf("container %q: write line times: %v (its further line times are dropped)", l.name, err)
	}
	l.pending = l.pending[:0]
}

// drain waits, at most d, until the current run's output is all in the
// log (its pipe is closed once the run and whatever it left behind have
// exited), and returns the log's size: where the run's output ends.
func (l *containerLog) drain(d time.Duration) int64 {
	l.mu.Lock()
	copying := l.copying
	l.mu.Unlock()
	if copying != nil {
		select {
		case <-copying:
		case <-time.After(d):
			// Something the run started still holds its pipe; its
			// output keeps arriving, counted with the next run's.
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeTimes() // a run's end is no rush hour
	return l.size
}

// offset is the log's size now.
func (l *containerLog) offset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// close closes the log's files once its output is drained (at most d).
func (l *containerLog) close(d time.Duration) {
	l.drain(d)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeTimes()
	l.log.Close()
	if l.times != nil {
		l.times.Close()
	}
	l.failed = true // a copier still running drops what it reads
}
