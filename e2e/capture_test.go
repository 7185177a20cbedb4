package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/probe"
)

// captureRun is `labctl capture` running in the background.
type captureRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout bytes.Buffer
	mu     sync.Mutex
	stderr []string
	ready  chan struct{}
	done   chan error
}

// startCapture runs labctl capture and returns once it listens.
func startCapture(t *testing.T, c cli, args ...string) *captureRun {
	t.Helper()
	r := &captureRun{t: t, ready: make(chan struct{}), done: make(chan error, 1)}
	r.cmd = exec.Command(c.bin, append([]string{"--state-dir", c.state, "capture"}, args...)...)
	r.cmd.Stdout = &r.stdout
	pipe, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	go func() {
		sc := bufio.NewScanner(pipe)
		once := sync.Once{}
		for sc.Scan() {
			r.mu.Lock()
			r.stderr = append(r.stderr, sc.Text())
			r.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "labctl: listening on ") {
				once.Do(func() { close(r.ready) })
			}
		}
		r.done <- r.cmd.Wait()
	}()
	select {
	case <-r.ready:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("labctl capture %s ended before listening (%v):\n%s", strings.Join(args, " "), err, r.errText())
	case <-time.After(20 * time.Second):
		t.Fatalf("labctl capture %s does not start listening:\n%s", strings.Join(args, " "), r.errText())
	}
	return r
}

func (r *captureRun) errText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.stderr, "\n")
}

// wait waits for the capture to end by itself and returns its exit code.
func (r *captureRun) wait(d time.Duration) int {
	r.t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		r.t.Fatalf("labctl capture: %v", err)
	case <-time.After(d):
		r.t.Fatalf("labctl capture did not end within %v:\n%s", d, r.errText())
	}
	return -1
}

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is not installed (apt-get install %s)", name, pkg)
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatal(msg + "; LABCTL_REQUIRE_ROOT=1 forbids skipping")
	}
	t.Skip(msg)
	return ""
}

func pingPods(t *testing.T, labName, from, to string, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dst := map[string]string{"pod2": "192.168.2.20", "pod1b": "192.168.1.20"}[to]
	res, err := probe.Ping(ctx, nsOf(labName, from), netip.MustParseAddr(dst), probe.PingOptions{Count: count, Interval: 50 * time.Millisecond})
	if err != nil || res.Received != count {
		t.Fatalf("ping %s -> %s: %d/%d, %v", from, to, res.Received, res.Sent, err)
	}
}

