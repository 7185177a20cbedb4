package workload

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/internal/nstest"
)

// A container with a root filesystem that lacks ping and curl finds
// labctl's at RootFSAppletDir, last on its PATH: as its command and through
// exec, read-only, working against another namespace; an image's own ping
// wins; and the root filesystem on disk is left exactly as it was.
func TestRootFSApplets(t *testing.T) {
	n := newNet(t, 2)
	exe := staticTestBinary(t)
	bare := makeStaticRootFS(t, exe, nil)
	// The image's own ping: a script that plays the args role.
	own := makeStaticRootFS(t, exe, map[string]string{"bin/ping": "#!/wltest\n"})
	before := map[string]string{bare: nstest.Tree(t, bare), own: nstest.Tree(t, own)}

	peer := n.ips[1]
	ctrs := []Container{
		{Name: "bare", Command: []string{"/wltest"}, RootFS: bare,
			Env: []EnvVar{{"WLTEST_ROLE", "report"}, {"WLTEST_SLEEP", "1"}}},
		{Name: "own", Command: []string{"/wltest"}, RootFS: own, Env: []EnvVar{{"WLTEST_ROLE", "sleep"}}},
		// Found by container init itself, in the root it entered.
		{Name: "pinger", Command: []string{"ping", "-c", "1", "-W", "5", peer}, RootFS: bare, RestartPolicy: RestartNever},
	}
	spec := PodSpec{Lab: n.lab, Pod: "pod-applets", Namespace: n.path(0), PodIP: n.ips[0],
		StateDir: filepath.Join(t.TempDir(), "pod-applets"), Containers: ctrs}
	opts := testOptions()
	opts.Executable = exe
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shim, err := StartPod(ctx, spec, opts)
	if err != nil {
		t.Fatalf("StartPod: %v", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopAndCheck(t, shim, n.path(0))
		}
	}
	t.Cleanup(stop)

	wantPath := "PATH=" + defaultPath + ":" + RootFSAppletDir
	st := waitStatus(t, spec.StateDir, 10*time.Second, "the report and the pinger's end", func(st PodStatus) bool {
		b, _ := os.ReadFile(LogPath(spec.StateDir, "bare"))
		return strings.Contains(string(b), "root=") && st.Containers[2].State == StateTerminated
	})
	if logs := readLog(t, spec.StateDir, "bare"); !hasLine(logs, wantPath) {
		t.Errorf("the container's PATH is not the image's directories, then %s: want %s in\n%s", RootFSAppletDir, wantPath, logs)
	}
	if term := st.Containers[2].Termination; term == nil || term.ExitCode != 0 ||
		!strings.Contains(readLog(t, spec.StateDir, "pinger"), "1 packets transmitted, 1 received, 0% packet loss") {
		t.Errorf("ping as a container's command: %+v:\n%s", term, readLog(t, spec.StateDir, "pinger"))
	}

	for _, tc := range []struct {
		name, container string
		argv, env       []string
		code            int
		stdout, stderr  string // substrings
	}{
		{"the applet pings another namespace", "bare", []string{"ping", "-c", "1", "-W", "5", peer}, nil, 0,
			"1 packets transmitted, 1 received, 0% packet loss", ""},
		{"ping is labctl's", "bare", []string{"ping", "-V"}, nil, 0, "labctl applet", ""},
		{"curl is labctl's", "bare", []string{"curl", "-V"}, nil, 0, "labctl applet", ""},
		{"found where PATH says", "bare", []string{"/wltest"}, []string{"WLTEST_ROLE=which", "WLTEST_NAMES=ping curl"}, 0,
			"ping=" + RootFSAppletDir + "/ping\ncurl=" + RootFSAppletDir + "/curl\n", ""},
		{"the binary is read-only through a link", "bare", []string{"/wltest"}, []string{"WLTEST_ROLE=writefile", "WLTEST_FILE=" + RootFSAppletDir + "/ping"}, 1,
			"", "read-only file system"},
		{"so is the directory", "bare", []string{"/wltest"}, []string{"WLTEST_ROLE=writefile", "WLTEST_FILE=" + RootFSAppletDir + "/tcpdump"}, 1,
			"", "read-only file system"},
		{"the image's own ping wins", "own", []string{"ping", "-c", "1", peer}, []string{"WLTEST_ROLE=args"}, 0,
			"args=/wltest /bin/ping -c 1 " + peer + "\n", ""},
		{"the applet where the image has none", "own", []string{"curl", "-V"}, nil, 0, "labctl applet", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: tc.container, Argv: tc.argv, Env: tc.env})
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exec %q in %s: exit %d (want %d), stdout %q (want %q), stderr %q (want %q)",
					tc.argv, tc.container, code, tc.code, out, tc.stdout, errOut, tc.stderr)
			}
		})
	}

	// The two mounts, as the container's mount namespace has them.
	mounts := mountOptions(t, fmt.Sprintf("/proc/%d/mountinfo", st.Containers[0].PID))
	for _, m := range []struct{ point, want string }{
		{RootFSAppletDir, "ro,nosuid,nodev,noexec"},
		{RootFSAppletDir + "/" + appletBinary, "ro,nosuid,nodev"},
	} {
		if got, ok := mounts[m.point]; !ok || !strings.HasPrefix(got, m.want) {
			t.Errorf("mount on %s: options %q (mounted: %v), want %s...", m.point, got, ok, m.want)
		}
	}
	if _, ok := mountOptions(t, "/proc/self/mountinfo")[RootFSAppletDir]; ok {
		t.Errorf("the applets' mount shows in the host's mount namespace")
	}

	stop()
	for root, was := range before {
		if now := nstest.Tree(t, root); now != was {
			t.Errorf("root filesystem %s changed on disk:\nbefore:\n%s\nafter:\n%s", root, was, now)
		}
	}
}

