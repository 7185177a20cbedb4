package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Processes are recorded as a PID plus the start time the kernel gives it
// (field 22 of /proc/PID/stat, clock ticks since boot). PIDs are reused,
// quickly on machines with pid_max 32768; the pair is not. Every signal this
// package sends to a recorded process goes through a pidfd opened before the
// start time is compared, so the process cannot be swapped in between.

// ID identifies a process: its PID and the kernel's start time of that PID.
// The JSON field names are those of labctl's records.
type ID struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// Of returns the identity of the process that has pid now.
func Of(pid int) (ID, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return ID{}, err
	}
	return ID{PID: pid, StartTime: st.StartTime}, nil
}

// Stat is what this package reads from /proc/PID/stat.
type Stat struct {
	State     byte   // R, S, D, Z, ...
	PGID      int    // process group
	StartTime uint64 // clock ticks after boot
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	// The command name in parentheses may contain anything, spaces and
	// parentheses included; the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: only %d fields", pid, len(f)+2)
	}
	pgid, err1 := strconv.Atoi(string(f[2]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return Stat{State: f[0][0], PGID: pgid, StartTime: start}, nil
}

// ErrGone says a recorded process no longer exists: it exited, or its PID
// now belongs to another process.
var ErrGone = errors.New("process is gone")

// Open returns a pidfd for the recorded process if it is still the process
// that started at StartTime and has not exited; the caller closes it. A
// zombie counts as gone: it runs nothing and its parent will reap it.
func (id ID) Open() (int, error) {
	if id.PID <= 0 {
		return -1, ErrGone
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, ErrGone
		}
		return -1, fmt.Errorf("pidfd_open %d: %w", id.PID, err)
	}
	st, err := ReadStat(id.PID)
	if err != nil || st.StartTime != id.StartTime || st.State == 'Z' {
		unix.Close(fd)
		return -1, ErrGone
	}
	return fd, nil
}

// Alive reports whether the recorded process still runs: not exited, not a
// zombie, its PID not taken by another.
func (id ID) Alive() bool {
	fd, err := id.Open()
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// Stop ends the recorded process: SIGTERM, then SIGKILL if it has not
// exited after grace, both through a pidfd, so a PID that now belongs to
// another process is never signalled. A process that is gone is not an
// error. A child of this process is reaped, also one that had exited
// already.
func (id ID) Stop(grace time.Duration) error {
	defer id.Reap()
	return id.with(func(fd int) error {
		if err := Terminate(fd, grace); err != nil {
			return fmt.Errorf("stop %d: %w", id.PID, err)
		}
		return nil
	})
}

// Signal sends sig to the recorded process; a process that is gone is not
// an error.
func (id ID) Signal(sig unix.Signal) error {
	return id.with(func(fd int) error {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %d: %w", id.PID, err)
		}
		return nil
	})
}

// with runs fn with a pidfd of the recorded process; a process that is gone
// is not an error, and fn does not run.
func (id ID) with(fn func(fd int) error) error {
	fd, err := id.Open()
	if errors.Is(err, ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// Reap collects the exit status of the recorded process if it has exited
// and is this process's child, so a process that starts and stops others
// leaves no zombies. The start time is checked first: the PID of a zombie
// is not reused before it is reaped, but once reaped it may name another
// child, whose status belongs to whoever waits for it.
func (id ID) Reap() {
	st, err := ReadStat(id.PID)
	if err != nil || st.StartTime != id.StartTime || st.State != 'Z' {
		return
	}
	// The main thread of a process shows Z as soon as it has exited, but
	// the process cannot be reaped before its other threads have: wait
	// for those (its pidfd polls readable then), briefly.
	if fd, err := unix.PidfdOpen(id.PID, 0); err == nil {
		Wait(fd, 2*time.Second)
		unix.Close(fd)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(id.PID, &ws, unix.WNOHANG|unix.WALL, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Terminate sends SIGTERM to the process behind pidfd and SIGKILL if it has
// not exited after grace; it returns once the process exited, or 2 s after
// the SIGKILL.
func Terminate(pidfd int, grace time.Duration) error {
	if err := unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("SIGTERM: %w", err)
	}
	if !Wait(pidfd, grace) {
		_ = unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		Wait(pidfd, 2*time.Second)
	}
	return nil
}

// Wait waits until the process behind pidfd exits or the timeout passes;
// it reports whether it exited. A pidfd polls readable once the process has
// exited, zombie or not.
func Wait(pidfd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, ms)
		if err == nil && n > 0 {
			return true
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false
		}
		if ms == 0 {
			return false
		}
	}
}

// MemoryUsage is a process's resident memory as /proc/PID/smaps_rollup
// reports it, in bytes. RSS counts every resident page, shared ones fully;
// PSS divides each page by the number of processes that map it, so the PSS
// of many copies of one program adds up to what they really cost.
type MemoryUsage struct {
	RSS, PSS int64
}

// Memory measures a process's memory.
func Memory(pid int) (MemoryUsage, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return MemoryUsage{}, err
	}
	var m MemoryUsage
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			continue
		}
		switch string(f[0]) {
		case "Rss:":
			m.RSS = kb << 10
		case "Pss:":
			m.PSS = kb << 10
		}
	}
	return m, nil
}
