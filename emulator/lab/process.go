package lab

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/workload"
)

// Process is a helper process labctl started for a lab, identified by PID
// and the kernel's start time of that PID, so a recycled PID is never
// mistaken for it.
type Process struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
	Log       string `json:"log,omitempty"`
}

// Alive reports whether the recorded process still runs.
func (p Process) Alive() bool { return workload.ProcessAlive(p.PID, p.StartTime) }

// startProcess starts exe with args inside a namespace, detached from
// labctl (its own session, output to logf, which logPath names), and waits
// until it reports ready by writing a line to file descriptor 3: "ok", or
// the reason it cannot run.
func startProcess(namespace, exe string, args []string, logf *os.File, logPath string) (Process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return Process{}, err
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The child inherits the namespace of the thread that forks it.
	err = netns.Do(netns.Path(namespace), cmd.Start)
	w.Close()
	if err != nil {
		return Process{}, err
	}
	proc := Process{PID: cmd.Process.Pid, Log: logPath}
	proc.StartTime, err = workload.ProcessStartTime(proc.PID)
	if err != nil {
		return proc, err
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	select {
	case msg := <-ready:
		if msg == "ok" {
			go cmd.Wait() // reap it should it exit while labctl still runs
			return proc, nil
		}
		cmd.Process.Kill()
		cmd.Wait()
		if msg == "" {
			msg = "it exited before it was ready (see " + logPath + ")"
		}
		return proc, errors.New(msg)
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return proc, fmt.Errorf("not ready after 10s (see %s)", logPath)
	}
}

// Stop ends the process: TERM, then KILL after grace. A PID that now
// belongs to another process is left alone.
func (p Process) Stop(grace time.Duration) error {
	return workload.StopProcess(p.PID, p.StartTime, grace)
}
