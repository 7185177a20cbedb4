package workload

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

// procStat is what this package needs from /proc/PID/stat.
type procStat struct {
	state     byte   // R, S, D, Z, ...
	pgid      int    // process group
	startTime uint64 // clock ticks after boot
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name in parentheses may contain anything, spaces and
	// parentheses included; the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: only %d fields", pid, len(f)+2)
	}
	pgid, err1 := strconv.Atoi(string(f[2]))
	start, err2 := strconv.ParseUint(string(f[19]), 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	return procStat{state: f[0][0], pgid: pgid, startTime: start}, nil
}

// ProcessStartTime returns the kernel's start time of a process, the second
// half of its identity.
func ProcessStartTime(pid int) (uint64, error) {
	st, err := readProcStat(pid)
	return st.startTime, err
}

// errGone says a recorded process no longer exists: it exited, or its PID
// now belongs to another process.
var errGone = errors.New("process is gone")

// openProcess returns a pidfd for pid if it is still the process that started
// at startTime and has not exited. A zombie counts as gone: it runs nothing
// and its parent will reap it.
func openProcess(pid int, startTime uint64) (int, error) {
	if pid <= 0 {
		return -1, errGone
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, errGone
		}
		return -1, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	st, err := readProcStat(pid)
	if err != nil || st.startTime != startTime || st.state == 'Z' {
		unix.Close(fd)
		return -1, errGone
	}
	return fd, nil
}

// alive reports whether the recorded process still runs.
func alive(pid int, startTime uint64) bool {
	fd, err := openProcess(pid, startTime)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// ProcessAlive reports whether the process recorded as pid and startTime
// still runs: not exited, not a zombie, its PID not taken by another.
func ProcessAlive(pid int, startTime uint64) bool { return alive(pid, startTime) }

// StopProcess ends the recorded process: SIGTERM, then SIGKILL if it has
// not exited after grace, both through a pidfd, so a PID that now belongs
// to another process is never signalled. A process that is gone is not an
// error.
func StopProcess(pid int, startTime uint64, grace time.Duration) error {
	return withProcess(pid, startTime, func(fd int) error {
		err := terminate(fd, grace)
		reap(pid)
		if err != nil {
			return fmt.Errorf("stop %d: %w", pid, err)
		}
		return nil
	})
}

// withProcess runs fn with a pidfd of the recorded process; a process that
// is gone is not an error, and fn does not run.
func withProcess(pid int, startTime uint64, fn func(fd int) error) error {
	fd, err := openProcess(pid, startTime)
	if errors.Is(err, errGone) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(fd)
}

// terminate sends SIGTERM to the process behind fd and SIGKILL if it has
// not exited after grace; it returns once the process exited, or 2 s after
// the SIGKILL.
func terminate(fd int, grace time.Duration) error {
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return fmt.Errorf("SIGTERM: %w", err)
	}
	if !waitPidfd(fd, grace) {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		waitPidfd(fd, 2*time.Second)
	}
	return nil
}

// signalProcess sends sig to the recorded process; a process that is gone is
// not an error.
func signalProcess(pid int, startTime uint64, sig unix.Signal) error {
	return withProcess(pid, startTime, func(fd int) error {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
		return nil
	})
}

// waitPidfd waits until the process behind fd exits or the timeout passes;
// it reports whether it exited. A pidfd polls readable once the process has
// exited, zombie or not.
func waitPidfd(fd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
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

// reap collects the exit status of pid if it is this process's child, so a
// process that starts and stops pods leaves no zombies; for anyone else's
// process it does nothing.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WNOHANG|unix.WALL, nil)
		if !errors.Is(err, unix.EINTR) {
			return
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
