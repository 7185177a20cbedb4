package quietinit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func buildLabctl(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "labctl")
	cmd := exec.Command("go", "build", "-o", exe, "../../../cmd/labctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build labctl: %v\n%s", err, out)
	}
	return exe
}

// In the labctl binary this package is initialized before termenv (so
// before lipgloss and bubbletea), and the tui package after bubbletea: the
// order the package doc relies on.
func TestInitOrder(t *testing.T) {
	exe := buildLabctl(t)
	cmd := exec.Command(exe, "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("labctl --version: %v\n%s", err, out)
	}
	at := map[string]int{}
	for i, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			at[f[1]] = i + 1
		}
	}
	order := []string{
		"github.com/labctl/labctl/tui/internal/quietinit",
		"github.com/muesli/termenv",
		"github.com/charmbracelet/lipgloss",
		"github.com/charmbracelet/bubbletea",
		"github.com/labctl/labctl/tui",
	}
	for i, pkg := range order {
		if at[pkg] == 0 {
			t.Fatalf("no init of %s in labctl's trace:\n%s", pkg, out)
		}
		if i > 0 && at[pkg] < at[order[i-1]] {
			t.Errorf("%s is initialized before %s", pkg, order[i-1])
		}
	}
}

// labctl on a terminal that never answers asks it nothing and does not
// wait for it (script gives it one).
func TestNoQuestionToTheTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("needs script (util-linux)")
	}
	exe := buildLabctl(t)
	cmd := exec.Command(script, "-qc", exe+" --version", "/dev/null")
	// Without CI, as on a student's machine (termenv asks nothing with it).
	env := []string{"TERM=xterm-256color"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CI=") && !strings.HasPrefix(e, "TERM=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	start := time.Now()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("labctl --version on a silent terminal took %s", took)
	}
	if bytes.Contains(out, []byte("\x1b]11;?")) || bytes.Contains(out, []byte("\x1b[6n")) {
		t.Errorf("labctl asked the terminal: %q", out)
	}
	if !bytes.Contains(out, []byte("labctl version")) {
		t.Errorf("output %q", out)
	}
}
