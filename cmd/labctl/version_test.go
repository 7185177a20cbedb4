package main

import (
	"bytes"
	"encoding/json"
	"github.com/labctl/labctl/internal/golden"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/lab"
)

func fakeBuildInfo() (*debug.BuildInfo, bool) {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/labctl/labctl", Version: "v0.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "CGO_ENABLED", Value: "0"}, {Key: "GOARCH", Value: "amd64"}, {Key: "GOOS", Value: "linux"},
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "514301ca04a74c3ea6c4aaea69252dcbad78d772"},
			{Key: "vcs.time", Value: "2026-12-04T16:36:50Z"}, {Key: "vcs.modified", Value: "true"},
		},
	}, true
}

// What `go version -m` shows, read back from the build info.
func TestReadBuildInfo(t *testing.T) {
	b := readBuildInfo(fakeBuildInfo)
	want := buildInfo{Version: "v0.4.0", Commit: "514301ca04a74c3ea6c4aaea69252dcbad78d772", CommitTime: "2026-12-04T16:36:50Z",
		Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64", CGO: "0"}
	if b != want {
		t.Errorf("readBuildInfo = %+v, want %+v", b, want)
	}
	if got := b.line(); got != "labctl version v0.4.0, commit 514301ca04a74c3ea6c4aaea69252dcbad78d772 (modified), go1.26.8" {
		t.Errorf("--version line %q", got)
	}
	if b := readBuildInfo(func() (*debug.BuildInfo, bool) { return nil, false }); b.Version != "unknown" {
		t.Errorf("without build info: %+v", b)
	}
	var out bytes.Buffer
	writeVersion(&out, readBuildInfo(fakeBuildInfo), lab.Features{Kernel: "6.18.44", IPIP: "userspace", VXLAN: true, NSGetID: true})
	golden.Check(t, "testdata/version.golden", out.Bytes())
}

// The binary's own build info, through the command line.
func TestVersionCommand(t *testing.T) {
	out, _, code := runCLI(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "labctl version ") || !strings.HasSuffix(out, ", "+runtime.Version()+"\n") {
		t.Errorf("--version: exit %d: %q", code, out)
	}
	out, _, code = runCLI(t, "version", "-o", "json")
	var doc versionDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("version -o json: exit %d, %v: %s", code, err, out)
	}
	if doc.Kind != "Version" || doc.APIVersion != apiVersion || doc.Build.GoVersion != runtime.Version() || doc.Host.Kernel == "" ||
		!strings.Contains("kernel userspace none", doc.Host.IPIP) {
		t.Errorf("version -o json: %+v", doc)
	}
	if _, stderr, code := runCLI(t, "version", "-o", "wide"); code != 2 || !strings.Contains(stderr, "table, json or yaml") {
		t.Errorf("version -o wide: exit %d: %s", code, stderr)
	}
}
