package process

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary plays the processes these tests stop: PROCTEST_ROLE=sleep
// sleeps until SIGTERM, =stubborn ignores SIGTERM.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCTEST_ROLE") {
	case "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child starts the test binary in a role; it is killed when the test ends.
func child(t *testing.T, role string) ID {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var attr syscall.ProcAttr
	attr.Env = []string{"PROCTEST_ROLE=" + role}
	attr.Files = []uintptr{0, 1, 2}
	pid, err := syscall.ForkExec(exe, []string{exe}, &attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	})
	id, err := Of(pid)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIdentity(t *testing.T) {
	self, err := Of(os.Getpid())
	if err != nil || self.StartTime == 0 || !self.Alive() {
		t.Fatalf("Of(self) = %+v, %v; alive %v", self, err, self.Alive())
	}
	st, err := ReadStat(os.Getpid())
	if err != nil || (st.State != 'R' && st.State != 'S') || st.PGID != unix.Getpgrp() || st.StartTime != self.StartTime {
		t.Errorf("ReadStat(self) = %+v, %v", st, err)
	}
	// Another start time is another process, even under the same PID.
	other := ID{PID: self.PID, StartTime: self.StartTime + 1}
	if other.Alive() {
		t.Errorf("a record with another start time is alive")
	}
	if _, err := other.Open(); !errors.Is(err, ErrGone) {
		t.Errorf("Open of a reused PID: %v, want ErrGone", err)
	}
	for _, id := range []ID{{}, {PID: -1}} {
		if id.Alive() {
			t.Errorf("%+v is alive", id)
		}
	}
	if _, err := Of(0x7ffffff0); err == nil {
		t.Errorf("Of a PID nobody has succeeded")
	}
}

// A record whose start time does not match is never signalled; the right
// record stops the process and reaps it.
func TestStop(t *testing.T) {
	id := child(t, "sleep")
	stale := ID{PID: id.PID, StartTime: id.StartTime - 1}
	if err := stale.Signal(unix.SIGKILL); err != nil {
		t.Errorf("Signal through a stale record: %v", err)
	}
	if err := stale.Stop(10 * time.Millisecond); err != nil {
		t.Errorf("Stop through a stale record: %v", err)
	}
	if !id.Alive() {
		t.Fatalf("a stale record stopped the process")
	}
	start := time.Now()
	if err := id.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopping a process that exits on SIGTERM took %v", took)
	}
	if id.Alive() {
		t.Errorf("alive after Stop")
	}
	// Reaped: the PID no longer exists, not even as a zombie.
	if _, err := os.Stat("/proc/" + strconv.Itoa(id.PID)); err == nil {
		t.Errorf("process %d was not reaped", id.PID)
	}
	if err := id.Stop(time.Second); err != nil {
		t.Errorf("Stop of a gone process: %v", err)
	}
}

// A process that ignores SIGTERM gets SIGKILL after the grace period.
func TestStopKillsAfterGrace(t *testing.T) {
	id := child(t, "stubborn")
	// Let it ignore SIGTERM before it gets one.
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := id.Stop(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("Stop took %v; want the grace period of 300ms and a little more", took)
	}
	if id.Alive() {
		t.Errorf("alive after Stop")
	}
}

// A zombie child is gone for Alive and Open, and Reap collects it.
func TestZombie(t *testing.T) {
	id := child(t, "sleep")
	if err := unix.Kill(id.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(id.PID, 0)
	if err != nil {
		t.Fatal(err)
	}
	ok := Wait(fd, 5*time.Second)
	unix.Close(fd)
	if !ok {
		t.Fatal("the child did not exit on SIGKILL")
	}
	if st, err := ReadStat(id.PID); err != nil || st.State != 'Z' {
		t.Fatalf("state %+v, %v; want a zombie", st, err)
	}
	if id.Alive() {
		t.Errorf("a zombie is alive")
	}
	ID{PID: id.PID, StartTime: id.StartTime + 1}.Reap()
	if _, err := ReadStat(id.PID); err != nil {
		t.Fatalf("Reap through a stale record reaped the zombie")
	}
	id.Reap()
	if _, err := ReadStat(id.PID); err == nil {
		t.Errorf("Reap left the zombie")
	}
}

func TestMemory(t *testing.T) {
	m, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.PSS <= 0 || m.PSS > m.RSS {
		t.Errorf("Memory(self) = %+v", m)
	}
	if _, err := Memory(0x7ffffff0); err == nil {
		t.Errorf("Memory of a PID nobody has succeeded")
	}
}

// ReleaseStartupPages unmaps the executable's read-only pages this process
// holds, and the process goes on running (the pages fault back in).
func TestReleaseStartupPages(t *testing.T) {
	exeRSS := func() int {
		data, err := os.ReadFile("/proc/self/smaps")
		if err != nil {
			t.Fatal(err)
		}
		exe, _ := os.Readlink("/proc/self/exe")
		kb, in := 0, false
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 5 && strings.Contains(f[0], "-"):
				in = len(f) >= 6 && f[len(f)-1] == exe && !strings.ContainsRune(f[1], 'w')
			case in && len(f) >= 2 && f[0] == "Rss:":
				n, _ := strconv.Atoi(f[1])
				kb += n
			}
		}
		return kb
	}
	before := exeRSS()
	if err := ReleaseStartupPages(); err != nil {
		t.Fatal(err)
	}
	after := exeRSS()
	if after >= before {
		t.Errorf("the executable's read-only pages: %d KiB resident before, %d KiB after; want fewer", before, after)
	}
	// Still running: code and read-only data come back as used.
	if s := fmt.Sprintf("%d", 42); s != "42" {
		t.Fatal("formatting after the release")
	}
}
