package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/labctl/labctl/emulator/lab"
)

// buildInfo is what the Go toolchain recorded in the binary, as
// `go version -m labctl` shows it.
type buildInfo struct {
	// Version is the module version: a tag for `go install ...@v1.2.3`,
	// "(devel)" for a build from a checkout.
	Version string `json:"version"`
	// Commit, CommitTime and Modified come from the checkout the binary
	// was built in (vcs.revision, vcs.time, vcs.modified); empty when it
	// was not built in one (go build -buildvcs=false, go run).
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commitTime,omitempty"`
	Modified   bool   `json:"modified"`
	GoVersion  string `json:"goVersion"`
	Platform   string `json:"platform"`
	CGO        string `json:"cgo,omitempty"`
}

// versionDoc is `labctl version -o json`: the build, then what this
// host's kernel offers labctl.
type versionDoc struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Build      buildInfo    `json:"build"`
	Host       lab.Features `json:"host"`
}

func readBuildInfo(read func() (*debug.BuildInfo, bool)) buildInfo {
	b := buildInfo{Version: "unknown"}
	info, ok := read()
	if !ok {
		return b
	}
	b.Version, b.GoVersion = info.Main.Version, info.GoVersion
	var goos, goarch string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		case "CGO_ENABLED":
			b.CGO = s.Value
		}
	}
	if goos != "" {
		b.Platform = goos + "/" + goarch
	}
	return b
}

// line is the build in one line, for --version.
func (b buildInfo) line() string {
	s := "labctl version " + b.Version
	if b.Commit != "" {
		s += ", commit " + b.Commit
		if b.Modified {
			s += " (modified)"
		}
	}
	return s + ", " + b.GoVersion
}

type versionOptions struct {
	io       Streams
	output   string
	build    buildInfo
	features func() lab.Features
}

func newVersionCmd(g *globals, build buildInfo) *cobra.Command {
	o := &versionOptions{io: g.io, build: build, features: lab.HostFeatures}
	cmd := &cobra.Command{
		Use:   "version [flags]",
		Short: "Print labctl's version, commit and Go version, and the kernel features it finds here",
		Long: `Print the module version, the commit the binary was built from (and whether
the checkout had uncommitted changes), and the Go version, as the Go toolchain
recorded them in the binary (go version -m shows the same). Then what this
host's kernel offers labctl: the ipip module or labctl's userspace IPIP
datapath, the vxlan module, and NS_GET_ID. No root needed.`,
		Example: `  labctl version
  labctl --version
  labctl version -o json | jq -r .build.commit`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error { return runVersion(o) },
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", outTable, "output format: table, json or yaml")
	return cmd
}

func runVersion(o *versionOptions) error {
	switch o.output {
	case outJSON, outYAML:
		return writeDoc(o.io.Out, o.output, versionDoc{APIVersion: apiVersion, Kind: "Version", Build: o.build, Host: o.features()})
	case outTable:
		writeVersion(o.io.Out, o.build, o.features())
		return nil
	}
	return usageErrorf("unknown output format %q (use table, json or yaml)", o.output)
}

func writeVersion(w io.Writer, b buildInfo, f lab.Features) {
	t := newTable(w, "")
	t.row("labctl", b.Version)
	commit := "unknown (not built in a git checkout)"
	if b.Commit != "" {
		commit = b.Commit
		var notes []string
		if b.CommitTime != "" {
			notes = append(notes, b.CommitTime)
		}
		if b.Modified {
			notes = append(notes, "with uncommitted changes")
		}
		if len(notes) > 0 {
			commit += " (" + strings.Join(notes, ", ") + ")"
		}
	}
	t.row("commit", commit)
	goLine := b.GoVersion + " " + b.Platform
	if b.CGO != "" {
		goLine += ", CGO_ENABLED=" + b.CGO
	}
	t.row("go", goLine)
	t.flush()
	fmt.Fprintln(w, "\nThis host's kernel:")
	t = newTable(w, "  ")
	t.row("release", dash(f.Kernel))
	ipip := map[string]string{
		"kernel":    "the ipip module serves tunl0",
		"userspace": "no ipip module: labctl's userspace datapath serves tunl0 (a TUN device)",
		"none":      "neither the ipip module nor /dev/net/tun: the ipip backend cannot run here",
	}[f.IPIP]
	t.row("ipip", ipip)
	vxlan := "the vxlan module is available"
	if !f.VXLAN {
		vxlan = "no vxlan module: the vxlan backend cannot run here"
	}
	t.row("vxlan", vxlan)
	ns := "NS_GET_ID: namespace cookies are read without entering namespaces"
	if !f.NSGetID {
		ns = "no NS_GET_ID (before Linux 6.18): namespace cookies are read from a socket inside each namespace"
	}
	t.row("namespaces", ns)
	t.flush()
}
