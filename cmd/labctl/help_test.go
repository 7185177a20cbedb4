package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command's help reads right: an Examples section, and a usage line
// where flags come before --, since what follows -- is the command's.
func TestHelpReadsRight(t *testing.T) {
	g := &globals{io: Streams{}, getenv: func(string) string { return "" }}
	root := newRootCmd(g)
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Hidden || c == root || c.Name() == "help" || c.Name() == "internal" || (c.Parent() != nil && c.Parent().Name() == "internal") {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Examples section", c.CommandPath())
		}
		use := c.UseLine()
		if i := strings.Index(use, " -- "); i >= 0 && strings.Contains(use[i:], "[flags]") {
			t.Errorf("%s: usage %q puts flags after --", c.CommandPath(), use)
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "  ") {
				t.Errorf("%s: example line %q is not indented as cobra's help expects", c.CommandPath(), line)
			}
		}
	}
	walk(root)
}

// Arguments in the wrong place get a usage error (exit 2) that shows the
// right command line.
func TestMisplacedArguments(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "pod1a", "ip", "route"}, "labctl exec pod1a -- ip route"},
		{[]string{"exec", "--", "ip", "route"}, "labctl exec POD -- COMMAND"},
		{[]string{"exec", "pod1a", "pod2", "--", "true"}, "exec takes one pod or node, then --"},
		{[]string{"logs", "pod2", "web-server"}, "labctl logs pod2 -c web-server"},
		{[]string{"logs", "pod2", "-c", "web-server", "extra"}, "logs takes one pod"},
		{[]string{"down", "a", "b"}, "down takes one lab name or topology file, or --all"},
		{[]string{"status", "a", "b", "c"}, "at most a lab"},
		{[]string{"version", "now"}, "version takes no arguments"},
		{[]string{"completion", "tcsh"}, "bash, zsh or fish"},
	} {
		_, stderr, code := runCLI(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("labctl %s: exit %d, %q; want 2 and %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}
