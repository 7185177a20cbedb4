// Package yamldoc decodes YAML documents written by people into Go values
// while reporting every mistake at once, each at its file:line:col and YAML
// path: unknown keys (with "did you mean" for typos), keys reserved for
// features to come, duplicate keys, wrong kinds of value, and YAML syntax
// errors located more precisely than the parser does. Aliases and merge
// keys are refused, so a small file cannot expand into a huge one and every
// problem points where the value is written.
//
// It knows no format: a format's decoder walks the yaml.Node tree with a
// Decoder, handing each known key's value to a function of its own. It
// makes no system calls except ReadFile's.
package yamldoc

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// A Decoder collects the problems of one file. Its methods report what is
// wrong with a node and say whether the value was usable; a format's
// decoder goes on after a problem, so that one run reports them all.
//
// Paths given to its methods are relative to the decoder's own path: ""
// for a file's decoder, the sub-document's path for one from Within.
type Decoder struct {
	*state
	prefix string
}

// state is what a decoder and the decoders Within it share.
type state struct {
	file     string
	problems []Problem
	// keyOf maps a mapping value to its key. Problems with a value point at
	// its key, where the YAML path ends: "27:9: nodes[1].pods[0].ip: ...".
	keyOf map[*yaml.Node]*yaml.Node
	// guessed records, per mapping, the known keys an unknown key was taken
	// for ("nmae" -> "name"), so the key is not also reported as missing.
	guessed map[*yaml.Node]map[string]bool
	// warnings are what is legal but likely not meant (warning.go).
	warnings []Problem
}

// NewDecoder returns a decoder for a document read from file, which names
// it in every problem ("" for a document held in memory).
func NewDecoder(file string) *Decoder {
	return &Decoder{state: &state{file: file}}
}

// Within returns a decoder for the sub-document at path (relative to d's),
// such as a topology written inline in a scenario: its problems join d's,
// at positions in the same file, with paths that start with path.
func (d *Decoder) Within(path string) *Decoder {
	return &Decoder{state: d.state, prefix: Join(d.prefix, path)}
}

// File is the file the decoder's document came from.
func (d *Decoder) File() string { return d.file }

// Problems returns the problems found so far, in file order.
func (d *Decoder) Problems() []Problem {
	ps := slices.Clone(d.problems)
	sortProblems(ps)
	return ps
}

// Err returns every problem found as an *InvalidError, in file order, or
// nil when there is none.
func (d *Decoder) Err() error {
	if len(d.problems) == 0 {
		return nil
	}
	return &InvalidError{Problems: d.Problems()}
}

// Addf reports a problem with node n at path. A problem with a mapping's
// value is placed at its key, where the path ends; a nil n reports a
// problem without a position.
func (d *Decoder) Addf(n *yaml.Node, path, format string, args ...any) {
	d.problems = append(d.problems, d.at(n, path, fmt.Sprintf(format, args...)))
}

// at locates a message about node n at path: at its key when n is a
// mapping's value, nowhere when n is nil.
func (d *Decoder) at(n *yaml.Node, path, msg string) Problem {
	p := Problem{File: d.file, Path: Join(d.prefix, path), Msg: msg}
	if k, ok := d.keyOf[n]; ok {
		n = k
	}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	return p
}

// fileProblem reports a problem of the file as a whole: no position in it.
func (d *Decoder) fileProblem(msg string) {
	d.problems = append(d.problems, Problem{File: d.file, Msg: msg})
}

// Join appends key to a YAML path: Join("nodes[0]", "ip") is nodes[0].ip.
// An index ("[2]") joins without a dot.
func Join(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	case strings.HasPrefix(key, "["):
		return path + key
	}
	return path + "." + key
}

// Aliased reports n if it is a YAML alias. Following aliases would let a
// small file expand into a huge document, and problems inside the anchored
// value would point somewhere else than where it is used.
func (d *Decoder) Aliased(n *yaml.Node, path string) bool {
	if n.Kind != yaml.AliasNode {
		return false
	}
	d.Addf(n, path, "YAML aliases (*%s) are not supported; write the value out", n.Value)
	return true
}

