package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxTerm is a terminal of its own, run by a tmux server of its own (its
// socket named for the test), that the test types into and reads.
type tmuxTerm struct {
	t      *testing.T
	tmux   string
	socket string
}

func newTmux(t *testing.T, w, h int, command string) *tmuxTerm {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("needs tmux (apt-get install tmux; .ci/run installs it)")
	}
	term := &tmuxTerm{t: t, tmux: tmux, socket: uniqueName("labctl-e2e-tui")}
	// -f /dev/null: none of the machine's tmux configuration.
	term.run("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), command)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", term.socket, "kill-server").Run() })
	return term
}

func (term *tmuxTerm) run(args ...string) string {
	term.t.Helper()
	out, err := exec.Command(term.tmux, append([]string{"-L", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is what the terminal shows now, as text.
func (term *tmuxTerm) screen() string { return term.run("capture-pane", "-p", "-t", "tui") }

// keys types keys, by tmux's names (Enter, Down, Space) or as text.
func (term *tmuxTerm) keys(keys ...string) {
	term.run(append([]string{"send-keys", "-t", "tui"}, keys...)...)
}

// waitFor waits until the screen satisfies ok and returns it.
func (term *tmuxTerm) waitFor(what string, timeout time.Duration, ok func(string) bool) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := term.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("timed out after %s waiting for %s; the screen:\n%s", timeout, what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (term *tmuxTerm) waitText(timeout time.Duration, texts ...string) string {
	term.t.Helper()
	return term.waitFor(strings.Join(texts, " and "), timeout, func(s string) bool {
		for _, t := range texts {
			if !strings.Contains(s, t) {
				return false
			}
		}
		return true
	})
}

// cursorTo moves the topology pane's cursor (the line starting with "›")
// down to the line that starts with name.
func (term *tmuxTerm) cursorTo(name string) {
	term.t.Helper()
	at := regexp.MustCompile(`(?m)^› +` + regexp.QuoteMeta(name) + ` `)
	for range 80 {
		if at.MatchString(term.screen()) {
			return
		}
		term.keys("Down")
		time.Sleep(20 * time.Millisecond)
	}
	term.t.Fatalf("the cursor never reached %q:\n%s", name, term.screen())
}

// The real binary in a real terminal of 80×24 against a real VXLAN lab:
// pick pod1a, pod2 and the underlay in the topology pane, capture, fire a
// ping from the probe pane and see the echo request and reply in the
// packet list, encapsulated on the underlay, and the trace in the probe
// pane; then a resize redraws everything at the new size, and q quits
// cleanly.
func TestTUI(t *testing.T) {
	requireRoot(t)
	bin := buildLabctl(t)
	m := newManager(t)
	path, name := copyTopology(t, "two-node-vxlan.yaml", "tui")
	upLab(t, m, path)
	exitFile := filepath.Join(t.TempDir(), "exit")
	cmd := fmt.Sprintf("%q --state-dir %q tui %s; echo $? > %q", bin, m.StateDir, name, exitFile)
	term := newTmux(t, 80, 24, cmd)

	s := term.waitText(10*time.Second, "1 Topology", "pod1a", "q quit")
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 24 || !strings.Contains(lines[0], "labctl · "+name) || !strings.Contains(lines[23], "q quit") {
		t.Fatalf("the 80x24 frame is not tabs, pane, status and keys:\n%s", s)
	}

	for _, obj := range []string{"underlay", "pod1a", "pod2"} {
		term.cursorTo(obj)
		term.keys("Space")
	}
	s = term.screen()
	if n := strings.Count(s, "[x]"); n < 3 {
		t.Fatalf("%d interfaces picked:\n%s", n, s)
	}
	term.keys("c")
	term.waitText(10*time.Second, "capturing on", "display filter")

	term.keys("4")
	term.waitText(5*time.Second, "Probe", "From", "enter: ping pod1a → pod2")
	term.keys("Enter")
	s = term.waitText(20*time.Second, "3 of 3 echoes answered", "answer: echo reply from 192.168.2.20", "request: IP 192.168.1.10 > 192.168.2.20")
	// The trace goes on below the screen: scroll down to pod2's hop.
	delivered := regexp.MustCompile(`(?m)^ +[0-9]+ +[0-9.]+ +pod2 +eth0 .*delivered`)
	for i := 0; !delivered.MatchString(s); i++ {
		if i == 30 {
			t.Fatalf("the trace does not show the delivery in pod2:\n%s", s)
		}
		term.keys("Down")
		time.Sleep(20 * time.Millisecond)
		s = term.screen()
	}

	term.keys("2")
	s = term.waitFor("the echo request and reply in the packet list", 10*time.Second, func(s string) bool {
		return regexp.MustCompile(`pod1a:eth0 +Out +ICMP +192\.168\.1\.10 > 192\.168\.2\.20 echo request`).MatchString(s) &&
			regexp.MustCompile(`pod1a:eth0 +In +ICMP +192\.168\.2\.20 > 192\.168\.1\.10 echo reply`).MatchString(s) &&
			regexp.MustCompile(`underlay:veth-node[12] +\S+ +VXLAN/ICMP +192\.168\.`).MatchString(s)
	})
	if regexp.MustCompile(`[1-9][0-9]* dropped by kernel`).MatchString(s) {
		t.Errorf("the kernel dropped packets:\n%s", s)
	}

	// A larger terminal: every line redrawn for it, the detail of the
	// selected packet under the list.
	term.run("resize-window", "-t", "tui", "-x", "120", "-y", "40")
	s = term.waitText(5*time.Second, "── detail", "Headers")
	lines = strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 40 || !strings.Contains(lines[39], "q quit") {
		t.Errorf("after the resize the frame is %d lines:\n%s", len(lines), s)
	}

	term.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(exitFile)
		if err == nil && strings.TrimSpace(string(data)) != "" {
			if code := strings.TrimSpace(string(data)); code != "0" {
				t.Errorf("labctl tui exited %s", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("labctl tui did not quit on q:\n%s", term.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A topology file opens its graph alone, without root or a lab.
func TestTUIFile(t *testing.T) {
	bin := buildLabctl(t)
	file, _ := filepath.Abs(filepath.Join("..", "topologies", "three-node-mixed.yaml"))
	state := filepath.Join(t.TempDir(), "state")
	term := newTmux(t, 80, 24, fmt.Sprintf("%q --state-dir %q tui %q", bin, state, file))
	s := term.waitText(10*time.Second, "A topology file: nothing of it is running", "sudo labctl up", "node1  eth0 10.30.45.101/24")
	if strings.Contains(s, "2 Packets") {
		t.Errorf("a file shows more than its graph:\n%s", s)
	}
	term.keys("q")
}

// With --scenario the TUI grades the lab live: every check's result as it
// comes, then the score, and the lab unchanged.
func TestTUIScenario(t *testing.T) {
	requireRoot(t)
	bin := buildLabctl(t)
	m := newManager(t)
	path, name := copyTopology(t, "two-node.yaml", "tuisc")
	upLab(t, m, path)
	scenario, _ := filepath.Abs(shippedScenario("two-node-basics"))
	term := newTmux(t, 100, 30, fmt.Sprintf("%q --state-dir %q tui --scenario %q %s", bin, m.StateDir, scenario, name))
	term.waitText(10*time.Second, "5 Scenario")
	term.keys("5")
	term.waitText(5*time.Second, "8 checks, 13 points", "r grades the lab")
	term.keys("r")
	s := term.waitText(60*time.Second, "score 13/13 · 8 passed, 0 failed")
	if n := strings.Count(s, "✓ pass"); n != 8 {
		t.Errorf("%d checks shown passed, want 8:\n%s", n, s)
	}
	term.keys("q")
}
