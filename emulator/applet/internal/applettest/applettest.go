// Package applettest is what the applets' tests share: the test binary
// that becomes the applet through a link, running a program inside a
// namespace the test made, and finding the real tool to compare with.
package applettest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/labctl/labctl/internal/nstest"
)

// Main runs the applet main when the test binary was called through a
// link named name, and the tests otherwise (with nstest's leak checks
// for names starting with prefix).
func Main(m *testing.M, prefix, name string, main func(args []string) int) {
	if filepath.Base(os.Args[0]) == name {
		os.Exit(main(os.Args[1:]))
	}
	nstest.Main(m, prefix)
}

// Link links the test binary as name in a temporary directory and returns
// the link: running it runs the applet.
func Link(t *testing.T, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// Real returns the host's name (found on PATH) when `name versionFlag`
// prints something starting with want, the version whose output the
// applet follows. Without it the comparison skips, or fails under
// LABCTL_REQUIRE_ROOT=1, where CI installs the Debian package pkg.
func Real(t *testing.T, name, versionFlag, want, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		out, _ := exec.Command(path, versionFlag).CombinedOutput()
		if bytes.HasPrefix(out, []byte(want)) {
			return path
		}
		err = fmt.Errorf("%s is not %s: %s", path, want, bytes.SplitN(out, []byte("\n"), 2)[0])
	}
	if os.Getenv("LABCTL_REQUIRE_ROOT") == "1" {
		t.Fatalf("compare with the real %s: %v (apt-get install %s)", name, err, pkg)
	}
	t.Skipf("compare with the real %s: %v", name, err)
	return ""
}

// Result is how a program ended and what it printed.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs prog with args in the named network namespace (with ip netns
// exec), in a temporary directory, with no input and a clean environment
// plus env.
func Run(t *testing.T, ns, prog string, env []string, args ...string) Result {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, prog}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent"}, env...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %q in %s: %v", prog, args, ns, err)
	}
	return Result{stdout.String(), stderr.String(), code}
}