// A dynamically linked labctl cannot run inside an image, so containers
// with a root filesystem get no applets: not on their PATH, and exec says
// why ping is not found.
func TestRootFSAppletsNeedStaticBinary(t *testing.T) {
	if err := applet.StaticallyLinked(testBinary()); err == nil {
		t.Skip("the test binary is statically linked (CGO_ENABLED=0); TestRootFSApplets covers that case")
	}
	n := newNet(t, 1)
	root := makeRootFS(t) // with the test binary's shared libraries
	_, spec := startPod(t, n, 0, "pod-dynamic", Container{Name: "c", Command: []string{"/wltest"}, RootFS: root,
		Env: []EnvVar{{"WLTEST_ROLE", "sleep"}}})
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "c", Argv: []string{"/wltest"}, Env: []string{"WLTEST_ROLE=report"}})
	if code != 0 || !hasLine(out, "PATH="+defaultPath) {
		t.Errorf("PATH without applets: exit %d, want PATH=%s:\n%s%s", code, defaultPath, out, errOut)
	}
	// -V sends nothing, whatever answers.
	cmd, err := Command(ExecOptions{StateDir: spec.StateDir, Container: "c", Argv: []string{"ping", "-V"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err == nil {
		_ = cmd.Wait()
		t.Errorf("ping started in a root filesystem without ping or applets")
	} else if !errors.Is(err, ErrCommandNotFound) || !strings.Contains(err.Error(), "labctl's own ping cannot serve in a root filesystem: ") ||
		!strings.Contains(err.Error(), "is dynamically linked") {
		t.Errorf("ping in a root filesystem without applets: %v; want ErrCommandNotFound and why", err)
	}
	log, _ := os.ReadFile(filepath.Join(spec.StateDir, shimLog))
	if !strings.Contains(string(log), "containers with a root filesystem get no ping or curl of labctl's") {
		t.Errorf("the supervisor's log does not say why there are no applets:\n%s", log)
	}
}

// staticTestBinary builds this package's test binary without cgo: only a
// static labctl serves applets in a root filesystem, and `go test` links
// the test binary dynamically where cgo is available.
func staticTestBinary(t *testing.T) string {
	t.Helper()
	if applet.StaticallyLinked(testBinary()) == nil {
		return testBinary()
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building a static test binary needs go on PATH: %v", err)
	}
	exe := filepath.Join(t.TempDir(), "wltest.static")
	cmd := exec.Command(gobin, "test", "-c", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c with CGO_ENABLED=0: %v\n%s", err, out)
	}
	if err := applet.StaticallyLinked(exe); err != nil {
		t.Fatal(err)
	}
	return exe
}

// makeStaticRootFS builds a root filesystem as an image has it: a static
// binary as /wltest, /proc, /dev, /sys, /tmp, an empty /etc/hosts and
// /etc/resolv.conf (so that starting a container creates nothing in it),
// and the executable files given (path -> contents).
func makeStaticRootFS(t *testing.T, exe string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{"wltest": string(b), "etc/hosts": "", "etc/resolv.conf": ""}
	for p, data := range files {
		all[p] = data
	}
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, data := range all {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o755)
		if strings.HasPrefix(p, "etc/") {
			mode = 0o644
		}
		if err := os.WriteFile(dst, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// mountOptions maps the mount points of a mountinfo file to their per-mount
// options.
func mountOptions(t *testing.T, mountinfo string) map[string]string {
	t.Helper()
	f, err := os.Open(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 5 {
			m[fields[4]] = fields[5]
		}
	}
	return m
}

// BenchmarkMountApplets measures what the applets add to the start of a
// container with a root filesystem: mountApplets in a mount namespace of
// its own, on a tmpfs standing for the container's /dev.
//
//	sudo go test ./emulator/workload -run '^$' -bench MountApplets
func BenchmarkMountApplets(b *testing.B) {
	nstest.NeedRoot(b)
	dev := b.TempDir()
	done := make(chan error)
	go func() {
		// The thread never returns to the host's mount namespace: it
		// ends with the goroutine, and the namespace with it.
		runtime.LockOSThread()
		done <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", dev, "tmpfs", 0, "mode=755"); err != nil {
				return err
			}
			b.ResetTimer()
			for i := range b.N {
				if err := mountApplets(filepath.Join(dev, strconv.Itoa(i)), testBinary()); err != nil {
					return err
				}
			}
			b.StopTimer()
			return nil
		}()
	}()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
