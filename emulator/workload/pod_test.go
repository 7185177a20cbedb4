package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/probe"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/internal/nstest"
)

// The textbook's pods: a curl-client and a web-server sharing each pod's
// network namespace, two pods on a link.
func TestPodsWebServerAndClient(t *testing.T) {
	n := newNet(t, 2)
	pods := []string{"pod1a", "pod2"}
	var dirs []string
	var shims []Shim
	for i, pod := range pods {
		shim, spec := startPod(t, n, i, pod,
			Container{Name: "curl-client", Builtin: builtin.Client},
			Container{Name: "web-server", Builtin: builtin.WebServer, Ports: []Port{{ContainerPort: 80}}},
		)
		dirs = append(dirs, spec.StateDir)
		shims = append(shims, shim)
	}
	// up returned with every container running.
	for i, dir := range dirs {
		st, err := ReadStatus(dir)
		if err != nil {
			t.Fatal(err)
		}
		if st.Phase != PhaseRunning || st.Hostname != pods[i] || st.Shim.PID != shims[i].PID {
			t.Errorf("pod %s: phase %s, hostname %s, shim %d", pods[i], st.Phase, st.Hostname, st.Shim.PID)
		}
		for _, c := range st.Containers {
			if c.State != StateRunning || c.Restarts != 0 || c.PID == 0 {
				t.Errorf("pod %s container %s: %s %s, restarts %d, pid %d", pods[i], c.Name, c.State, c.Reason, c.Restarts, c.PID)
			}
		}
		t.Logf("pod %s: cgroup driver: %s", pods[i], st.Cgroup)
	}

	// From curl-client in pod1a: its own web server over the shared
	// loopback, and every other pod's web server by IP.
	for _, tc := range []struct{ url, ip, path string }{
		{"127.0.0.1:80", n.ips[0], "/"},
		{"http://127.0.0.1/", n.ips[0], "/"},
		{"http://" + n.ips[0] + ":80/self", n.ips[0], "/self"},
		{"http://" + n.ips[1] + ":80/", n.ips[1], "/"},
		{"http://" + n.ips[1] + "/some/path?q=1", n.ips[1], "/some/path?q=1"},
	} {
		out, errOut, code := execIn(t, ExecOptions{StateDir: dirs[0], Container: "curl-client", Argv: []string{"curl", "-sS", tc.url}})
		if want := builtin.WebBody(tc.ip, tc.path); code != 0 || out != want {
			t.Errorf("curl %s: exit %d, got %q, want %q (stderr %q)", tc.url, code, out, want, errOut)
		}
	}
	// And the other way round, from pod2.
	out, _, code := execIn(t, ExecOptions{StateDir: dirs[1], Container: "curl-client", Argv: []string{"curl", "-s", "http://" + n.ips[0] + "/from-pod2"}})
	if want := builtin.WebBody(n.ips[0], "/from-pod2"); code != 0 || out != want {
		t.Errorf("curl from pod2: exit %d, %q, want %q", code, out, want)
	}

	// Both containers of a pod are different processes in one network
	// namespace, the pod's.
	st, _ := ReadStatus(dirs[0])
	client, web := container(st, "curl-client"), container(st, "web-server")
	inNS := procsInNetns(n.path(0))
	if client.PID == web.PID || !contains(inNS, client.PID) || !contains(inNS, web.PID) || !contains(inNS, shims[0].PID) {
		t.Errorf("client %d, web %d, shim %d; processes in the namespace: %v", client.PID, web.PID, shims[0].PID, inNS)
	}

	// curl's exit codes for what students meet.
	_, errOut, code := execIn(t, ExecOptions{StateDir: dirs[0], Container: "curl-client", Argv: []string{"curl", "-sS", "127.0.0.1:81"}})
	if code != 7 /* curl: could not connect */ || !strings.Contains(errOut, "Failed to connect to 127.0.0.1 port 81") {
		t.Errorf("curl to a closed port: exit %d, stderr %q; want 7", code, errOut)
	}
	_, _, code = execIn(t, ExecOptions{StateDir: dirs[0], Container: "curl-client", Argv: []string{"curl", "-s", "-m", "0.3", "http://10.125.0.99/"}})
	if code != 28 /* curl: timeout */ {
		t.Errorf("curl to nobody: exit %d, want 28", code)
	}
	out, _, code = execIn(t, ExecOptions{StateDir: dirs[0], Container: "curl-client", Argv: []string{"curl", "-s", "-o", "/dev/null", "-w", `%{http_code} %{remote_ip}\n`, "-X", "POST", "http://" + n.ips[1] + "/"}})
	if code != 0 || out != "501 "+n.ips[1]+"\n" {
		t.Errorf("curl -X POST: exit %d, %q; want 501 like python's server", code, out)
	}
	out, _, code = execIn(t, ExecOptions{StateDir: dirs[0], Container: "curl-client", Argv: []string{"ping", "-c", "2", "-i", "0.05", n.ips[1]}})
	if code != 0 || !strings.Contains(out, "2 packets transmitted, 2 received") {
		t.Errorf("ping: exit %d:\n%s", code, out)
	}

	// Every request is logged, one line each.
	logs := readLog(t, dirs[1], "web-server")
	if !strings.Contains(logs, "Starting custom HTTP server: ("+n.ips[1]+":80)") ||
		!strings.Contains(logs, `"GET /some/path?q=1 HTTP/1.1" 200 -`) ||
		!strings.Contains(logs, n.ips[0]+" - - [") {
		t.Errorf("web-server log of pod2:\n%s", logs)
	}
	var buf bytes.Buffer
	if err := Logs(context.Background(), &buf, dirs[1], "web-server", false); err != nil || buf.String() != logs {
		t.Errorf("Logs = %q, %v; want the log file", buf.String(), err)
	}
	if err := Logs(context.Background(), &buf, dirs[1], "nginx", false); !errors.Is(err, ErrNoContainer) || !strings.Contains(err.Error(), `pod "pod2" has no container "nginx"`) {
		t.Errorf("Logs of a missing container: %v", err)
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Hostname, environment, working directory, and exec into a container.
func TestContainerEnvironment(t *testing.T) {
	n := newNet(t, 1)
	report := named(testCmd("report", EnvVar{"FOO", "bar"}, EnvVar{"REF", "$(FOO)-$(POD_NAME)"}, EnvVar{"WLTEST_SLEEP", "1"}), "report")
	report.WorkingDir = "/tmp"
	_, spec := startPod(t, n, 0, "pod-env", report)
	waitStatus(t, spec.StateDir, 5*time.Second, "the report", func(PodStatus) bool {
		b, _ := os.ReadFile(LogPath(spec.StateDir, "report"))
		return bytes.Contains(b, []byte("root="))
	})
	logs := readLog(t, spec.StateDir, "report")
	for _, want := range []string{"hostname=pod-env", "cwd=/tmp", "FOO=bar", "REF=bar-pod-env", "POD_IP=" + n.ips[0], "POD_NAME=pod-env", "HOSTNAME=pod-env"} {
		if !hasLine(logs, want) {
			t.Errorf("container output lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "leaked=") {
		t.Errorf("labctl's variables reached the container:\n%s", logs)
	}
	// Exec sees the same: namespaces, environment, working directory, plus
	// variables of its own.
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Argv: []string{testBinary()}, Env: []string{"WLTEST_ROLE=report", "EXTRA=yes", "WLTEST_SLEEP="}})
	for _, want := range []string{"hostname=pod-env", "cwd=/tmp", "FOO=bar", "EXTRA=yes"} {
		if !hasLine(out, want) {
			t.Errorf("exec output lacks %q (exit %d, stderr %q):\n%s", want, code, errOut, out)
		}
	}
	// Exec joins the container's cgroups.
	st, _ := ReadStatus(spec.StateDir)
	if c := container(st, "report"); len(c.Cgroups) > 0 {
		rel := "/" + cgroups.Root + "/" + n.lab + "/pod-env/report"
		if !strings.Contains(out, rel) {
			t.Errorf("exec did not join %s:\n%s", rel, out)
		}
	}
	// The host's hostname did not change.
	if h, _ := os.Hostname(); h == "pod-env" {
		t.Errorf("the host's hostname changed")
	}
	_, errOut, code = execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "nope", Argv: []string{"true"}})
	if code != 99 || !strings.Contains(errOut, `pod "pod-env" has no container "nope"`) {
		t.Errorf("exec into a missing container: exit %d, %q", code, errOut)
	}
	_, errOut, code = execIn(t, ExecOptions{StateDir: spec.StateDir, Argv: []string{"no-such-program"}})
	if code != 99 || !strings.Contains(errOut, `"no-such-program": executable file not found`) {
		t.Errorf("exec of a missing program: exit %d, %q", code, errOut)
	}
}

