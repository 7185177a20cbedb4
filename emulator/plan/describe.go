package plan

import (
	"io"
	"strconv"
	"strings"
)

// Description is what an operation does, said once, in the words of the
// commands a person would type for the same effect. `labctl up --dry-run`
// prints it as shell (Script); progress and error messages quote the same
// commands (String), so what labctl says it did and what the script does
// never drift apart.
type Description struct {
	// Note is a comment for the reader of the script, one or more lines
	// (without the leading "# "), printed above the commands.
	Note     string
	Commands []Command
}

// Command is one command line: a tool, the namespace it works in, and its
// words.
type Command struct {
	Tool string // "ip", "bridge", "sysctl", ...
	// Namespace is the network namespace the command works in: `-n NAME`
	// for the tools that have it (ip, bridge), `ip netns exec NAME` before
	// any other. Empty: the command names no namespace (`ip netns add`).
	Namespace string
	Args      []Arg
	// Shell follows the command in the script only: plumbing such as
	// "2>/dev/null || true" that says nothing about the operation.
	Shell string
}

// Arg is one word of a command. A Name (a device, a namespace) is quoted
// in messages, as every name labctl reports is; the script prints it bare.
type Arg struct {
	Word string
	Name bool
}

// String is the description as messages say it: its commands with their
// names quoted, joined by "; ". Quoting keeps them valid shell.
func (d Description) String() string {
	var b strings.Builder
	for i, c := range d.Commands {
		if i > 0 {
			b.WriteString("; ")
		}
		c.write(&b, false)
	}
	return b.String()
}

// Script is the description as the --dry-run script prints it: the note as
// comment lines, then one line per command.
func (d Description) Script() string {
	var b strings.Builder
	d.writeScript(&b)
	return b.String()
}

// writeScript writes what Script returns, each line ending in a newline.
func (d Description) writeScript(w io.StringWriter) {
	if d.Note != "" {
		for line := range strings.SplitSeq(d.Note, "\n") {
			w.WriteString("# ")
			w.WriteString(line)
			w.WriteString("\n")
		}
	}
	for _, c := range d.Commands {
		c.write(w, true)
		w.WriteString("\n")
	}
}

// write renders the command for the script (names bare, shell plumbing
// kept) or for a message (names quoted, no plumbing).
func (c Command) write(w io.StringWriter, script bool) {
	name := func(s string) string {
		if script {
			return s
		}
		return strconv.Quote(s)
	}
	switch {
	case c.Namespace == "":
		w.WriteString(c.Tool)
	case c.Tool == "ip" || c.Tool == "bridge":
		w.WriteString(c.Tool + " -n " + name(c.Namespace))
	default:
		w.WriteString("ip netns exec " + name(c.Namespace) + " " + c.Tool)
	}
	for _, a := range c.Args {
		w.WriteString(" ")
		if a.Name {
			w.WriteString(name(a.Word))
		} else {
			w.WriteString(a.Word)
		}
	}
	if script && c.Shell != "" {
		w.WriteString(" " + c.Shell)
	}
}

// tool starts a command of tool working in namespace ns.
func tool(name, ns string) Command { return Command{Tool: name, Namespace: ns} }

// words appends plain words.
func (c Command) words(ws ...string) Command {
	for _, w := range ws {
		c.Args = append(c.Args, Arg{Word: w})
	}
	return c
}

// name appends a name.
func (c Command) name(n string) Command {
	c.Args = append(c.Args, Arg{Word: n, Name: true})
	return c
}

// when appends plain words if cond holds.
func (c Command) when(cond bool, ws ...string) Command {
	if cond {
		return c.words(ws...)
	}
	return c
}

// describe is the description of plain commands.
func describe(cmds ...Command) Description { return Description{Commands: cmds} }

func itoa(i int) string { return strconv.Itoa(i) }
