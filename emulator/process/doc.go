// Package process identifies processes so that they can be signalled
// safely long after they were recorded: a PID together with the start time
// the kernel gives it (ID), checked through a pidfd before every signal, so
// a PID that now belongs to another process is never hit. It also measures
// a process's memory.
//
// Pod supervisors and their containers (emulator/workload), labctl's helper
// processes (emulator/helper) and the lab's records (emulator/lab) all name
// processes this way.
//
//	id, err := process.Of(pid)   // read the start time of a live PID
//	id.Alive()                   // not exited, not a zombie, PID not reused
//	id.Stop(2 * time.Second)     // SIGTERM, SIGKILL after the grace period
//	fd, err := id.Open()         // a pidfd, or ErrGone
//
// Requires Linux 5.3 (pidfd_open).
package process
