package applet

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/helper"
)

func TestMain(m *testing.M) {
	if code, ok := helper.Main(); ok {
		os.Exit(code)
	}
	if os.Getenv("APPLETTEST_CHILD") != "" {
		os.Exit(99) // a link that ran no applet: never the tests again
	}
	os.Exit(m.Run())
}

// A link named after each applet runs it: without arguments each says what
// is missing and exits as the real one does (curl 2, iputils ping 1).
func TestLinksRunApplets(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	codes := map[string]int{"curl": 2, "ping": 1}
	for _, name := range Names() {
		link := filepath.Join(dir, name)
		if err := os.Symlink(exe, link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link)
		cmd.Env = append(os.Environ(), "APPLETTEST_CHILD=1")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != codes[name] || !strings.Contains(strings.ToLower(string(out)), name) {
			t.Errorf("%s: %v: %s", name, err, out)
		}
	}
}

// Outside containers the host's program wins; an applet serves only where
// the host has none, and other names stay not found.
func TestProgram(t *testing.T) {
	exe := func() (string, error) { return "/labctl", nil }
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	if got, err := Program("ping", exe); err != nil || got != "/labctl" {
		t.Errorf("no host ping: Program = %q, %v; want the labctl executable", got, err)
	}
	if _, err := Program("tcpdump", exe); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("no host tcpdump: %v, want exec.ErrNotFound", err)
	}
	if _, err := Program("/usr/bin/nosuch/ping", exe); err == nil {
		t.Error("a path that does not exist was resolved")
	}
	host := filepath.Join(t.TempDir(), "ping")
	if err := os.WriteFile(host, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(host)+":"+empty)
	if got, err := Program("ping", exe); err != nil || got != host {
		t.Errorf("host ping: Program = %q, %v; want %s", got, err, host)
	}
}
