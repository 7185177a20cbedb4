package kubeproxy

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Script renders the ruleset as input for `nft -f`. Each table is written
// the way `nft list ruleset` prints it (so the script is what a student
// reads back on the node, counters aside), preceded by the two commands
// that make loading it idempotent: create the table if it is missing, then
// delete it, so that the block after it starts from nothing. nft applies
// the whole file as one transaction, as Program applies one batch.
func (r *Ruleset) Script() string {
	var b strings.Builder
	whose := "kube-proxy (nftables mode) and flannel rules"
	if len(r.Tables) == 1 && r.Tables[0].Name == FlannelTable {
		whose = "flannel's masquerade rules (ip-masq)" // Masquerade's
	}
	fmt.Fprintf(&b, "# %s of node %q, as labctl programs them.\n", whose, r.Node)
	for _, name := range r.Absent {
		fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\n", name, name)
	}
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\n", t.Name, t.Name)
		b.WriteString(t.listing())
	}
	return b.String()
}

// Listing is the text `nft list ruleset` prints for the ruleset right
// after it is programmed, before any packet has counted.
func (r *Ruleset) Listing() string {
	var b strings.Builder
	for _, t := range r.Tables {
		b.WriteString(t.listing())
	}
	return b.String()
}

func (t *Table) listing() string {
	var blocks []string
	for _, s := range t.Sets {
		blocks = append(blocks, s.listing())
	}
	for _, c := range t.Chains {
		blocks = append(blocks, c.listing())
	}
	return "table ip " + t.Name + " {\n" + strings.Join(blocks, "\n") + "}\n"
}

func (s *Set) listing() string {
	var b strings.Builder
	kind := "set"
	if s.Map {
		kind = "map"
	}
	fmt.Fprintf(&b, "\t%s %s {\n\t\ttype %s", kind, s.Name, s.keyText())
	if s.Map {
		b.WriteString(" : verdict")
	}
	b.WriteString("\n")
	if s.Size != 0 {
		fmt.Fprintf(&b, "\t\tsize %d\n", s.Size)
	}
	var flags []string
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Timeout != 0 {
		flags = append(flags, "timeout")
	}
	if len(flags) > 0 {
		fmt.Fprintf(&b, "\t\tflags %s\n", strings.Join(flags, ","))
	}
	if s.Timeout != 0 {
		fmt.Fprintf(&b, "\t\ttimeout %s\n", nftDuration(s.Timeout))
	}
	if s.Comment != "" {
		fmt.Fprintf(&b, "\t\tcomment %s\n", strconv.Quote(s.Comment))
	}
	if len(s.Elements) > 0 {
		fmt.Fprintf(&b, "\t\telements = { %s }\n", s.elementsText())
	}
	b.WriteString("\t}\n")
	return b.String()
}

func (s *Set) keyText() string {
	parts := make([]string, len(s.Key))
	for i, k := range s.Key {
		parts[i] = k.String()
	}
	return strings.Join(parts, " . ")
}

// elementsText lists the elements in nft's order and line breaks: nft
// sorts them by their key as it holds it (a concatenation as one number
// in host byte order), and puts two addresses on a line, or one element
// of any concatenation.
func (s *Set) elementsText() string {
	elems := slices.Clone(s.Elements)
	slices.SortStableFunc(elems, func(a, b Element) int { return compareKeys(a.Key, b.Key) })
	perLine := 1
	if len(s.Key) == 1 && s.Key[0] == typeIPv4 {
		perLine = 2
	}
	var b strings.Builder
	for i, e := range elems {
		if i > 0 {
			if i%perLine == 0 {
				b.WriteString(",\n\t\t\t     ")
			} else {
				b.WriteString(", ")
			}
		}
		b.WriteString(e.text())
	}
	return b.String()
}

func (e Element) text() string {
	parts := make([]string, len(e.Key))
	for i, k := range e.Key {
		parts[i] = k.String()
	}
	out := strings.Join(parts, " . ")
	if e.Comment != "" {
		out += " comment " + strconv.Quote(e.Comment)
	}
	if e.Verdict.kind != noVerdict {
		out += " : " + e.Verdict.String()
	}
	return out
}

// compareKeys orders keys as nft lists them. A single field compares by
// value. A concatenation compares as the kernel's key bytes (each field
// padded to 32 bits) read as one little-endian number: from the last byte
// back, which makes the port count before the address.
func compareKeys(a, b []keyVal) int {
	if len(a) == 1 {
		return bytes.Compare(a[0].bytes(), b[0].bytes())
	}
	ka, kb := concatBytes(a), concatBytes(b)
	for i := len(ka) - 1; i >= 0; i-- {
		if ka[i] != kb[i] {
			return int(ka[i]) - int(kb[i])
		}
	}
	return 0
}

// concatBytes is a concatenated key as the kernel stores it.
func concatBytes(key []keyVal) []byte {
	var out []byte
	for _, k := range key {
		out = append(out, padded(k.bytes())...)
	}
	return out
}

// padded extends b to a whole number of 32-bit registers.
func padded(b []byte) []byte {
	return append(b, make([]byte, (4-len(b)%4)%4)...)
}

func (c *Chain) listing() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
	if h := c.Hook; h != nil {
		fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", h.Type, h.Hook, priorityText(h.Hook, h.Priority))
	}
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "\t\t%s\n", r.text())
	}
	b.WriteString("\t}\n")
	return b.String()
}

// priorityText names a priority as nft does: the standard priority of the
// ip family it is closest to (within 10), plus or minus the difference.
// dstnat exists only at prerouting and output, srcnat at input and
// postrouting.
func priorityText(hook string, prio int) string {
	std := []struct {
		name  string
		value int
		hooks []string
	}{
		{"raw", -300, nil},
		{"mangle", -150, nil},
		{"dstnat", -100, []string{"prerouting"}},
		{"filter", 0, nil},
		{"security", 50, nil},
		{"srcnat", 100, []string{"postrouting"}},
	}
	for _, s := range std {
		if s.hooks != nil && !slices.Contains(s.hooks, hook) {
			continue
		}
		switch d := prio - s.value; {
		case d == 0:
			return s.name
		case d > 0 && d <= 10:
			return fmt.Sprintf("%s + %d", s.name, d)
		case d < 0 && d >= -10:
			return fmt.Sprintf("%s - %d", s.name, -d)
		}
	}
	return strconv.Itoa(prio)
}

// nftDuration writes a duration as nft does: days, hours, minutes, seconds
// and milliseconds, each only when not zero ("3h", "1m30s").
func nftDuration(d time.Duration) string {
	var b strings.Builder
	ms := d.Milliseconds()
	for _, u := range []struct {
		suffix string
		ms     int64
	}{{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}} {
		if n := ms / u.ms; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.suffix)
			ms -= n * u.ms
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