// IsNull reports whether n is an empty value ("key:" with nothing after it,
// "~" or "null").
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Describe names what n is, for messages that say what was expected
// instead: "a mapping", "a list", "empty", `the value "x"`.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if IsNull(n) {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "unknown"
}

// Keys maps each key a mapping may hold to the function that takes its
// value. The function runs once per key, in file order; a key the file
// omits is never called, so the function typically stores the node for a
// later pass that knows the defaults.
type Keys map[string]func(v *yaml.Node)

// A MappingOption widens what Mapping accepts.
type MappingOption func(*mappingOptions)

type mappingOptions struct {
	orEmpty  bool
	reserved map[string]string
}

// OrEmpty lets an empty value stand for an empty mapping, for sections
// whose every key has a default ("network:" with nothing under it).
func OrEmpty() MappingOption {
	return func(o *mappingOptions) { o.orEmpty = true }
}

// Reserved names keys the format keeps for features that have not landed
// yet, each with what it will hold ("services" -> "services"): using one is
// reported as "<what> are not supported yet" rather than ignored or taken
// for a typo.
func Reserved(keys map[string]string) MappingOption {
	return func(o *mappingOptions) { o.reserved = keys }
}

// Mapping walks a mapping node, handing each known key's value to its
// function and reporting unknown keys (with the known key a typo most
// likely meant), duplicate keys, merge keys and reserved keys. It reports
// whether n was usable as a mapping.
func (d *Decoder) Mapping(n *yaml.Node, path string, known Keys, opts ...MappingOption) bool {
	var o mappingOptions
	for _, opt := range opts {
		opt(&o)
	}
	if d.Aliased(n, path) {
		return false
	}
	if o.orEmpty && IsNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.Addf(n, path, "must be a mapping, not %s", Describe(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.Addf(k, path, "keys must be plain names, not %s", Describe(k))
			continue
		}
		kp := k.Value
		if path != "" {
			kp = path + "." + k.Value
		}
		if prev, dup := seen[k.Value]; dup {
			d.Addf(k, kp, "duplicate key %q (first given on line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		if set, ok := known[k.Value]; ok {
			if d.keyOf == nil {
				d.keyOf = map[*yaml.Node]*yaml.Node{}
			}
			d.keyOf[v] = k
			set(v)
			continue
		}
		if what, ok := o.reserved[k.Value]; ok {
			d.Addf(k, kp, "%s are not supported yet", what)
			continue
		}
		if k.Value == "<<" {
			d.Addf(k, kp, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		d.unknownKey(n, k, kp, known)
	}
	return true
}

// unknownKey reports key k of mapping m, suggesting the known key it most
// likely misspells, or else listing them all.
func (d *Decoder) unknownKey(m, k *yaml.Node, path string, known Keys) {
	names := make([]string, 0, len(known))
	for name := range known {
		names = append(names, name)
	}
	sort.Strings(names)
	guess := Closest(k.Value, names)
	if guess == "" {
		d.Addf(k, path, "unknown key %q (known keys: %s)", k.Value, strings.Join(names, ", "))
		return
	}
	if d.guessed == nil {
		d.guessed = map[*yaml.Node]map[string]bool{}
	}
	if d.guessed[m] == nil {
		d.guessed[m] = map[string]bool{}
	}
	d.guessed[m][guess] = true
	d.Addf(k, path, "unknown key %q (did you mean %q?)", k.Value, guess)
}

// Misspelled reports whether an unknown key of mapping m was already
// reported as a likely typo of key, which then need not be reported as
// missing too.
func (d *Decoder) Misspelled(m *yaml.Node, key string) bool {
	return d.guessed[m][key]
}

// Missing reports that mapping m, at path, lacks a key it needs, unless an
// unknown key of m was already taken for a typo of it.
func (d *Decoder) Missing(m *yaml.Node, path, key, format string, args ...any) {
	if !d.Misspelled(m, key) {
		d.Addf(m, Join(path, key), format, args...)
	}
}

// List calls each for every item of a list, with the item's path; an empty
// value is an empty list. It reports whether n was usable as a list.
func (d *Decoder) List(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) bool {
	if d.Aliased(n, path) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		if IsNull(n) {
			return true
		}
		d.Addf(n, path, "must be a list, not %s", Describe(n))
		return false
	}
	for i, item := range n.Content {
		each(i, item, fmt.Sprintf("%s[%d]", path, i))
	}
	return true
}

// String returns the value of a scalar node, reporting anything else. A nil
// node (an omitted key) yields false without a report, so optional values
// read as: if s, ok := d.String(n, path); ok { ... }.
func (d *Decoder) String(n *yaml.Node, path string) (string, bool) {
	if n == nil || d.Aliased(n, path) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || IsNull(n) {
		d.Addf(n, path, "must be a single value, not %s", Describe(n))
		return "", false
	}
	return n.Value, true
}

// Int returns the value of a whole number. A nil node yields false without
// a report.
func (d *Decoder) Int(n *yaml.Node, path string) (int, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange):
		d.Addf(n, path, "%s is out of range", s)
		return 0, false
	case err != nil:
		d.Addf(n, path, "%q is not a whole number", s)
		return 0, false
	}
	return v, true
}

