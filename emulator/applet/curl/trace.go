package curl

import (
	"fmt"
	"io"
	"strings"
)

// tracer writes the -v trace as curl's tool_debug_cb does: "* " before
// curl's own remarks, "> " before each line it sent, "< " before each
// line it received (both exactly as on the wire, line ends included),
// and "{ [N bytes data]" / "} [N bytes data]" once for the body that
// follows a header, unless the body goes to a terminal.
type tracer struct {
	w       io.Writer
	on      bool
	isatty  bool
	newl    bool // the last write ended inside a line
	tracedD bool // the body after the last header was announced
}

func (t *tracer) text(msg string) {
	if !t.on {
		return
	}
	t.write("*", msg+"\n")
	t.tracedD = false
}

func (t *tracer) write(prefix, s string) {
	var b strings.Builder
	if !t.newl {
		b.WriteString(prefix + " ")
	}
	b.WriteString(s)
	_, _ = io.WriteString(t.w, b.String())
	t.newl = s != "" && s[len(s)-1] != '\n'
}

// headerOut prints a request head, every line prefixed.
func (t *tracer) headerOut(block string) {
	if !t.on || block == "" {
		return
	}
	var b strings.Builder
	st := 0
	for i := 0; i < len(block)-1; i++ {
		if block[i] == '\n' {
			if !t.newl {
				b.WriteString("> ")
			}
			b.WriteString(block[st : i+1])
			st = i + 1
			t.newl = false
		}
	}
	if !t.newl {
		b.WriteString("> ")
	}
	b.WriteString(block[st:])
	_, _ = io.WriteString(t.w, b.String())
	t.newl = block[len(block)-1] != '\n'
	t.tracedD = false
}

func (t *tracer) headerIn(line string) {
	if !t.on {
		return
	}
	t.write("<", line)
	t.tracedD = false
}

// data announces body bytes received ('{') or sent ('}').
func (t *tracer) data(dir byte, n int) {
	if !t.on || t.tracedD || t.isatty {
		return
	}
	t.write(string(dir), fmt.Sprintf("[%d bytes data]\n", n))
	t.tracedD = true
}
