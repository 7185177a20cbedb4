package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/internal/nstest"
)

// splitRun runs a command with env added to this process's environment
// and returns its stdout, stderr and exit code apart: curl writes its body
// and its trace to different streams, buffered differently.
func splitRun(t *testing.T, env []string, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	}
	t.Fatalf("run %s %v: %v", bin, args, err)
	return "", "", -1
}

// What two runs of the same ping or curl may print differently.
var toolNoise = regexp.MustCompile(`time=[0-9.]+ ms|time [0-9]+ms|= [0-9./]+ ms|Date: [^\r\n]*|after [0-9]+`)

// Which ping and curl a student gets, in a real lab through the real
// binary: the host's inside containers without a root filesystem (the
// applets are last in their PATH, and print what the real tools print),
// and labctl's applets outside containers where the host has none.
func TestPingAndCurlInLabs(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	for _, tool := range []string{"ping", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
				t.Fatalf("%s is not installed (CI installs iputils-ping and curl): %v", tool, err)
			}
			t.Skipf("needs the real %s to tell it from the applet: %v", tool, err)
		}
	}
	bin := buildLabctl(t)
	state := t.TempDir()
	path, name := copyTopology(t, "two-node.yaml", "tapl")
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})
	if out, code := run(t, bin, "--state-dir", state, "up", path); code != 0 {
		t.Fatalf("up: exit %d: %s", code, out)
	}
	labctl := func(env []string, args ...string) (string, string, int) {
		t.Helper()
		return splitRun(t, env, bin, append([]string{"--state-dir", state}, args...)...)
	}
	inClient := func(args ...string) []string {
		return append([]string{"exec", "pod1a", "-c", "curl-client", "--"}, args...)
	}

	t.Run("container: the host's tools first, the applets last", func(t *testing.T) {
		out, errOut, code := labctl(nil, inClient("sh", "-c", `command -v ping; command -v curl; ls "${PATH##*:}"; ping -V`)...)
		lines := strings.Split(out, "\n")
		if code != 0 || len(lines) < 6 {
			t.Fatalf("exit %d: %s%s", code, out, errOut)
		}
		if !strings.HasPrefix(lines[0], "/usr/") || !strings.HasPrefix(lines[1], "/usr/") || lines[2] != "curl" || lines[3] != "ping" {
			t.Errorf("want the host's ping and curl found first and the applet links last in PATH:\n%s", out)
		}
		if !strings.Contains(out, "iputils") || strings.Contains(out, "labctl applet") {
			t.Errorf("ping -V should be the host's:\n%s", out)
		}
	})

	// The applet, run through its link at the end of the container's
	// PATH, prints what the host's tool prints for the same command.
	applet := func(tool string, args ...string) []string {
		return inClient(append([]string{"sh", "-c", `exec "${PATH##*:}/` + tool + `" "$@"`, tool}, args...)...)
	}
	for _, tc := range []struct {
		tool string
		args []string
	}{
		{"ping", []string{"-c", "2", "-i", "0.2", "192.168.2.20"}}, // across nodes: ttl=62
		{"ping", []string{"-c", "1", "-t", "1", "192.168.2.20"}},   // node1 answers: Time to live exceeded
		{"curl", []string{"-sv", "192.168.2.20/from-pod1a"}},
		{"curl", []string{"-si", "-X", "POST", "192.168.2.20/"}}, // the python-like server's 501
		{"curl", []string{"-sS", "-m", "1", "192.168.2.99:80"}},
	} {
		t.Run("applet like "+tc.tool+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			wantOut, wantErr, wantCode := labctl(nil, inClient(append([]string{tc.tool}, tc.args...)...)...)
			gotOut, gotErr, gotCode := labctl(nil, applet(tc.tool, tc.args...)...)
			norm := func(s string) string { return toolNoise.ReplaceAllString(s, "X") }
			if norm(gotOut) != norm(wantOut) || norm(gotErr) != norm(wantErr) || gotCode != wantCode {
				t.Errorf("applet (exit %d):\n%s%s\nhost's %s (exit %d):\n%s%s", gotCode, gotOut, gotErr, tc.tool, wantCode, wantOut, wantErr)
			}
		})
	}

	t.Run("outside containers: the applet where the host has none", func(t *testing.T) {
		noTools := []string{"PATH=" + t.TempDir()}
		out, errOut, code := labctl(noTools, "exec", "node1", "--", "ping", "-V")
		if code != 0 || !strings.Contains(out, "labctl applet") {
			t.Errorf("ping -V without a host ping: exit %d: %s%s", code, out, errOut)
		}
		out, errOut, code = labctl(noTools, "exec", "node1", "--", "ping", "-c1", "10.30.45.200")
		if code != 0 || !strings.Contains(out, "1 packets transmitted, 1 received, 0% packet loss") {
			t.Errorf("ping without a host ping: exit %d: %s%s", code, out, errOut)
		}
		out, errOut, code = labctl(noTools, "exec", "node1", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{remote_ip}", "192.168.2.20")
		if code != 0 || out != "200 192.168.2.20" {
			t.Errorf("curl without a host curl: exit %d: %q %s", code, out, errOut)
		}
		if _, errOut, code = labctl(noTools, "exec", "node1", "--", "tcpdump"); code != 127 {
			t.Errorf("a missing program that is no applet: exit %d, want 127: %s", code, errOut)
		}
		out, _, code = labctl(nil, "exec", "node1", "--", "ping", "-V")
		if code != 0 || !strings.Contains(out, "iputils") {
			t.Errorf("ping -V with the host's ping: exit %d: %s", code, out)
		}
	})
}

