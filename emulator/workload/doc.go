// Package workload runs the containers of lab pods: processes in their pod's
// namespaces (network, so containers of a pod share localhost; UTS, with the
// pod name as hostname; IPC; PID, whose PID 1 is the pod's supervisor; a
// mount namespace with the pod's own /etc/hosts and /etc/resolv.conf),
// Kubernetes-style restart policies, requests and limits on cgroups,
// per-container logs, status, and exec into a container. It is
// the pods-and-supervisors room; the pieces it is built from have rooms of
// their own:
//
//	emulator/helper    how the labctl binary runs as a supervisor or container init (roles, ready report, namespace watch, Start)
//	emulator/cgroups   cgroup driver, requests and limits -> cgroup files, born-in-cgroup forks, kill and remove
//	emulator/process   process identity (PID + start time), pidfd signals, memory
//	emulator/builtin   web-server, echo-server, client: workloads compiled into the binary
//	emulator/applet    curl and ping inside containers, as links to the binary
//
// # API
//
//	shim, err := workload.StartPod(ctx, workload.PodSpec{...}, workload.Options{})
//	err = workload.StopPod(shim, grace)            // or StopPods(shims, grace)
//	st, err := workload.ReadStatus(stateDir)       // phase, containers (Summary()), restarts, exit codes, cgroup driver
//	cmd, err := workload.Command(workload.ExecOptions{...}) // set streams, then cmd.Start/Run (exec.go)
//	err = workload.StartIn(cmd, workload.Join{...})         // start any exec.Cmd in a process's namespaces
//	cmd, err := workload.ExecCommand(exe, opts)             // the same through a child labctl
//	err = workload.ReadLogs(ctx, w, stateDir, workload.LogOptions{...}) // kubectl logs: -f, --previous, --tail, --timestamps
//	err = workload.SweepLab(lab, "")               // last resort when the lab's Shims are lost
//
// # Wiring into labctl
//
// main() first gives the binary's helper roles their turn, before any flag
// parsing (helper.Main); this package registers its three: the supervisor
// ("pod-shim"), container init ("container-init") and the container side of
// ExecCommand ("container-exec").
//
// Lab lifecycle: `up` calls StartPod for each pod with containers after the
// network is applied (the pod's namespace exists and has its addresses),
// and stores the returned Shim in the lab record; on a failed or
// interrupted up, StopPod the pods already started. `down` calls StopPods
// with the records' Shims before deleting namespaces (a supervisor whose
// namespace disappears stops by itself within a second, but down should not
// rely on it), and SweepLab(lab) when the record is lost. `status` reads
// ReadStatus per pod. `exec POD -c C -- CMD` runs Command (default
// container: DefaultContainer; ExecOptions.Sandbox for the pod itself) as
// its child, `logs POD -c C [-f]` calls ReadLogs.
//
// # Processes
//
// Each pod has one supervisor process, "labctl-shim <lab>/<pod>": the pause
// container and containerd-shim in one. StartPod starts it with
// helper.Start: detached (own session, so it survives the `labctl up` that
// started it) in the pod's network namespace and new UTS, IPC, PID and
// mount namespaces (the pod sandbox: sandbox.go), as PID 1 of the pod. It
// starts every container as "labctl-init", which joins the container's
// cgroups, enters the root filesystem if there is one, and executes the
// command or runs the builtin in place. Containers die with their
// supervisor (PR_SET_PDEATHSIG, and the kernel ends a PID namespace with
// its PID 1), the supervisor adopts their orphans, and everything of a pod
// lives in its cgroups, which StopPod empties with SIGKILL as a last step,
// so no process outlives its lab. PIDs are recorded as the host sees them,
// always with their start time, and signalled through pidfds
// (emulator/process), so a reused PID is never hit.
//
// # Files
//
// StateDir (one per pod) holds _pod.json (the spec), _status.json (written
// by the supervisor, replaced atomically), etc-hosts and resolv.conf (the
// pod's /etc/hosts and /etc/resolv.conf), <container>.log (stdout and
// stderr of every run, as the container wrote them, read by the supervisor
// through a pipe; where each run begins and ends is in the status),
// <container>.times (when each line began: logwrite.go), _shim.log, and bin/ (applet links curl and ping
// to the labctl binary, last in the PATH of containers without a root filesystem, so the host's tools
// win where installed; Options.AppletDir can share one directory between pods; containers with a root
// filesystem get theirs at RootFSAppletDir instead, mounted by their init: init.go).
// StartPod, the supervisor, StopPod, ReadStatus, Exec and Logs reach these
// files only through emulator/statedir: the directory (and every one above
// it) must be root's and not writable by others, a relative path is made
// absolute, and no symbolic link in it is ever followed.
//
// # Cgroups
//
// <hierarchy>/labctl/<lab>/<pod>/<container> and .../<pod>/_shim, made and
// filled by emulator/cgroups: cgroup v2 when its root offers the cpu and
// memory controllers (cpu request -> cpu.weight, limit -> cpu.max, memory
// request -> memory.low, limit -> memory.max), else cgroup v1 (cpu.shares,
// cpu.cfs_quota_us/cpu.cfs_period_us, memory.soft_limit_in_bytes,
// memory.limit_in_bytes), mounting the v1 hierarchies under
// /run/labctl/cgroup if nobody has, else none (limits refused, processes
// tracked by PID only). As the kubelet does, a limit without a request
// requests the limit, BestEffort containers get cpu.shares 2, and the pod
// cgroup gets the sum of the requests (and of the CPU limits, when every
// container has one). ReadStatus says which driver is in use and lists the
// values written, per pod and per container.
//
// Requires Linux 5.3 (pidfd_open); exec into containers uses setns on a
// pidfd from 5.8 and /proc/PID/ns before; containers with a root
// filesystem need openat2 (5.6), which keeps their mount points inside it.
package workload