// TestCaptureCLI watches a VXLAN lab with labctl capture: a node's cable
// and a pod's eth0 at once into one pcapng file that tshark, capinfos and
// tcpdump read with the right interface names and the pod's ICMP inside
// the tunnel; filters, in tcpdump's language and on the inner packet; and
// the ways a capture ends: a count, a duration, Ctrl-C.
func TestCaptureCLI(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	tshark := needTool(t, "tshark", "tshark")
	tcpdump := needTool(t, "tcpdump", "tcpdump")
	capinfos := needTool(t, "capinfos", "wireshark-common")
	c := newCLI(t)
	_, name := c.up("two-node-vxlan.yaml", "tcap")

	t.Run("two interfaces into one file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "lab.pcapng")
		r := startCapture(t, c, name, "node1:eth0", "pod2:eth0", "-w", file, "-f", "icmp or udp port 8472", "-c", "8")
		pingPods(t, name, "pod1a", "pod2", 2)
		if code := r.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, r.errText())
		}
		if !strings.Contains(r.errText(), "8 packets captured, 0 dropped by kernel") {
			t.Errorf("summary:\n%s", r.errText())
		}
		out := runOK(t, tshark, "-r", file, "-d", "udp.port==8472,vxlan", "-T", "fields", "-E", "separator=|",
			"-e", "frame.interface_name", "-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type")
		want := []string{
			"node1:eth0|1|10.30.45.100,192.168.1.10|10.30.45.200,192.168.2.20|8",
			"pod2:eth0||192.168.1.10|192.168.2.20|8",
			"pod2:eth0||192.168.2.20|192.168.1.10|0",
			"node1:eth0|1|10.30.45.200,192.168.2.20|10.30.45.100,192.168.1.10|0",
		}
		want = append(want, want...) // two pings
		if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
			t.Errorf("tshark:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
		}
		info := runOK(t, capinfos, "-I", file)
		for _, w := range []string{"Number of interfaces in file: 2", "Name = node1:eth0", "Name = pod2:eth0",
			"Description = eth0 in network namespace " + name + "-pod2 (pod2)", "Capture length = 262144"} {
			if !strings.Contains(info, w) {
				t.Errorf("capinfos -I does not say %q:\n%s", w, info)
			}
		}
		dump := runOK(t, tcpdump, "-r", file, "-n")
		if n := strings.Count(dump, "ICMP echo request"); n != 4 {
			t.Errorf("tcpdump shows %d echo requests, want 4 (2 outer, 2 inner):\n%s", n, dump)
		}
	})

	t.Run("filters", func(t *testing.T) {
		for _, tt := range []struct {
			args  []string
			count int
			match *regexp.Regexp
		}{
			// Pod addresses inside the tunnel, on the underlay switch.
			{[]string{"underlay:veth-node1", "-f", "inner host 192.168.2.20 and inner icmp"}, 2,
				regexp.MustCompile(`^\S+ underlay:veth-node1 (P|Out) IP 10\.30\.45\.\d+\.\d+ > 10\.30\.45\.\d+\.8472: VXLAN, flags \[I\] \(0x08\), vni 1: IP 192\.168\.[12]\.\d+ > 192\.168\.[12]\.\d+: ICMP echo (request|reply)`)},
			// tcpdump's language on the outer headers.
			{[]string{"node2", "-f", "udp dst port 8472 and src host 10.30.45.100"}, 1,
				regexp.MustCompile(`^\S+ node2:eth0 In IP 10\.30\.45\.100\.\d+ > 10\.30\.45\.200\.8472: VXLAN`)},
			{[]string{"pod2:eth0", "pod1a:eth0", "-f", "icmp[0] == 8 or icmp and dst host 192.168.1.10"}, 0, nil},
			{[]string{"pod2", "-f", "icmp and dst host 192.168.1.10"}, 1,
				regexp.MustCompile(`^\S+ pod2:eth0 Out IP 192\.168\.2\.20 > 192\.168\.1\.10: ICMP echo reply`)},
		} {
			args := append([]string{name}, tt.args...)
			if tt.match == nil {
				out, code := c.run(append([]string{"capture"}, args...)...)
				if code != 2 || !strings.Contains(out, "header bytes (icmp[0]) are not supported") {
					t.Errorf("capture %s: exit %d:\n%s", strings.Join(tt.args, " "), code, out)
				}
				continue
			}
			r := startCapture(t, c, append(args, "-c", fmt.Sprint(tt.count))...)
			pingPods(t, name, "pod1a", "pod2", 2)
			if code := r.wait(10 * time.Second); code != 0 {
				t.Fatalf("capture %s: exit %d:\n%s", strings.Join(tt.args, " "), code, r.errText())
			}
			lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
			if len(lines) != tt.count {
				t.Errorf("capture %s: %d lines, want %d:\n%s", strings.Join(tt.args, " "), len(lines), tt.count, r.stdout.String())
			}
			for _, l := range lines {
				if !tt.match.MatchString(l) {
					t.Errorf("capture %s printed\n  %s\nwant %s", strings.Join(tt.args, " "), l, tt.match)
				}
			}
		}
	})

	t.Run("targets", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"node9"}, 4, `lab "` + name + `" has no node, pod or external host "node9" (it has: underlay, node1, pod1a, pod1b, node2, pod2)`},
			{[]string{"node1:eth9"}, 4, `node1 has no interface "eth9" (it has: br0, eth0, flannel.1, lo, veth-pod1a, veth-pod1b)`},
			{[]string{"node1:a/b"}, 2, `target "node1:a/b": not an interface name`},
			{[]string{"*:nothing0"}, 4, `no interface of lab "` + name + `" matches *:nothing0`},
			{nil, 2, "capture needs a lab and at least one target"},
		} {
			out, code := c.run(append([]string{"capture", name}, tt.args...)...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("capture %s: exit %d:\n%s\nwant exit %d and %q", strings.Join(tt.args, " "), code, out, tt.code, tt.want)
			}
		}
		// "*:eth0" is every eth0 the lab has: the nodes' and the pods'.
		r := startCapture(t, c, name, "*:eth0", "--duration", "100ms")
		r.wait(10 * time.Second)
		if !strings.Contains(r.errText(), "listening on node1:eth0 (Ethernet), pod1a:eth0 (Ethernet), pod1b:eth0 (Ethernet), node2:eth0 (Ethernet), pod2:eth0 (Ethernet),") {
			t.Errorf("*:eth0:\n%s", r.errText())
		}
	})

	t.Run("duration", func(t *testing.T) {
		start := time.Now()
		r := startCapture(t, c, name, "pod1b", "--duration", "1s")
		if code := r.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, r.errText())
		}
		if took := time.Since(start); took < time.Second || took > 5*time.Second {
			t.Errorf("a 1s capture took %v", took)
		}
		if !strings.Contains(r.errText(), "0 packets captured, 0 dropped by kernel") {
			t.Errorf("summary:\n%s", r.errText())
		}
	})

	t.Run("ctrl-c leaves a complete file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "all.pcapng")
		r := startCapture(t, c, name, "*", "-w", file)
		pingPods(t, name, "pod1a", "pod2", 3)
		if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := r.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, r.errText())
		}
		m := regexp.MustCompile(`(?m)^(\d+) packets captured, 0 dropped by kernel$`).FindStringSubmatch(r.errText())
		if m == nil {
			t.Fatalf("summary:\n%s", r.errText())
		}
		// Every hop of every echo: pod1a, node1 (veth, bridge, flannel.1,
		// eth0), the underlay's two ports, node2's four and pod2, both
		// ways, and whatever ARP the lab had to do.
		out := runOK(t, tshark, "-r", file, "-d", "udp.port==8472,vxlan", "-Y", "icmp.type == 8 && ip.dst == 192.168.2.20", "-T", "fields", "-e", "frame.interface_name")
		hops := map[string]int{}
		for _, l := range strings.Fields(out) {
			hops[l]++
		}
		for _, where := range []string{"pod1a:eth0", "node1:veth-pod1a", "node1:br0", "node1:flannel.1", "node1:eth0",
			"underlay:veth-node1", "underlay:veth-node2", "node2:eth0", "node2:flannel.1", "node2:br0", "node2:veth-pod2", "pod2:eth0"} {
			if hops[where] != 3 {
				t.Errorf("%s: %d echo requests in the file, want 3 (all: %v)", where, hops[where], hops)
			}
		}
		runOK(t, tcpdump, "-r", file, "-n") // reads it: one link type throughout
		if info := runOK(t, capinfos, "-c", "-M", file); !strings.Contains(info, "Number of packets:   "+m[1]+"\n") {
			t.Errorf("labctl captured %s packets, capinfos says:\n%s", m[1], info)
		}
	})
}

func runOK(t *testing.T, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", filepath.Base(tool), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
