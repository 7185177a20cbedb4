package workload

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/statedir"
)

// A pod's state directory is reached only through statedir (issue 8 item
// 4): a link planted there leads root nowhere. Root's files the links
// point at keep their content.
func TestPodStateDirLinksAreNotFollowed(t *testing.T) {
	n := newNet(t, 1)
	victimDir := t.TempDir()
	victims := map[string]string{}
	victim := func(name string) string {
		p := filepath.Join(victimDir, name)
		victims[p] = "root's " + name + "\n"
		if err := os.WriteFile(p, []byte(victims[p]), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plant := func(dir, name, target string) {
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		for p, want := range victims {
			if b, err := os.ReadFile(p); err != nil || string(b) != want {
				t.Errorf("%s: %q, %v; want %q untouched", p, b, err, want)
			}
		}
	}
	unsafe := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, statedir.ErrUnsafe) || !strings.Contains(err.Error(), "is a symbolic link") {
			t.Errorf("%s: %v; want it refused as a symbolic link", what, err)
		}
	}

	// StartPod would write pod.json through the link.
	planted := filepath.Join(t.TempDir(), "pod-planted")
	if err := os.Mkdir(planted, 0o755); err != nil {
		t.Fatal(err)
	}
	plant(planted, podFile, victim("pod.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shim, err := StartPod(ctx, PodSpec{Lab: n.lab, Pod: "pod-planted", Namespace: n.path(0), StateDir: planted,
		Containers: []Container{named(testCmd("sleep"), "app")}}, testOptions())
	if err == nil {
		stopAndCheck(t, shim, n.path(0))
		t.Fatal("StartPod wrote its spec into a directory holding a planted link")
	}
	unsafe("StartPod", err)
	check()

	// A running pod whose status, container log and stop request are
	// planted links: ReadStatus, Logs and StopPod read and write none of
	// what they point at.
	shim, spec := startPod(t, n, 0, "pod-links", named(testCmd("sleep"), "app"))
	plant(spec.StateDir, statusFile, victim("status.json"))
	plant(spec.StateDir, logName("app"), victim("app.log"))
	plant(spec.StateDir, stopFile, victim("stop"))
	_, err = ReadStatus(spec.StateDir)
	unsafe("ReadStatus", err)
	var out bytes.Buffer
	unsafe("Logs", Logs(ctx, &out, spec.StateDir, "app", false))
	if out.Len() > 0 {
		t.Errorf("Logs printed %q", out.String())
	}
	if err := StopPod(shim, time.Second); err != nil {
		t.Errorf("StopPod: %v", err)
	}
	check()
	// The stop request replaced the link rather than writing through it.
	if b, err := os.ReadFile(filepath.Join(spec.StateDir, stopFile)); err != nil || string(b) != "1s" {
		t.Errorf("stop request: %q, %v; want the link replaced by a file holding 1s", b, err)
	}
}
