package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/graph"
	"github.com/labctl/labctl/emulator/spec"
)

// labctl graph FILE prints the graph package's forms, needs no root and
// no lab; its mistakes exit with the README's codes.
func TestGraphCommand(t *testing.T) {
	file := filepath.Join("..", "..", "topologies", "three-node-mixed.yaml")
	topo, err := spec.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	g := graph.FromTopology(topo)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"graph", file}, g.Text()},
		{[]string{"graph", file, "-o", "text"}, g.Text()},
		{[]string{"graph", file, "-o", "mermaid"}, g.Mermaid()},
		{[]string{"graph", "-o", "dot", file}, g.Dot()},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != 0 || out != tc.want {
			t.Errorf("labctl %s: exit %d, stderr %q, output:\n%s", strings.Join(tc.args, " "), code, errOut, out)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"graph"}, exitUsage, "graph takes a topology file"},
		{[]string{"graph", file, "-o", "png"}, exitUsage, `-o "png"`},
		{[]string{"graph", "no-such.yaml"}, exitInvalid, "no-such.yaml"},
		{[]string{"graph", "no-such-lab"}, exitNotFound, "no-such-lab"},
		{[]string{"graph", "../x"}, exitUsage, "does not name a lab"},
	} {
		_, errOut, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.says) {
			t.Errorf("labctl %s: exit %d (want %d), stderr %q (want it to say %q)", strings.Join(tc.args, " "), code, tc.code, errOut, tc.says)
		}
	}
}

// Bad trace command lines exit 2 before anything is looked up; an unknown
// lab exits 4.
func TestTraceUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"trace", "lab", "pod1a"}, exitUsage, "trace takes a lab"},
		{[]string{"trace", "lab", "a", "b", "--tcp", "0"}, exitUsage, "--tcp and --udp take a port"},
		{[]string{"trace", "lab", "a", "b", "--tcp", "80", "--udp", "53"}, exitUsage, "give one of --icmp"},
		{[]string{"trace", "lab", "a", "b", "--tcp", "70000"}, exitUsage, "70000"},
		{[]string{"trace", "lab", "a", "b", "-o", "yaml"}, exitUsage, `-o "yaml"`},
		{[]string{"trace", "lab", "a", "b", "--tcp", "80", "--size", "10"}, exitUsage, "bare SYN"},
		{[]string{"trace", "lab", "a", "b", "--udp", "53", "--df"}, exitUsage, "--df goes with --icmp"},
		{[]string{"trace", "lab", "a", "b", "--timeout", "0s"}, exitUsage, "--timeout"},
		{[]string{"trace", "../x", "a", "b"}, exitUsage, "does not name a lab"},
		{[]string{"trace", "no-such-lab", "a", "b"}, exitNotFound, "no-such-lab"},
	} {
		_, errOut, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.says) {
			t.Errorf("labctl %s: exit %d (want %d), stderr %q (want it to say %q)", strings.Join(tc.args, " "), code, tc.code, errOut, tc.says)
		}
	}
}