// Bool returns the value of true or false (unquoted, as YAML 1.2 spells
// them). A nil node yields false without a report.
func (d *Decoder) Bool(n *yaml.Node, path string) (value, ok bool) {
	s, ok := d.String(n, path)
	if !ok {
		return false, false
	}
	if n.ShortTag() == "!!bool" && n.Decode(&value) == nil {
		return value, true
	}
	d.Addf(n, path, "%q is not true or false", s)
	return false, false
}

// Duration returns a duration written as Go writes them (500ms, 5s,
// 1m30s); negative durations are refused. A nil node yields false without
// a report.
func (d *Decoder) Duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	switch {
	case err != nil:
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			d.Addf(n, path, "%q needs a unit, like %ss or %sms", s, s, s)
		} else {
			d.Addf(n, path, "%q is not a duration like 500ms, 5s or 1m30s", s)
		}
		return 0, false
	case v < 0:
		d.Addf(n, path, "%s: a duration must not be negative", s)
		return 0, false
	}
	return v, true
}

// Enum returns a value that must be one of values; what names the setting
// in the message: `unknown backend "x" (use "host-gw", "vxlan" or "ipip")`.
// A nil node yields false without a report.
func (d *Decoder) Enum(n *yaml.Node, path, what string, values ...string) (string, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return "", false
	}
	if slices.Contains(values, s) {
		return s, true
	}
	d.Addf(n, path, "unknown %s %q (use %s)", what, s, quotedChoice(values))
	return "", false
}

// quotedChoice writes values as a choice: "a", "b" or "c".
func quotedChoice(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// Addr returns an IPv4 address (labctl's labs are IPv4 only). A nil node
// yields false without a report.
func (d *Decoder) Addr(n *yaml.Node, path string) (netip.Addr, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if p, perr := netip.ParsePrefix(s); perr == nil {
			if p.Addr().Is4() {
				d.Addf(n, path, "%q: give the address without a prefix length", s)
			} else {
				d.Addf(n, path, "%q: IPv6 is not supported yet", s)
			}
		} else {
			d.Addf(n, path, "%q is not an IPv4 address", s)
		}
		return netip.Addr{}, false
	}
	if !a.Is4() {
		d.Addf(n, path, "%q: IPv6 is not supported yet", s)
		return netip.Addr{}, false
	}
	return a, true
}

// Prefix returns an IPv4 network in CIDR notation, without host bits set.
// A nil node yields false without a report.
func (d *Decoder) Prefix(n *yaml.Node, path string) (netip.Prefix, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Is4() {
			d.Addf(n, path, "%q is an address, not a CIDR (add a prefix length such as /24)", s)
		} else if aerr == nil || strings.Contains(s, ":") {
			d.Addf(n, path, "%q: IPv6 is not supported yet", s)
		} else {
			d.Addf(n, path, "%q is not a CIDR like 10.0.0.0/24", s)
		}
		return netip.Prefix{}, false
	}
	if !p.Addr().Is4() {
		d.Addf(n, path, "%q: IPv6 is not supported yet", s)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		d.Addf(n, path, "%q has host bits set (did you mean %s?)", s, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}
