package yamldoc

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// yamlLineRE is compiled on first use, not at program start: every labctl
// process, down to each pod's supervisor, would otherwise pay for it.
var yamlLineRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^line (\d+): (.*)$`) })

// parserErrors are the messages of the YAML parser proper, as opposed to its
// scanner. go-yaml reports them with a 0-based line and scanner errors with
// a 1-based one, omitting either when the 0-based line is 0.
var parserErrors = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// lineStartErrors are located at the first non-blank character of the line
// where they appear; for other errors the column is unknown.
var lineStartErrors = map[string]bool{
	"did not find expected '-' indicator":                          true,
	"did not find expected key":                                    true,
	"found a tab character that violates indentation":              true,
	"found a tab character where an indentation space is expected": true,
}

// readerErrors mean the input is not clean text.
var readerErrors = map[string]bool{
	"control characters are not allowed": true,
	"invalid leading UTF-8 octet":        true,
	"invalid trailing UTF-8 octet":       true,
	"incomplete UTF-8 octet sequence":    true,
	"invalid length of a UTF-8 sequence": true,
	"invalid Unicode character":          true,
}

// syntaxProblem turns a YAML syntax error into a problem located as precisely
// as go-yaml allows. go-yaml reports the line where the construct holding
// the mistake starts (for some errors off by one), which can be far above
// the mistake, so the line is refined by finding the first line whose
// inclusion makes the document fail the same way.
func syntaxProblem(file string, data []byte, err error) Problem {
	line, msg := splitYAMLError(err)
	p := Problem{File: file, Msg: "invalid YAML: " + msg}
	switch {
	case strings.HasPrefix(msg, "unknown anchor '"):
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
		p.Line, p.Col = findAlias(data, name)
	case msg == "document contains excessive aliasing" || strings.HasPrefix(msg, "anchor '") ||
		strings.HasPrefix(msg, "attempted to go past") || strings.HasPrefix(msg, "cannot decode"):
		// Found while composing the document: go-yaml gives no position.
	case readerErrors[msg]:
		p.Line, p.Col, _ = firstBadChar(data)
	default:
		if parserErrors[msg] {
			line++
		}
		p.Line, p.Col = max(line, 1), 1
		if l, c, ok := firstFailingLine(data, p.Line, msg); ok {
			p.Line = l
			if lineStartErrors[msg] {
				p.Col = c
			}
		}
	}
	return p
}

// splitYAMLError returns the line go-yaml gave (0 if none) and the bare message.
func splitYAMLError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE().FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 0, msg
}

// firstFailingLine finds the first line, from line from on, whose inclusion
// makes the document fail with msg: where the mistake becomes visible. The
// parser stops at the first error, so once a prefix fails every longer one
// fails the same way and a binary search finds the line. The column is that
// line's first non-blank character.
func firstFailingLine(data []byte, from int, msg string) (line, col int, ok bool) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	ends := make([]int, len(lines)) // ends[i]: offset after line i+1
	end := 0
	for i, l := range lines {
		end += len(l)
		ends[i] = end
	}
	fails := func(i int) bool {
		err := decodeAll(data[:ends[i]])
		if err == nil {
			return false
		}
		_, m := splitYAMLError(err)
		return m == msg
	}
	lo, hi := max(from-1, 0), len(lines)-1
	if lo > hi || !fails(hi) {
		return 0, 0, false
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	l := lines[lo]
	trimmed := bytes.TrimLeft(l, " \t")
	return lo + 1, len(l) - len(trimmed) + 1, true
}

func decodeAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// firstBadChar locates the first byte YAML refuses to read: invalid UTF-8 or
// a control character.
func firstBadChar(data []byte) (line, col int, ok bool) {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return 0, 0, false // UTF-16; not worth locating
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 || !yamlPrintable(r) {
			return line, col, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return 0, 0, false
}

// yamlPrintable is the character set YAML 1.1 accepts in a stream.
func yamlPrintable(r rune) bool {
	switch {
	case r == 0x09, r == 0x0A, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// findAlias locates the first use of *name.
func findAlias(data []byte, name string) (line, col int) {
	re := regexp.MustCompile(`\*` + regexp.QuoteMeta(name) + `(?:[\s,\]}]|$)`)
	loc := re.FindIndex(data)
	if loc == nil {
		return 0, 0
	}
	before := data[:loc[0]]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}
