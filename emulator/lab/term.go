package lab

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// A command run on a terminal (ExecOptions.Terminal) is a job of its own,
// as a shell runs one: its own process group, in the terminal's
// foreground. It has to be: a command in a pod lives in the pod's PID
// namespace, where labctl's process group does not exist, and an
// interactive shell that finds the terminal held by a group it cannot see
// cannot give the terminal back when it exits (dash then fails with
// "Cannot set tty process group"). As a job, Ctrl-C and Ctrl-\ reach the
// command alone; when it stops (Ctrl-Z) labctl takes the terminal back and
// stops too, so the user's shell sees a stopped job, and `fg` continues
// both; when it ends, labctl takes the terminal back.

// foregroundOn reports whether this process is in the foreground of the
// terminal f, so that it may hand the terminal to a job.
func foregroundOn(f *os.File) bool {
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// asJob makes cmd, not yet started, a job in the foreground of tty.
func asJob(cmd *exec.Cmd, tty *os.File) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Ctty is the parent's descriptor for Foreground.
	cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, int(tty.Fd())
}

// waitJob waits until the job cmd (started by asJob) has exited, without
// reaping it (cmd.Wait does), following it through stops: each stop stops
// this process too, and continuing this process continues the job.
func waitJob(cmd *exec.Cmd, tty *os.File) {
	pid := cmd.Process.Pid
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || !stopped(&info) {
			return
		}
		// Consume the stop, so the next wait sees what comes after it.
		_ = unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED, nil)
		setForeground(tty, unix.Getpgrp())
		_ = unix.Kill(0, unix.SIGSTOP) // until the user's shell continues us
		setForeground(tty, pid)
		_ = unix.Kill(-pid, unix.SIGCONT)
	}
}

// stopped says a waitid result is a stop (CLD_STOPPED).
func stopped(info *unix.Siginfo) bool {
	const cldStopped = 5
	return info.Code == cldStopped
}

// setForeground gives the terminal to process group pgrp; SIGTTOU, which
// a background process asking for the terminal gets, is ignored meanwhile.
func setForeground(tty *os.File, pgrp int) {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	_ = unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgrp)
}
