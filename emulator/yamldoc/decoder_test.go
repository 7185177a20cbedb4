package yamldoc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var testFormat = Format{Noun: "a test", Root: "a and b", EmptyHint: "a test needs a", MaxSize: 1 << 10}

// report decodes src with decode and returns every problem, one a line.
func report(t *testing.T, src string, decode func(d *Decoder, root *yaml.Node)) string {
	t.Helper()
	d := NewDecoder("t.yaml")
	if root, ok := d.Document([]byte(src), testFormat); ok {
		decode(d, root)
	}
	if err := d.Err(); err != nil {
		return err.Error()
	}
	return ""
}

// values reads the value of key v with read and reports what was read.
func values(read func(d *Decoder, n *yaml.Node, path string) (any, bool)) func(d *Decoder, root *yaml.Node) {
	return func(d *Decoder, root *yaml.Node) {
		d.Mapping(root, "", Keys{"v": func(v *yaml.Node) {
			if got, ok := read(d, v, "v"); ok {
				d.Addf(v, "v", "read %v", got)
			}
		}})
	}
}

func TestMapping(t *testing.T) {
	keys := func(d *Decoder, got map[string]string) Keys {
		return Keys{
			"name":   func(v *yaml.Node) { got["name"], _ = d.String(v, "name") },
			"bridge": func(v *yaml.Node) { got["bridge"], _ = d.String(v, "bridge") },
			"sub": func(v *yaml.Node) {
				d.Mapping(v, "sub", Keys{"x": func(*yaml.Node) { got["sub.x"] = "set" }}, OrEmpty())
			},
		}
	}
	tests := []struct {
		name, src, want string
	}{
		{"known keys", "name: a\nbridge: b\nsub: {x: 1}\n", "name=a bridge=b sub.x=set"},
		{"typo", "nmae: a\n", `t.yaml:1:1: nmae: unknown key "nmae" (did you mean "name"?)`},
		{"case", "Bridge: a\n", `t.yaml:1:1: Bridge: unknown key "Bridge" (did you mean "bridge"?)`},
		{"unknown", "kernel: a\n", `t.yaml:1:1: kernel: unknown key "kernel" (known keys: bridge, name, sub)`},
		{"duplicate", "name: a\nname: b\n", "t.yaml:2:1: name: duplicate key \"name\" (first given on line 1)"},
		{"reserved", "services: []\n", "t.yaml:1:1: services: services are not supported yet"},
		{"merge key", "<<: {name: a}\n", "t.yaml:1:1: <<: YAML merge keys (<<) are not supported; write the keys out"},
		{"alias", "x: &a b\nname: *a\n", "t.yaml:1:1: x: unknown key \"x\" (known keys: bridge, name, sub)\nt.yaml:2:1: name: YAML aliases (*a) are not supported; write the value out"},
		{"key not a name", "? [a]\n: b\n", "t.yaml:1:3: keys must be plain names, not a list"},
		{"empty sub", "sub:\n", ""},
		{"sub not a mapping", "sub: [1]\n", "t.yaml:1:1: sub: must be a mapping, not a list"},
		{"value not a scalar", "name: {a: 1}\n", "t.yaml:1:1: name: must be a single value, not a mapping"},
		{"empty value", "name:\n", "t.yaml:1:1: name: must be a single value, not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := report(t, tt.src, func(d *Decoder, root *yaml.Node) {
				read := map[string]string{}
				d.Mapping(root, "", keys(d, read), Reserved(map[string]string{"services": "services"}))
				var parts []string
				for _, k := range []string{"name", "bridge", "sub.x"} {
					if v, ok := read[k]; ok {
						parts = append(parts, k+"="+v)
					}
				}
				if len(parts) > 0 && len(d.problems) == 0 {
					d.Addf(nil, "", "%s", strings.Join(parts, " "))
				}
			})
			got = strings.TrimPrefix(got, "t.yaml: ")
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestScalars(t *testing.T) {
	str := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.String(n, p) }
	integer := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Int(n, p) }
	boolean := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Bool(n, p) }
	duration := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Duration(n, p) }
	enum := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Enum(n, p, "mode", "a", "b", "c") }
	one := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Enum(n, p, "mode", "only") }
	two := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Enum(n, p, "mode", "x", "y") }
	addr := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Addr(n, p) }
	prefix := func(d *Decoder, n *yaml.Node, p string) (any, bool) { return d.Prefix(n, p) }
	tests := []struct {
		name string
		read func(d *Decoder, n *yaml.Node, p string) (any, bool)
		src  string
		want string
	}{
		{"string", str, "v: 'a b'", "read a b"},
		{"string from number", str, "v: 10", "read 10"},
		{"string from list", str, "v: [a]", "must be a single value, not a list"},
		{"int", integer, "v: -42", "read -42"},
		{"int out of range", integer, "v: 99999999999999999999", "99999999999999999999 is out of range"},
		{"int from text", integer, "v: ten", `"ten" is not a whole number`},
		{"int from float", integer, "v: 1.5", `"1.5" is not a whole number`},
		{"bool", boolean, "v: true", "read true"},
		{"bool false", boolean, "v: False", "read false"},
		{"bool quoted", boolean, `v: "true"`, `"true" is not true or false`},
		{"bool yes", boolean, "v: yes", `"yes" is not true or false`},
		{"duration", duration, "v: 1m30s", "read " + (90 * time.Second).String()},
		{"duration zero", duration, "v: 0s", "read 0s"},
		{"duration without unit", duration, "v: 5", `"5" needs a unit, like 5s or 5ms`},
		{"duration negative", duration, "v: -2s", "-2s: a duration must not be negative"},
		{"duration text", duration, "v: soon", `"soon" is not a duration like 500ms, 5s or 1m30s`},
		{"enum", enum, "v: b", "read b"},
		{"enum unknown", enum, "v: B", `unknown mode "B" (use "a", "b" or "c")`},
		{"enum of one", one, "v: x", `unknown mode "x" (use "only")`},
		{"enum of two", two, "v: z", `unknown mode "z" (use "x" or "y")`},
		{"addr", addr, "v: 10.0.0.1", "read 10.0.0.1"},
		{"addr with length", addr, "v: 10.0.0.1/24", `"10.0.0.1/24": give the address without a prefix length`},
		{"addr v6", addr, "v: '::1'", `"::1": IPv6 is not supported yet`},
		{"addr v6 prefix", addr, "v: 'fd00::1/64'", `"fd00::1/64": IPv6 is not supported yet`},
		{"addr text", addr, "v: host", `"host" is not an IPv4 address`},
		{"prefix", prefix, "v: 10.1.0.0/16", "read 10.1.0.0/16"},
		{"prefix host bits", prefix, "v: 10.1.2.3/16", `"10.1.2.3/16" has host bits set (did you mean 10.1.0.0/16?)`},
		{"prefix address", prefix, "v: 10.1.2.3", `"10.1.2.3" is an address, not a CIDR (add a prefix length such as /24)`},
		{"prefix v6", prefix, "v: 'fd00::/8'", `"fd00::/8": IPv6 is not supported yet`},
		{"prefix text", prefix, "v: lan", `"lan" is not a CIDR like 10.0.0.0/24`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := report(t, tt.src+"\n", values(tt.read))
			if want := "t.yaml:1:1: v: " + tt.want; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestOmitted: every reader takes a nil node (an omitted key) as "not
// given", without a problem.
func TestOmitted(t *testing.T) {
	d := NewDecoder("t.yaml")
	_, ok1 := d.String(nil, "a")
	_, ok2 := d.Int(nil, "a")
	_, ok3 := d.Bool(nil, "a")
	_, ok4 := d.Duration(nil, "a")
	_, ok5 := d.Enum(nil, "a", "mode", "x")
	_, ok6 := d.Addr(nil, "a")
	_, ok7 := d.Prefix(nil, "a")
	if ok1 || ok2 || ok3 || ok4 || ok5 || ok6 || ok7 || d.Err() != nil {
		t.Errorf("a nil node was read or reported: %v", d.Err())
	}
}

func TestList(t *testing.T) {
	tests := []struct{ src, want string }{
		{"v: [a, b]", "t.yaml:1:5: v[0]: a\nt.yaml:1:8: v[1]: b"},
		{"v:", ""},
		{"v: a", `t.yaml:1:1: v: must be a list, not the value "a"`},
		{"v: {a: 1}", "t.yaml:1:1: v: must be a list, not a mapping"},
		{"a: &x [1]\nv: *x", "t.yaml:2:1: v: YAML aliases (*x) are not supported; write the value out"},
	}
	for _, tt := range tests {
		got := report(t, tt.src+"\n", func(d *Decoder, root *yaml.Node) {
			d.Mapping(root, "", Keys{"a": func(*yaml.Node) {}, "v": func(v *yaml.Node) {
				d.List(v, "v", func(i int, item *yaml.Node, path string) { d.Addf(item, path, "%s", item.Value) })
			}})
		})
		if got != tt.want {
			t.Errorf("%q: got\n%s\nwant\n%s", tt.src, got, tt.want)
		}
	}
}

func TestMissing(t *testing.T) {
	tests := []struct{ src, want string }{
		{"- {}", "t.yaml:2:3: items[0].name: every item needs a name"},
		{"- {nmae: a}", `t.yaml:2:4: items[0].nmae: unknown key "nmae" (did you mean "name"?)`},
		{"- {title: a}", "t.yaml:2:3: items[0].name: every item needs a name\nt.yaml:2:4: items[0].title: unknown key \"title\" (known keys: name)"},
	}
	for _, tt := range tests {
		got := report(t, "items:\n"+tt.src+"\n", func(d *Decoder, root *yaml.Node) {
			d.Mapping(root, "", Keys{"items": func(v *yaml.Node) {
				d.List(v, "items", func(i int, item *yaml.Node, path string) {
					var name *yaml.Node
					if d.Mapping(item, path, Keys{"name": func(v *yaml.Node) { name = v }}) && name == nil {
						d.Missing(item, path, "name", "every item needs a name")
					}
				})
			}})
		})
		if got != tt.want {
			t.Errorf("%q: got\n%s\nwant\n%s", tt.src, got, tt.want)
		}
	}
}

// TestWithin: a sub-document decoded by a function that knows only its
// own keys reports at its place in the outer file, under its path there.
func TestWithin(t *testing.T) {
	src := "title: t\nsteps:\n  - lab:\n      name: [x]\n      nmae: y\n"
	got := report(t, src, func(d *Decoder, root *yaml.Node) {
		d.Mapping(root, "", Keys{
			"title": func(*yaml.Node) {},
			"steps": func(v *yaml.Node) {
				d.List(v, "steps", func(i int, item *yaml.Node, path string) {
					d.Mapping(item, path, Keys{"lab": func(v *yaml.Node) {
						inner := d.Within(path).Within("lab")
						inner.Mapping(v, "", Keys{"name": func(v *yaml.Node) { inner.String(v, "name") }})
						inner.List(v, "", nil) // a mapping, not a list: reported at the key "lab"
					}})
				})
			},
		})
	})
	want := strings.Join([]string{
		"t.yaml:3:5: steps[0].lab: must be a list, not a mapping",
		"t.yaml:4:7: steps[0].lab.name: must be a single value, not a list",
		`t.yaml:5:7: steps[0].lab.nmae: unknown key "nmae" (did you mean "name"?)`,
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if j := Join("a", "[1]"); j != "a[1]" {
		t.Errorf(`Join("a", "[1]") = %q`, j)
	}
}

func TestDocument(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"empty", "", "t.yaml:1:1: the file is empty: a test needs a"},
		{"only comments", "# nothing\n\n", "t.yaml:1:1: the file is empty: a test needs a"},
		{"null", "~\n", "t.yaml:1:1: the file is empty: a test needs a"},
		{"two documents", "a: 1\n---\na: 2\n", "t.yaml:2:1: the file holds more than one YAML document; a test is exactly one"},
		{"a list", "- a\n", "t.yaml:1:1: a test must be a mapping with a and b, not a list"},
		{"a scalar", "hello\n", `t.yaml:1:1: a test must be a mapping with a and b, not the value "hello"`},
		{"bad indentation", "a:\n  b: 1\n c: 2\n", "t.yaml:3:2: invalid YAML: did not find expected key"},
		{"tab", "a:\n\tb: 1\n", "t.yaml:2:1: invalid YAML: found character that cannot start any token"},
		{"unknown anchor", "a: 1\nb: *nope\n", "t.yaml:2:4: invalid YAML: unknown anchor 'nope' referenced"},
		{"control character", "a: 1\nb: x\x01\n", "t.yaml:2:5: invalid YAML: control characters are not allowed"},
		{"too large", "a: " + strings.Repeat("x", 1<<10) + "\n", "t.yaml: is 1.0 KiB (1028 bytes); a test may be at most 1.0 KiB (1024 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := report(t, tt.src, func(d *Decoder, root *yaml.Node) {})
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDefaultMaxSize(t *testing.T) {
	d := NewDecoder("big.yaml")
	if _, ok := d.Document(make([]byte, DefaultMaxSize+1), Format{Noun: "a file"}); ok {
		t.Fatal("a document over DefaultMaxSize was parsed")
	}
	var inv *InvalidError
	if err := d.Err(); !errors.As(err, &inv) || !strings.Contains(err.Error(), "a file may be at most 4 MiB") {
		t.Errorf("Err = %v", err)
	}
}

func TestProblemsSorted(t *testing.T) {
	d := NewDecoder("f")
	for _, at := range [][2]int{{3, 1}, {1, 9}, {0, 0}, {1, 2}, {3, 1}} {
		d.Addf(&yaml.Node{Line: at[0], Column: at[1]}, "", "at %d:%d #%d", at[0], at[1], len(d.problems))
	}
	var got []string
	for _, p := range d.Problems() {
		got = append(got, p.Msg)
	}
	want := "at 0:0 #2, at 1:2 #3, at 1:9 #1, at 3:1 #0, at 3:1 #4"
	if s := strings.Join(got, ", "); s != want {
		t.Errorf("Problems() = %s, want %s", s, want)
	}
	if d.problems[0].Msg != "at 3:1 #0" {
		t.Error("Problems sorted the decoder's own list")
	}
	if NewDecoder("f").Err() != nil {
		t.Error("Err of a decoder without problems is not nil")
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 3, Col: 5, Path: "nodes[0].ip", Msg: "bad"}, "a.yaml:3:5: nodes[0].ip: bad"},
		{Problem{File: "a.yaml", Msg: "the file is empty"}, "a.yaml: the file is empty"},
		{Problem{Line: 1, Col: 1, Path: "name", Msg: "bad"}, "1:1: name: bad"},
		{Problem{Path: "name", Msg: "bad"}, "name: bad"},
		{Problem{Msg: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	known := []string{"bridge", "ip", "name", "podCIDR", "pods"}
	for in, want := range map[string]string{
		"nmae": "name", "Name": "name", "ipp": "ip", "IP": "ip", "pod": "pods", "podcidr": "podCIDR",
		"brdge": "bridge", "image": "", "x": "", "kernel": "", "": "",
	} {
		if got := Closest(in, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"name", "name", 0}, {"nmae", "name", 1},
		{"name", "names", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := editDistance(tt.b, tt.a); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (not symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

func ExampleJoin() {
	fmt.Println(Join("", "nodes"), Join("nodes", "[2]"), Join("nodes[2]", "ip"), Join("steps[0]", ""))
	// Output: nodes nodes[2] nodes[2].ip steps[0]
}
