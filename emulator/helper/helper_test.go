package helper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/internal/nstest"
)

// The test binary is also the labctl binary of these tests: Start runs it
// as the helper "test", and as the applet "helpertest-echo" through a link.
var testPrefix = nstest.Prefix("helper")

func TestMain(m *testing.M) {
	if code, ok := Main(); ok {
		os.Exit(code)
	}
	nstest.Main(m, testPrefix)
}

// testConfig tells the test role what to do.
type testConfig struct {
	Say    string // printed to stdout (the log) first
	Report string // "ok", "error" (Ready with Say), "none" (exit without a report), "never" (hang)
	Exit   int    // the exit code after "none"
}

func init() {
	Register("test", testRole)
	RegisterApplet("helpertest-echo", func(args []string) int {
		fmt.Println(strings.Join(args, " "))
		return 3
	})
}

func testRole(ctx context.Context, cfg testConfig) int {
	fmt.Printf("say: %s\n", cfg.Say)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LABCTL_HELPER") {
			fmt.Printf("leaked: %s\n", kv)
		}
	}
	switch cfg.Report {
	case "ok":
		Ready(nil)
		Ready(errors.New("a second report is ignored"))
	case "error":
		Ready(errors.New(cfg.Say))
		return 1
	case "none":
		return cfg.Exit
	case "never":
	}
	<-ctx.Done() // without a namespace to watch: until SIGTERM
	fmt.Printf("stopping: %v\n", context.Cause(ctx))
	return 0
}

func testBinary(t testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// helperLog is a log file for a helper, closed when the test ends.
func helperLog(t *testing.T) (*os.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "helper.log")
	log, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return log, path
}

// gone checks that a helper Start gave up on was stopped and reaped.
func gone(t *testing.T, id process.ID) {
	t.Helper()
	if id.PID == 0 {
		t.Fatalf("no process identity")
	}
	if id.Alive() {
		t.Errorf("helper %d still runs", id.PID)
		_ = id.Stop(0)
	}
	if _, err := process.ReadStat(id.PID); err == nil {
		t.Errorf("helper %d was not reaped", id.PID)
	}
}

func TestStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		role    string
		cfg     testConfig
		timeout time.Duration
		cancel  time.Duration
		check   func(error) bool
		want    string // in the error
	}{
		{name: "ready", role: "test", cfg: testConfig{Say: "hello", Report: "ok"}},
		{name: "error", role: "test", cfg: testConfig{Say: "port 80 is in use\nsecond line", Report: "error"},
			check: func(err error) bool {
				var r *ReportedError
				return errors.As(err, &r) && r.Msg == "port 80 is in use\nsecond line"
			}},
		{name: "exited", role: "test", cfg: testConfig{Report: "none", Exit: 4},
			check: func(err error) bool { return errors.Is(err, ErrNoReport) }, want: "exited before it was ready"},
		{name: "timeout", role: "test", cfg: testConfig{Report: "never"}, timeout: 300 * time.Millisecond,
			check: func(err error) bool { return errors.Is(err, ErrNotReady) }, want: "not ready within 300ms"},
		{name: "cancelled", role: "test", cfg: testConfig{Report: "never"}, cancel: 200 * time.Millisecond,
			check: func(err error) bool { return errors.Is(err, context.Canceled) }},
		{name: "unknown role", role: "helpertest-nonesuch",
			check: func(err error) bool {
				var r *ReportedError
				return errors.As(err, &r)
			}, want: `unknown LABCTL_HELPER_ROLE="helpertest-nonesuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logPath := helperLog(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			id, err := Start(ctx, Options{
				Role: tc.role, Config: tc.cfg, Executable: testBinary(t),
				Args: []string{"helpertest", tc.name}, Log: log, ReadyTimeout: tc.timeout,
				StopGrace: time.Second,
			})
			took := time.Since(start)
			b, _ := os.ReadFile(logPath)
			if tc.check == nil {
				if err != nil {
					t.Fatalf("Start: %v; log:\n%s", err, b)
				}
				defer gone(t, id)
				defer func() {
					if err := id.Stop(time.Second); err != nil {
						t.Error(err)
					}
				}()
				if !id.Alive() {
					t.Fatalf("helper not running after Start")
				}
				if !strings.Contains(string(b), "say: "+tc.cfg.Say+"\n") || strings.Contains(string(b), "leaked") {
					t.Errorf("log:\n%s", b)
				}
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", id.PID))
				if string(cmdline) != "helpertest\x00ready\x00" {
					t.Errorf("argv %q", cmdline)
				}
				if sid, _ := unix.Getsid(id.PID); sid != id.PID {
					t.Errorf("the helper is not in a session of its own (sid %d)", sid)
				}
				return
			}
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start: %v (%T); log:\n%s", err, err, b)
			}
			if took > 5*time.Second {
				t.Errorf("Start took %v to fail", took)
			}
			gone(t, id)
		})
	}
}

// A cancelled context keeps Start from starting anything.
func TestStartCancelledBefore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id, err := Start(ctx, Options{Role: "test", Executable: testBinary(t)})
	if !errors.Is(err, context.Canceled) || id != (process.ID{}) {
		t.Errorf("Start = %+v, %v", id, err)
	}
}

func TestAwaitReady(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write string
		open  bool // keep the write end open
		check func(error) bool
	}{
		{"ok", "ok", false, func(err error) bool { return err == nil }},
		{"error", "error: no tunl0 device", false, func(err error) bool {
			var r *ReportedError
			return errors.As(err, &r) && r.Error() == "no tunl0 device"
		}},
		{"closed", "", false, func(err error) bool { return errors.Is(err, ErrNoReport) }},
		{"garbage", "ready!", false, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), `reported "ready!"`)
		}},
		{"silent", "", true, func(err error) bool { return errors.Is(err, ErrNotReady) }},
		{"ok without closing", "ok", true, func(err error) bool { return errors.Is(err, ErrNotReady) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			_, _ = w.WriteString(tc.write)
			if !tc.open {
				w.Close()
			}
			err = AwaitReady(context.Background(), r, 100*time.Millisecond)
			if !tc.check(err) {
				t.Errorf("AwaitReady = %v", err)
			}
		})
	}
}

// Command runs a role without a ready pipe; Ready does nothing there.
func TestCommand(t *testing.T) {
	cmd, err := Command(testBinary(t), "test", testConfig{Say: "from exec", Report: "none", Exit: 7}, "helpertest-command")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 || string(out) != "say: from exec\n" {
		t.Errorf("Command: %v, output %q", err, out)
	}
	cmd, _ = Command(testBinary(t), "test", testConfig{Say: "ready into nothing", Report: "error"})
	if out, err := cmd.Output(); !errors.As(err, &exit) || exit.ExitCode() != 1 || string(out) != "say: ready into nothing\n" {
		t.Errorf("Command: %v, output %q", err, out)
	}
}

// A link named after an applet runs it; Main leaves other names alone.
func TestApplet(t *testing.T) {
	link := filepath.Join(t.TempDir(), "helpertest-echo")
	if err := os.Symlink(testBinary(t), link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, "a", "b c").Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || string(out) != "a b c\n" {
		t.Errorf("applet: %v, output %q", err, out)
	}
	if _, handled := Main(); handled {
		t.Errorf("Main handled the test binary itself")
	}
}

func TestRegisterTwice(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("registering a role twice did not panic")
		}
	}()
	Register("test", func(context.Context, struct{}) int { return 0 })
}

// A helper runs in the namespace it was started in and ends when that
// namespace's name is deleted, or names another namespace.
func TestNamespaceWatch(t *testing.T) {
	nstest.NeedRoot(t)
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			name := nstest.AddNamespace(t, nstest.Unique(testPrefix))
			path := netns.Path(name)
			log, logPath := helperLog(t)
			id, err := Start(context.Background(), Options{
				Role: "test", Config: testConfig{Report: "ok"}, Executable: testBinary(t),
				Namespace: path, Cloneflags: unix.CLONE_NEWUTS, Log: log,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = id.Stop(time.Second)
				gone(t, id)
			})
			if !sameFile(path, fmt.Sprintf("/proc/%d/ns/net", id.PID)) {
				t.Fatalf("the helper does not run in %s", path)
			}
			if sameFile("/proc/self/ns/uts", fmt.Sprintf("/proc/%d/ns/uts", id.PID)) {
				t.Errorf("the helper did not get a UTS namespace of its own")
			}
			time.Sleep(watchInterval + 200*time.Millisecond)
			if !id.Alive() {
				t.Fatalf("the helper ended while its namespace is there")
			}
			nstest.IP(t, "netns", "del", name)
			if how == "replaced" {
				nstest.IP(t, "netns", "add", name)
			}
			fd, err := id.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if !process.Wait(fd, 5*watchInterval) {
				t.Fatalf("the helper still runs %v after its namespace was %s", 5*watchInterval, how)
			}
			b, _ := os.ReadFile(logPath)
			if want := "stopping: network namespace is gone: " + path + "\n"; !strings.HasSuffix(string(b), want) {
				t.Errorf("log:\n%s\nwant it to end in %q", b, want)
			}
		})
	}
}

// Prepare makes the namespace the helper is born in (here a UTS namespace
// with a hostname of its own) on a thread thrown away afterwards, and with
// NoReport Start returns without waiting for the helper to report.
func TestStartPrepared(t *testing.T) {
	nstest.NeedRoot(t)
	name := nstest.AddNamespace(t, nstest.Unique(testPrefix))
	host, _ := os.Hostname()
	log, logPath := helperLog(t)
	id, err := Start(context.Background(), Options{
		Role: "test", Config: testConfig{Say: "prepared", Report: "never"}, Executable: testBinary(t),
		Namespace: netns.Path(name), Log: log, NoReport: true,
		Prepare: func() error {
			if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
				return err
			}
			return unix.Sethostname([]byte("helpertest-uts"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = id.Stop(time.Second)
		gone(t, id)
	})
	uts := fmt.Sprintf("/proc/%d/ns/uts", id.PID)
	if sameFile("/proc/self/ns/uts", uts) || !sameFile(netns.Path(name), fmt.Sprintf("/proc/%d/ns/net", id.PID)) {
		t.Fatalf("the helper is not in a UTS namespace of its own in %s", name)
	}
	// The helper's UTS namespace has the hostname Prepare set; no thread
	// of this process kept it.
	out, err := exec.Command("nsenter", "--uts="+uts, "hostname").Output()
	if err == nil && strings.TrimSpace(string(out)) != "helpertest-uts" {
		t.Errorf("hostname in the helper's namespace: %q", out)
	}
	if now, _ := os.Hostname(); now != host {
		t.Errorf("this process's hostname is now %q, was %q", now, host)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if sameFile("/proc/self/task/"+task.Name()+"/ns/uts", uts) {
			t.Errorf("thread %s of this process stayed in the helper's UTS namespace", task.Name())
		}
	}
	// No ready pipe: the helper comes up in its own time and runs on.
	deadline := time.Now().Add(5 * time.Second)
	b, _ := os.ReadFile(logPath)
	for !strings.Contains(string(b), "say: prepared") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		b, _ = os.ReadFile(logPath)
	}
	if !id.Alive() || !strings.Contains(string(b), "say: prepared") {
		t.Errorf("helper alive %v, log:\n%s", id.Alive(), b)
	}
}

// With cgroups, a helper is born in them (cgroup v1), and no thread of the
// starting process is left behind in them.
func TestBornInCgroups(t *testing.T) {
	nstest.NeedRoot(t)
	d, err := cgroups.Detect(cgroups.Auto)
	if err != nil {
		t.Fatal(err)
	}
	if !d.BornIn() {
		t.Skipf("%s: helpers are born in cgroups only on cgroup v1", d)
	}
	lab := nstest.Unique(testPrefix)
	pod, err := d.CreatePod(lab, "pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, dir := range pod.Dirs() {
			if err := cgroups.RemovePod(dir); err != nil {
				t.Error(err)
			}
		}
		for _, dir := range d.LabDirs(lab) {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("lab cgroup %s left", dir)
			}
		}
	})
	dirs, err := pod.Child("helper")
	if err != nil {
		t.Fatal(err)
	}
	name := nstest.AddNamespace(t, nstest.Unique(testPrefix))
	id, err := Start(context.Background(), Options{
		Role: "test", Config: testConfig{Report: "ok"}, Executable: testBinary(t),
		Namespace: netns.Path(name), Cgroups: dirs,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gone(t, id)
	defer func() { _ = id.Stop(time.Second) }()
	for _, dir := range dirs {
		procs := cgroups.Procs(dir)
		if len(procs) != 1 || procs[0] != id.PID {
			t.Errorf("cgroup %s holds %v, want the helper %d", dir, procs, id.PID)
		}
	}
	ours, _ := os.ReadDir("/proc/self/task")
	for _, dir := range dirs {
		tasks, _ := os.ReadFile(filepath.Join(dir, "tasks"))
		for _, tid := range strings.Fields(string(tasks)) {
			for _, e := range ours {
				if e.Name() == tid {
					t.Errorf("thread %s of the starting process is in %s", tid, dir)
				}
			}
		}
	}
}

func sameFile(a, b string) bool {
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
