package spec

import (
	"encoding/json"
	"github.com/labctl/labctl/internal/golden"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// TestJSONRoundTrip: a topology survives what a lab record does to it,
// JSON and back, for every shipped topology and every valid test input.
func TestJSONRoundTrip(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../topologies/*.yaml", "testdata/valid/*.yaml", "testdata/json/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil || len(m) == 0 {
			t.Fatalf("no topologies match %s: %v", pattern, err)
		}
		files = append(files, m...)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			topo, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			data, err := json.Marshal(topo)
			if err != nil {
				t.Fatal(err)
			}
			var back Topology
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*topo, back) {
				t.Errorf("the topology changed through JSON:\n%s\nbecame\n%s", dump(topo), dump(&back))
			}
		})
	}
}

// TestJSONGolden shows the record format of a topology that holds every
// type of the model: a renamed field changes it.
func TestJSONGolden(t *testing.T) {
	const file = "testdata/json/every-field.yaml"
	topo, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(topo, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, strings.TrimSuffix(file, ".yaml")+".golden", []byte(string(data)+"\n"))
}

// TestJSONFieldNames: every field of the model has an explicit JSON name,
// lowerCamelCase, equal to its Go name but for case, so that records
// written by a labctl that used the Go names still read.
func TestJSONFieldNames(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var check func(reflect.Type)
	check = func(typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			check(typ.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if seen[typ] || typ.PkgPath() != reflect.TypeFor[Topology]().PkgPath() {
			return // netip's types marshal as text
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "":
				t.Errorf("%s.%s has no JSON name", typ.Name(), f.Name)
			case !unicode.IsLower(rune(name[0])) || strings.ContainsAny(name, "_-"):
				t.Errorf("%s.%s: JSON name %q is not lowerCamelCase", typ.Name(), f.Name, name)
			case !strings.EqualFold(name, f.Name):
				t.Errorf("%s.%s: JSON name %q differs from the Go name by more than case: records written with the Go name would lose it", typ.Name(), f.Name, name)
			}
			check(f.Type)
		}
	}
	check(reflect.TypeFor[Topology]())
	if len(seen) < 15 {
		t.Errorf("checked %d types of the model, want all 15", len(seen))
	}
}

// TestJSONReadsGoNames: a record written before the JSON names were
// explicit (with Go's field names) reads into the same topology.
func TestJSONReadsGoNames(t *testing.T) {
	topo, err := Load("testdata/json/every-field.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(goNames(reflect.ValueOf(*topo)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"PodSubnet"`) {
		t.Fatalf("the old-style record has no Go names: %.200s", data)
	}
	var back Topology
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*topo, back) {
		t.Errorf("a record with Go names read as\n%s\nwant\n%s", dump(&back), dump(topo))
	}
}

// goNames renders v as encoding/json did before the model had JSON tags:
// structs of the model as objects keyed by Go field names.
func goNames(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type().PkgPath() != reflect.TypeFor[Topology]().PkgPath() {
			return v.Interface()
		}
		m := map[string]any{}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				m[v.Type().Field(i).Name] = goNames(v.Field(i))
			}
		}
		return m
	case reflect.Slice:
		if v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = goNames(v.Index(i))
		}
		return out
	case reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = goNames(v.Index(i))
		}
		return out
	}
	return v.Interface()
}