// ExecCommand runs a command in a container as a child labctl (the helper
// role container-exec), whose output and exit code are the command's, and
// exits as a shell would when the command cannot run.
func TestExecCommand(t *testing.T) {
	n := newNet(t, 1)
	_, spec := startPod(t, n, 0, "pod-exec", Container{Name: "client", Builtin: builtin.Client})
	for _, tc := range []struct {
		name string
		opts ExecOptions
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"exit code", ExecOptions{Argv: []string{testBinary()}, Env: []string{"WLTEST_ROLE=exit", "WLTEST_CODE=3"}}, 3, "exiting with 3", ""},
		{"environment", ExecOptions{Container: "client", Argv: []string{testBinary()}, Env: []string{"WLTEST_ROLE=report"}}, 0,
			"hostname=pod-exec\n", ""},
		{"not found", ExecOptions{Argv: []string{"no-such-program"}}, 127, "", `"no-such-program": executable file not found`},
		{"no container", ExecOptions{Container: "nope", Argv: []string{"true"}}, 1, "", `pod "pod-exec" has no container "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.StateDir = spec.StateDir
			cmd, err := ExecCommand(testBinary(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var out, errOut strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errOut
			_ = cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.err) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, %q, %q", code, out.String(), errOut.String(), tc.code, tc.out, tc.err)
			}
			if strings.Contains(out.String(), "leaked=") {
				t.Errorf("labctl's variables reached the command: %s", out.String())
			}
		})
	}
}

// Always restarts whatever the exit code; OnFailure only after a failure;
// Never does not.
func TestRestartPolicies(t *testing.T) {
	n := newNet(t, 1)
	exit := func(name string, code int, policy RestartPolicy) Container {
		c := named(testCmd("exit", EnvVar{"WLTEST_CODE", strconv.Itoa(code)}, EnvVar{"WLTEST_DELAY_MS", "30"}), name)
		c.RestartPolicy = policy
		return c
	}
	_, spec := startPod(t, n, 0, "pod-restart",
		exit("always-ok", 0, RestartAlways),
		exit("onfailure-ok", 0, RestartOnFailure),
		exit("onfailure-bad", 3, RestartOnFailure),
		exit("never-bad", 3, RestartNever),
		exit("never-ok", 0, ""), // the pod's policy, set below
	)
	_ = spec
	st := waitStatus(t, spec.StateDir, 10*time.Second, "restarts", func(st PodStatus) bool {
		return container(st, "always-ok").Restarts >= 3 && container(st, "onfailure-bad").Restarts >= 3
	})
	first := container(st, "always-ok").Restarts
	waitStatus(t, spec.StateDir, 10*time.Second, "more restarts", func(st PodStatus) bool {
		return container(st, "always-ok").Restarts > first
	})
	st, _ = ReadStatus(spec.StateDir)
	for name, want := range map[string]struct {
		reason string
		code   int
	}{"onfailure-ok": {ReasonCompleted, 0}, "never-bad": {ReasonError, 3}} {
		c := container(st, name)
		if c.State != StateTerminated || c.Restarts != 0 || c.Termination == nil || c.Termination.Reason != want.reason || c.Termination.ExitCode != want.code {
			t.Errorf("%s: %s %s restarts %d termination %+v; want terminated %s, exit %d, no restart", name, c.State, c.Reason, c.Restarts, c.Termination, want.reason, want.code)
		}
	}
	for _, name := range []string{"always-ok", "onfailure-bad"} {
		c := container(st, name)
		code, ok := c.LastExitCode()
		if !ok || (name == "always-ok") != (code == 0) {
			t.Errorf("%s: last exit code %d, %v", name, code, ok)
		}
	}
	if got := container(st, "never-bad").Summary(); got != "Terminated: Error (exit 3)" {
		t.Errorf("summary %q", got)
	}
	// The default policy is Always, as in Kubernetes.
	if c := container(st, "never-ok"); c.RestartPolicy != RestartAlways || c.Restarts == 0 {
		t.Errorf("default policy: %s, %d restarts", c.RestartPolicy, c.Restarts)
	}
	if logs := readLog(t, spec.StateDir, "always-ok"); strings.Count(logs, "exiting with 0") < 4 {
		t.Errorf("the log of a restarted container keeps every run:\n%s", logs)
	}
}

// A container that allocates beyond its memory limit is OOM-killed, and the
// status says so.
func TestMemoryLimitOOMKill(t *testing.T) {
	n := newNet(t, 1)
	hog := named(testCmd("alloc"), "hog")
	hog.RestartPolicy = RestartNever
	hog.Resources = cgroups.Resources{MemoryRequest: 16 << 20, MemoryLimit: 48 << 20}
	_, spec := startPod(t, n, 0, "pod-oom", hog)
	st := waitStatus(t, spec.StateDir, 20*time.Second, "the OOM kill", func(st PodStatus) bool {
		return container(st, "hog").State == StateTerminated
	})
	c := container(st, "hog")
	if c.Termination.Reason != ReasonOOMKilled || c.Termination.ExitCode != 137 || c.Termination.Signal != "SIGKILL" {
		t.Errorf("termination %+v; want OOMKilled, 137, SIGKILL\nlog:\n%s", c.Termination, readLog(t, spec.StateDir, "hog"))
	}
	if logs := readLog(t, spec.StateDir, "hog"); strings.Contains(logs, "allocated 64 MiB") {
		t.Errorf("the hog got %s", logs)
	}
	t.Logf("cgroup %s, settings %v", st.Cgroup, c.CgroupSettings)
	want := "50331648"
	found := false
	for _, s := range c.CgroupSettings {
		if (s.File == "memory.max" || s.File == "memory.limit_in_bytes") && s.Value == want {
			found = true
		}
	}
	if !found {
		t.Errorf("cgroup settings %v lack the memory limit %s", c.CgroupSettings, want)
	}
}

// A CPU limit of 200m holds a busy loop to about a fifth of a core.
func TestCPULimitThrottles(t *testing.T) {
	n := newNet(t, 1)
	busy := named(testCmd("busy"), "busy")
	busy.Resources = cgroups.Resources{CPURequestMilli: 100, CPULimitMilli: 200}
	_, spec := startPod(t, n, 0, "pod-cpu", busy)
	st, _ := ReadStatus(spec.StateDir)
	c := container(st, "busy")
	// The pod cgroup carries the sum of its containers' values, as the
	// kubelet's does.
	if want := (cgroups.Setting{File: "cpu.cfs_quota_us", Value: "20000"}); st.Cgroup.Name == cgroups.V1 && !slices.Contains(st.CgroupSettings, want) {
		t.Errorf("pod cgroup settings %v lack %v", st.CgroupSettings, want)
	}
	// The pod's quota equals the container's, and the supervisor's bit of
	// CPU counts against the pod's too: in a period the pod may run out
	// first and throttle the container from above, and then only the pod
	// counts the period as throttled.
	var podDirs []string
	for _, d := range c.Cgroups {
		podDirs = append(podDirs, filepath.Dir(d))
	}
	time.Sleep(300 * time.Millisecond) // past the first period's burst
	t0, u0 := time.Now(), cpuTicks(t, c.PID)
	p0, th0 := cpuStat(c.Cgroups, "nr_periods"), cpuStat(c.Cgroups, "nr_throttled")
	pth0 := cpuStat(podDirs, "nr_throttled")
	time.Sleep(2 * time.Second)
	share := float64(cpuTicks(t, c.PID)-u0) / ticksPerSecond / time.Since(t0).Seconds()
	periods, throttled := cpuStat(c.Cgroups, "nr_periods")-p0, cpuStat(c.Cgroups, "nr_throttled")-th0
	podThrottled := cpuStat(podDirs, "nr_throttled") - pth0
	t.Logf("busy loop with a 200m limit used %.1f%% of a core, throttled in %d of %d periods, its pod in %d (settings %v)",
		100*share, throttled, periods, podThrottled, c.CgroupSettings)
	throttled = max(throttled, podThrottled)
	// The limit is a ceiling; on a machine busy enough, a loop can get less
	// than its limit, and then it is not throttled either.
	switch {
	case share > 0.3:
		t.Errorf("busy loop used %.0f%% of a core; want about 20%%", 100*share)
	case periods == 0 || throttled < periods/2:
		if share >= 0.15 {
			t.Errorf("cpu.stat: throttled in %d of %d periods; want most", throttled, periods)
		} else {
			t.Logf("the machine is too busy to reach the limit")
		}
	case share < 0.15:
		t.Errorf("busy loop used %.0f%% of a core although throttled; want about 20%%", 100*share)
	}
}

const ticksPerSecond = 100 // USER_HZ, fixed at 100 on Linux for /proc

// cpuTicks is a process's user plus system time, in clock ticks.
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	s, _ := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	return u + s
}

func cpuStat(dirs []string, key string) int64 {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cpu.stat"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, key+" "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
	}
	return 0
}

// Containers that ignore SIGTERM, and their escaped children, are killed
// after the grace period; nothing is left.
func TestStopKillsEverything(t *testing.T) {
	n := newNet(t, 1)
	shim, spec := startPod(t, n, 0, "pod-stop",
		named(testCmd("stubborn"), "stubborn"),
		Container{Name: "client", Builtin: builtin.Client},
	)
	var child, childStart int
	waitStatus(t, spec.StateDir, 5*time.Second, "the grandchild", func(PodStatus) bool {
		b, _ := os.ReadFile(LogPath(spec.StateDir, "stubborn"))
		_, err := fmt.Sscanf(string(b), "child=%d start=%d", &child, &childStart)
		return err == nil
	})
	start := time.Now()
	if err := StopPod(shim, time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took < time.Second || took > 4*time.Second {
		t.Errorf("stop took %v; want the grace period of 1s and little more", took)
	}
	if alive(child, uint64(childStart)) {
		t.Errorf("the grandchild %d survived", child)
	}
	st, err := ReadStatus(spec.StateDir)
	if err != nil || st.Phase != PhaseStopped {
		t.Fatalf("status after stop: %s, %v", st.Phase, err)
	}
	if c := container(st, "client"); c.State != StateTerminated || c.Termination.ExitCode != 0 {
		t.Errorf("the client did not exit 0 on SIGTERM: %+v", c.Termination)
	}
	if c := container(st, "stubborn"); c.Termination == nil || c.Termination.Signal != "SIGKILL" {
		t.Errorf("the stubborn container was not killed: %+v", c.Termination)
	}
}

// A supervisor killed outright takes its containers with it; StopPod then
// cleans up what remains, and status says the pod's state is unknown.
func TestSupervisorKilled(t *testing.T) {
	n := newNet(t, 1)
	shim, spec := startPod(t, n, 0, "pod-kill",
		named(testCmd("stubborn"), "stubborn"),
		Container{Name: "web", Builtin: builtin.WebServer},
	)
	before, _ := ReadStatus(spec.StateDir)
	if err := unix.Kill(shim.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	web := container(before, "web")
	deadline := time.Now().Add(5 * time.Second)
	for alive(web.PID, web.PIDStartTime) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(web.PID, web.PIDStartTime) {
		t.Errorf("a container outlived its supervisor")
	}
	// The container may die (Pdeathsig fires as the supervisor's threads
	// exit) a moment before the supervisor has finished dying.
	st, _ := ReadStatus(spec.StateDir)
	for st.Phase != PhaseUnknown && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st, _ = ReadStatus(spec.StateDir)
	}
	if st.Phase != PhaseUnknown || container(st, "web").State != StateUnknown {
		t.Errorf("status after the supervisor died: %s, web %s", st.Phase, container(st, "web").State)
	}
	// The stubborn container's escaped grandchild is still there until
	// StopPod sweeps the cgroups (the cleanup checks it does).
}

// Deleting a lab's namespace behind labctl's back stops its pod: no
// process outlives its lab.
func TestNamespaceGoneStopsPod(t *testing.T) {
	n := newNet(t, 1)
	shim, _ := startPod(t, n, 0, "pod-orphan", Container{Name: "web", Builtin: builtin.WebServer})
	// newNet's cleanup skips a namespace that is already gone.
	run(t, "ip", "netns", "del", n.names[0])
	fd, err := shim.Process().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if !process.Wait(fd, 5*time.Second) {
		t.Errorf("the supervisor still runs 5s after its namespace was deleted")
	}
}

// A record whose PID now names another process is never signalled.
func TestPIDReuseGuard(t *testing.T) {
	nstest.NeedRoot(t)
	victim := exec.Command(testBinary())
	victim.Env = append(os.Environ(), "WLTEST_ROLE=sleep")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = victim.Process.Kill()
		_ = victim.Wait()
	}()
	id, err := process.Of(victim.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	start := id.StartTime
	// Its cgroups are not labctl's either: a directory that is not a
	// cgroup is never emptied or removed.
	notCgroup := filepath.Join(t.TempDir(), cgroups.Root, "lab", "pod")
	if err := os.MkdirAll(filepath.Join(notCgroup, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := Shim{Pod: "stale", PID: victim.Process.Pid, StartTime: start - 1, Cgroups: []string{notCgroup}}
	if err := StopPod(stale, 100*time.Millisecond); err != nil {
		t.Errorf("StopPod of a stale record: %v", err)
	}
	if !alive(victim.Process.Pid, start) {
		t.Fatalf("StopPod killed a process that only shares the recorded PID")
	}
	if left := PodProcesses(stale); len(left) > 0 {
		t.Errorf("PodProcesses of a stale record = %v", left)
	}
	if _, err := os.Stat(filepath.Join(notCgroup, "empty")); err != nil {
		t.Errorf("StopPod removed a directory that is not a cgroup: %v", err)
	}
	// The same record with the right start time does stop it.
	if err := StopPod(Shim{Pod: "real", PID: victim.Process.Pid, StartTime: start}, 100*time.Millisecond); err != nil {
		t.Errorf("StopPod: %v", err)
	}
	if alive(victim.Process.Pid, start) {
		t.Errorf("StopPod of a right record left the process running")
	}

	// A live pod with a wrong start time in the record survives too.
	n := newNet(t, 1)
	shim, spec := startPod(t, n, 0, "pod-reuse", Container{Name: "client", Builtin: builtin.Client})
	wrong := shim
	wrong.StartTime++
	wrong.Cgroups = nil
	wrong.StateDir = ""
	if err := StopPod(wrong, 100*time.Millisecond); err != nil {
		t.Errorf("StopPod: %v", err)
	}
	if st, _ := ReadStatus(spec.StateDir); st.Phase != PhaseRunning {
		t.Errorf("the pod was stopped through a record with the wrong start time: %s", st.Phase)
	}
}

// A pod whose container cannot start is not left behind, and the error
// names the container and the cause.
func TestStartFailures(t *testing.T) {
	n := newNet(t, 1)
	for _, tc := range []struct {
		name string
		ctrs []Container
		want string
	}{
		{"missing-program", []Container{
			{Name: "web", Builtin: builtin.WebServer},
			{Name: "bad", Command: []string{"/nonexistent/program"}},
		}, `container "bad": exec /nonexistent/program: stat /nonexistent/program: no such file or directory`},
		{"port-in-use", []Container{
			{Name: "web", Builtin: builtin.WebServer},
			{Name: "web2", Builtin: builtin.WebServer},
		}, "address already in use"},
		{"missing-workdir", []Container{
			{Name: "wd", Command: []string{"true"}, WorkingDir: "/nonexistent"},
		}, `container "wd": working directory: chdir /nonexistent: no such file or directory`},
		{"bad-spec", []Container{{Name: "x"}}, `pod "pod-fail": container "x": no command and no builtin`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := PodSpec{Lab: n.lab, Pod: "pod-fail", Namespace: n.path(0), StateDir: filepath.Join(t.TempDir(), "pod"), Containers: tc.ctrs}
			shim, err := StartPod(context.Background(), spec, testOptions())
			if err == nil {
				stopAndCheck(t, shim, n.path(0))
				t.Fatalf("StartPod succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if left := procsInNetns(n.path(0)); len(left) > 0 {
				t.Errorf("processes %v left in the namespace", left)
			}
			d, _ := cgroups.Detect(cgroups.Auto)
			for _, dir := range d.PodDirs(n.lab, "pod-fail") {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("cgroup %s left behind", dir)
				}
			}
		})
	}
}

// A container that cannot start fails the pod's start even when it is
// restarted (after a backoff shorter than the others take to start) before
// the pod reports: the first failure counts, not the last.
func TestStartFailureBeforeOthersAreReady(t *testing.T) {
	n := newNet(t, 1)
	opts := testOptions()
	opts.Backoff = Backoff{Initial: Duration(time.Millisecond), Max: Duration(time.Millisecond), Reset: Duration(10 * time.Second)}
	for i := range 3 {
		ctrs := []Container{{Name: "bad", Command: []string{"/nonexistent/program"}}}
		for j := range 6 {
			ctrs = append(ctrs, Container{Name: fmt.Sprintf("web%d", j), Builtin: builtin.WebServer, Ports: []Port{{ContainerPort: 8000 + j}}})
		}
		spec := PodSpec{Lab: n.lab, Pod: "pod-slow", Namespace: n.path(0), StateDir: filepath.Join(t.TempDir(), "pod"), Containers: ctrs}
		shim, err := StartPod(context.Background(), spec, opts)
		if err == nil {
			stopAndCheck(t, shim, n.path(0))
			t.Fatalf("run %d: StartPod succeeded", i)
		}
		if want := `container "bad": exec /nonexistent/program`; !strings.Contains(err.Error(), want) {
			t.Errorf("run %d: error %q lacks %q", i, err, want)
		}
		if left := procsInNetns(n.path(0)); len(left) > 0 {
			t.Fatalf("run %d: processes %v left in the namespace", i, left)
		}
	}
}

// A container with its own root filesystem sees only it, builtins work in
// it, and exec enters it.
func TestRootFS(t *testing.T) {
	n := newNet(t, 1)
	root := makeRootFS(t)
	report := Container{Name: "report", Command: []string{"/wltest"}, RootFS: root, WorkingDir: "/tmp",
		Env: []EnvVar{{"WLTEST_ROLE", "report"}, {"WLTEST_SLEEP", "1"}}}
	web := Container{Name: "web", Builtin: builtin.WebServer, RootFS: root}
	_, spec := startPod(t, n, 0, "pod-root", report, web)
	waitStatus(t, spec.StateDir, 5*time.Second, "the report", func(PodStatus) bool {
		b, _ := os.ReadFile(LogPath(spec.StateDir, "report"))
		return bytes.Contains(b, []byte("root="))
	})
	logs := readLog(t, spec.StateDir, "report")
	wantRoot := rootListing(t, root)
	for _, want := range []string{"hostname=pod-root", "cwd=/tmp", "root=" + wantRoot} {
		if !hasLine(logs, want) {
			t.Errorf("container output lacks %q:\n%s", want, logs)
		}
	}
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "report", Argv: []string{"/wltest"}, Env: []string{"WLTEST_ROLE=report", "WLTEST_SLEEP="}})
	if code != 0 || !hasLine(out, "root="+wantRoot) || !hasLine(out, "hostname=pod-root") || !hasLine(out, "cwd=/tmp") {
		t.Errorf("exec into the root filesystem: exit %d, stderr %q:\n%s", code, errOut, out)
	}
	// The builtin web server runs inside the root filesystem too.
	client := probe.HTTPClient(n.path(0))
	resp, err := client.Get("http://127.0.0.1/rootfs")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != builtin.WebBody(n.ips[0], "/rootfs") {
		t.Errorf("web server in a root filesystem answered %q", body)
	}
	// Nothing the container mounted is visible on the host.
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte(root)) {
		t.Errorf("a mount of the container's root shows on the host")
	}
}

// makeRootFS builds a tiny root filesystem: the test binary as /wltest with
// the shared libraries it needs, and empty /proc, /dev, /sys and /tmp.
func makeRootFS(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := []string{testBinary()}
	if out, err := exec.Command("ldd", testBinary()).Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					files = append(files, f)
				}
			}
		}
	} else if !strings.Contains(string(out), "not a dynamic") {
		t.Logf("ldd: %v (assuming a static binary)", err)
	}
	for i, f := range files {
		dst := filepath.Join(root, f)
		if i == 0 {
			dst = filepath.Join(root, "wltest")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("cannot build a root filesystem: %v", err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func rootListing(t *testing.T, root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

// The echo server answers on TCP and UDP.
func TestEchoServer(t *testing.T) {
	n := newNet(t, 2)
	startPod(t, n, 0, "pod-echo", Container{Name: "echo", Builtin: builtin.EchoServer, Ports: []Port{{ContainerPort: 7007}}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := n.ips[0] + ":7007"
	c, err := probe.DialTCP(ctx, n.path(1), addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("hello tcp"))
	_ = c.CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hello tcp" {
		t.Errorf("tcp echo: %q", b)
	}
	u, err := probe.DialUDP(n.path(1), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	_ = u.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = u.Write([]byte("hello udp"))
	buf := make([]byte, 100)
	k, err := u.Read(buf)
	if err != nil || string(buf[:k]) != "hello udp" {
		t.Errorf("udp echo: %q, %v", buf[:k], err)
	}
}

// logs -f follows until the pod stops.
func TestLogsFollow(t *testing.T) {
	n := newNet(t, 1)
	shim, spec := startPod(t, n, 0, "pod-logs", Container{Name: "web", Builtin: builtin.WebServer, Ports: []Port{{ContainerPort: 8080}}})
	var mu sync.Mutex
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Logs(context.Background(), writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		}), spec.StateDir, "", true)
	}()
	client := probe.HTTPClient(n.path(0))
	for i := range 3 {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:8080/follow/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status %d", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		got := buf.String()
		mu.Unlock()
		if strings.Contains(got, "GET /follow/2 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs -f did not show the requests:\n%s", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("logs -f ended while the pod runs")
	default:
	}
	if err := StopPod(shim, time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(3 * time.Second):
		t.Error("logs -f did not end when the pod stopped")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Pods started at once share an applet directory and a lab's cgroups
// without tripping over each other, and stop at once.
func TestConcurrentPods(t *testing.T) {
	n := newNet(t, 1)
	applets := filepath.Join(t.TempDir(), "bin")
	const pods = 6
	shims := make([]Shim, pods)
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() {
			opts := testOptions()
			opts.AppletDir = applets
			shims[i], errs[i] = StartPod(context.Background(), PodSpec{
				Lab: n.lab, Pod: fmt.Sprintf("pod%d", i), Namespace: n.path(0),
				StateDir:   filepath.Join(t.TempDir(), "pod"),
				Containers: []Container{{Name: "client", Builtin: builtin.Client}},
			}, opts)
		})
	}
	wg.Wait()
	var started []Shim
	for i, err := range errs {
		if err != nil {
			t.Errorf("pod%d: %v", i, err)
		} else {
			started = append(started, shims[i])
		}
	}
	if target, err := os.Readlink(filepath.Join(applets, "curl")); err != nil || target != testBinary() {
		t.Errorf("applet link curl -> %q, %v", target, err)
	}
	if err := StopPods(started, time.Second); err != nil {
		t.Error(err)
	}
	for _, s := range started {
		if left := PodProcesses(s); len(left) > 0 {
			t.Errorf("pod %s: processes %v left", s.Pod, left)
		}
	}
	if left := procsInNetns(n.path(0)); len(left) > 0 {
		t.Errorf("processes %v left in the namespace", left)
	}
	// The lab's cgroup directory went with its last pod.
	for _, s := range started {
		for _, dir := range s.Cgroups {
			if _, err := os.Stat(filepath.Dir(dir)); err == nil {
				t.Errorf("lab cgroup %s left", filepath.Dir(dir))
			}
		}
	}
}

// A pod outlives the process that started it (as it outlives `labctl up`),
// and another process (`labctl down`) stops it through the record.
func TestPodOutlivesStarter(t *testing.T) {
	n := newNet(t, 1)
	spec := PodSpec{Lab: n.lab, Pod: "pod-up", Namespace: n.path(0), PodIP: n.ips[0],
		StateDir:   filepath.Join(t.TempDir(), "pod-up"),
		Containers: []Container{{Name: "web", Builtin: builtin.WebServer}}}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(testBinary())
	cmd.Env = append(os.Environ(), "WLTEST_ROLE=startpod", "WLTEST_SPEC="+string(b))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter: %v", err)
	}
	var shim Shim
	if err := json.Unmarshal(out, &shim); err != nil {
		t.Fatalf("starter printed %q: %v", out, err)
	}
	t.Cleanup(func() { stopAndCheck(t, shim, n.path(0)) })
	// The starter is gone; the pod is not, and its parent is now someone
	// else (init or a subreaper).
	if !alive(shim.PID, shim.StartTime) {
		t.Fatal("the supervisor died with its starter")
	}
	resp, err := probe.HTTPClient(n.path(0)).Get("http://127.0.0.1/after-up")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != builtin.WebBody(n.ips[0], "/after-up") {
		t.Errorf("web server answered %q", body)
	}
	if err := StopPod(shim, time.Second); err != nil {
		t.Fatal(err)
	}
	if alive(shim.PID, shim.StartTime) {
		t.Errorf("the supervisor survived StopPod from another process")
	}
}

// Every thread of a supervisor is in the pod's _shim cgroups and every
// thread of a container in the container's, and no thread of the process
// that started the pod (here: this test) is left in any of the pod's
// cgroups: on cgroup v1 processes are forked from threads that stepped
// into their cgroups first, and those threads must never be reused.
func TestProcessesBornInTheirCgroups(t *testing.T) {
	n := newNet(t, 4)
	var shims []Shim
	var dirs []string
	// Several at once, as labctl up starts them.
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 4 {
		wg.Go(func() {
			shim, spec := startPod(t, n, i, fmt.Sprintf("pod-cg%d", i),
				Container{Name: "web", Builtin: builtin.WebServer, Ports: []Port{{ContainerPort: 8080 + i}}},
				Container{Name: "sleeper", Command: []string{"sleep", "60"}})
			mu.Lock()
			shims, dirs = append(shims, shim), append(dirs, spec.StateDir)
			mu.Unlock()
		})
	}
	wg.Wait()
	for i, shim := range shims {
		st, err := ReadStatus(dirs[i])
		if err != nil {
			t.Fatal(err)
		}
		if st.Cgroup.Name == cgroups.None {
			t.Skip("no cgroups on this machine")
		}
		want := map[int][]string{}
		for _, pd := range shim.Cgroups {
			want[shim.PID] = append(want[shim.PID], filepath.Join(pd, shimCgroup))
		}
		for _, c := range st.Containers {
			want[c.PID] = c.Cgroups
		}
		for pid, cgroups := range want {
			for _, tid := range threadsOf(t, pid) {
				for _, dir := range cgroups {
					if !slices.Contains(readTasks(t, dir), tid) {
						t.Errorf("pod %s: thread %d of process %d is not in %s", st.Pod, tid, pid, dir)
					}
				}
			}
		}
		ours := threadsOf(t, os.Getpid())
		for _, pd := range shim.Cgroups {
			_ = filepath.WalkDir(pd, func(path string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					for _, tid := range readTasks(t, path) {
						if slices.Contains(ours, tid) {
							t.Errorf("thread %d of the process that started the pods is in %s", tid, path)
						}
					}
				}
				return nil
			})
		}
	}
}

func threadsOf(t *testing.T, pid int) []int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids
}

// readTasks lists the threads in a cgroup (v1 tasks, v2 cgroup.threads).
func readTasks(t *testing.T, dir string) []int {
	for _, f := range []string{"tasks", "cgroup.threads"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		var ids []int
		for _, f := range strings.Fields(string(b)) {
			if id, err := strconv.Atoi(f); err == nil {
				ids = append(ids, id)
			}
		}
		return ids
	}
	return nil
}
