package main

import (
	"strings"
	"testing"
)

// The TUI's command line is checked before anything opens: bad input is a
// usage error (2), a lab that is not there is not found (4), an invalid
// file is invalid (3), and without a terminal it says what to use instead.
func TestTuiCommandLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"tui"}, 4, "no lab is up"},
		{[]string{"tui", "nolab"}, 4, `"nolab"`},
		{[]string{"tui", "../x"}, 2, "does not name a lab"},
		{[]string{"tui", "--keep", "5", "nolab"}, 2, "--keep 5"},
		{[]string{"tui", "-f", "tcp port 99999", "nolab"}, 2, "99999"},
		{[]string{"tui", "../../topologies/two-node.yaml", "pod1a"}, 2, "a topology file is shown as a graph only"},
		{[]string{"tui", "--scenario", "../../scenarios/two-node-basics.yaml", "../../topologies/two-node.yaml"}, 2, "graph only"},
		{[]string{"tui", "--scenario", "nothere.yaml"}, 3, "nothere.yaml"},
		{[]string{"tui", "nothere.yaml"}, 3, "nothere.yaml"},
		// A topology file needs no root and no lab, but a terminal.
		{[]string{"tui", "../../topologies/two-node.yaml"}, 2, "needs a terminal"},
	} {
		_, stderr, code := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("labctl %s: exit %d, %q; want %d and %q", strings.Join(tt.args, " "), code, stderr, tt.code, tt.want)
		}
	}
}
