package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Format describes a kind of document for the messages about a file as a
// whole: its size, its syntax, and what its top level must be.
type Format struct {
	// Noun names one document, with its article, as messages use it:
	// "a topology" gives "a topology may be at most 4 MiB".
	Noun string
	// Root lists what the top-level mapping holds, for a file whose top
	// level is something else: "name, network and nodes".
	Root string
	// EmptyHint says what the least document holds, for an empty file:
	// "a topology needs at least a list of nodes, e.g. nodes: [{name: n1}]".
	EmptyHint string
	// MaxSize bounds the file in bytes; 0 means DefaultMaxSize. Input is
	// bounded before it is read, let alone parsed.
	MaxSize int64
}

// DefaultMaxSize bounds a document whose format sets no MaxSize: far more
// than people write by hand, far less than a stray log file or /dev/zero.
const DefaultMaxSize = 4 << 20

func (f Format) maxSize() int64 {
	if f.MaxSize > 0 {
		return f.MaxSize
	}
	return DefaultMaxSize
}

// Document parses the one YAML document of a file and returns its
// top-level mapping, or reports why there is none: the file is too large,
// is not YAML (located as precisely as the syntax allows), is empty, holds
// more than one document, or its top level is not a mapping.
func (d *Decoder) Document(data []byte, f Format) (*yaml.Node, bool) {
	if limit := f.maxSize(); int64(len(data)) > limit {
		d.fileProblem(fmt.Sprintf("is %s; %s may be at most %s", sizeString(int64(len(data))), f.Noun, sizeString(limit)))
		return nil, false
	}
	doc, ok := d.parse(data, f)
	if !ok {
		return nil, false
	}
	return d.root(doc, f)
}

// parse reads the file's one YAML document.
func (d *Decoder) parse(data []byte, f Format) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.empty(f)
		} else {
			d.problems = append(d.problems, syntaxProblem(d.file, data, err))
		}
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.Addf(&next, "", "the file holds more than one YAML document; %s is exactly one", f.Noun)
		return nil, false
	case !errors.Is(err, io.EOF):
		d.problems = append(d.problems, syntaxProblem(d.file, data, err))
		return nil, false
	}
	return &doc, true
}

// root returns the document's top-level mapping, or reports why there is
// none.
func (d *Decoder) root(doc *yaml.Node, f Format) (*yaml.Node, bool) {
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.empty(f)
			return nil, false
		}
		doc = doc.Content[0]
	}
	if IsNull(doc) {
		d.empty(f)
		return nil, false
	}
	if d.Aliased(doc, "") {
		return nil, false
	}
	if doc.Kind != yaml.MappingNode {
		what := "a mapping"
		if f.Root != "" {
			what += " with " + f.Root
		}
		d.Addf(doc, "", "%s must be %s, not %s", f.Noun, what, Describe(doc))
		return nil, false
	}
	return doc, true
}

// empty reports a file without a document (nothing, or only comments and
// blank lines) at its first line, so editors and scripts that jump to
// file:line:col land in it like for any other problem.
func (d *Decoder) empty(f Format) {
	msg := "the file is empty"
	if f.EmptyHint != "" {
		msg += ": " + f.EmptyHint
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: 1, Col: 1, Msg: msg})
}