// In a container with a root filesystem that has neither ping nor curl,
// through the real binary: labctl's applets serve, from /dev/.labctl at
// the end of the container's PATH, as its command and through exec; they
// resolve names with the pod's /etc/hosts; and the root filesystem on
// disk is unchanged once the lab is down.
func TestAppletsInRootFSContainer(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	bin := buildLabctl(t)
	state := t.TempDir()
	name := uniqueName("tar")
	// An image with nothing to run but its mount points and the files the
	// kubelet's are mounted on: the web server is labctl's builtin.
	root := t.TempDir()
	for _, d := range []string{"proc", "dev", "sys", "etc"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := nstest.Tree(t, root)
	path := writeTopology(t, fmt.Sprintf(`name: %s
network: {underlay: 10.30.45.0/24, clusterCIDR: 192.168.0.0/16}
nodes:
  - name: n1
    podCIDR: 192.168.1.0/24
    pods:
      - name: img
        ip: 192.168.1.10
        containers:
          - {name: web, builtin: web-server, rootfs: %[2]s}
          - {name: probe, command: [ping, -c, "1", -W, "5", 192.168.2.20], rootfs: %[2]s, restartPolicy: Never}
  - name: n2
    podCIDR: 192.168.2.0/24
    pods:
      - name: peer
        ip: 192.168.2.20
        containers:
          - {name: web, builtin: web-server}
`, name, root))
	t.Cleanup(func() {
		run(t, bin, "--state-dir", state, "down", name)
		assertNoNamespaces(t, name)
	})
	if out, code := run(t, bin, "--state-dir", state, "up", path); code != 0 {
		t.Fatalf("up: exit %d: %s", code, out)
	}
	labctl := func(args ...string) (string, string, int) {
		t.Helper()
		return splitRun(t, nil, bin, append([]string{"--state-dir", state}, args...)...)
	}
	inImage := func(args ...string) []string { return append([]string{"exec", "img", "-c", "web", "--"}, args...) }
	for _, tc := range []struct {
		name  string
		argv  []string
		wants []string
	}{
		// Two routers on the way: TTL 62.
		{"ping across nodes", inImage("ping", "-c1", "-W", "5", "192.168.2.20"), []string{"ttl=62", "1 packets transmitted, 1 received, 0% packet loss"}},
		{"ping is labctl's", inImage("ping", "-V"), []string{"labctl applet"}},
		{"curl across nodes", inImage("curl", "-s", "http://192.168.2.20/from-img"), []string{"HTTP Server IP address: 192.168.2.20\nRequest path: /from-img"}},
		// "img" is only in the pod's /etc/hosts, mounted into the root.
		{"curl by the pod's name", inImage("curl", "-s", "http://img/self"), []string{"HTTP Server IP address: 192.168.1.10\nRequest path: /self"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := labctl(tc.argv...)
			for _, want := range tc.wants {
				if code != 0 || !strings.Contains(out, want) {
					t.Errorf("%q: exit %d, want 0 and %q:\n%s%s", tc.argv, code, want, out, errOut)
				}
			}
		})
	}
	// The probe container's command, found by its init inside the root.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, errOut, _ := labctl("logs", "img", "-c", "probe")
		if strings.Contains(out, "1 packets transmitted, 1 received, 0% packet loss") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probe container's ping did not answer:\n%s%s", out, errOut)
		}
	}
	if out, code := run(t, bin, "--state-dir", state, "down", name); code != 0 {
		t.Fatalf("down: exit %d: %s", code, out)
	}
	if after := nstest.Tree(t, root); after != before {
		t.Errorf("the root filesystem changed on disk:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
