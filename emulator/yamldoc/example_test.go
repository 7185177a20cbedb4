package yamldoc_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

// A drill is a made-up format, shaped like a scenario: a title, a server
// written inline (decoded by a function that knows nothing of where it is
// written), and a list of steps with ids, points, timeouts and kinds.
type drill struct {
	Title  string
	Server server
	Steps  []step
}

type server struct {
	Host netip.Addr
	Port int
}

type step struct {
	ID      string
	Points  int
	Timeout time.Duration
	Kind    string
	Retry   bool
}

var drillFormat = yamldoc.Format{
	Noun:      "a drill",
	Root:      "title and steps",
	EmptyHint: "a drill needs at least a title and one step",
	MaxSize:   1 << 20,
}

func decodeDrill(file string, data []byte) (*drill, error) {
	d := yamldoc.NewDecoder(file)
	root, ok := d.Document(data, drillFormat)
	if !ok {
		return nil, d.Err()
	}
	dr := &drill{}
	d.Mapping(root, "", yamldoc.Keys{
		"title":  func(v *yaml.Node) { dr.Title, _ = d.String(v, "title") },
		"server": func(v *yaml.Node) { dr.Server = decodeServer(d.Within("server"), v) },
		"steps": func(v *yaml.Node) {
			d.List(v, "steps", func(i int, item *yaml.Node, path string) {
				s := step{Timeout: 5 * time.Second}
				var id *yaml.Node // nil: the step has no id
				ok := d.Mapping(item, path, yamldoc.Keys{
					"id":      func(v *yaml.Node) { id = v; s.ID, _ = d.String(v, path+".id") },
					"points":  func(v *yaml.Node) { s.Points, _ = d.Int(v, path+".points") },
					"timeout": func(v *yaml.Node) { s.Timeout, _ = d.Duration(v, path+".timeout") },
					"kind":    func(v *yaml.Node) { s.Kind, _ = d.Enum(v, path+".kind", "kind", "ping", "curl", "capture") },
					"retry":   func(v *yaml.Node) { s.Retry, _ = d.Bool(v, path+".retry") },
				}, yamldoc.Reserved(map[string]string{"faults": "faults"}))
				if ok && id == nil {
					d.Missing(item, path, "id", "every step needs an id")
				}
				dr.Steps = append(dr.Steps, s)
			})
		},
	})
	if err := d.Err(); err != nil {
		return nil, err
	}
	return dr, nil
}

// decodeServer reads a server wherever it is written: d's paths start
// where the server does.
func decodeServer(d *yamldoc.Decoder, n *yaml.Node) server {
	var s server
	d.Mapping(n, "", yamldoc.Keys{
		"host": func(v *yaml.Node) { s.Host, _ = d.Addr(v, "host") },
		"port": func(v *yaml.Node) { s.Port, _ = d.Int(v, "port") },
	})
	return s
}

// Every mistake of a drill at once, each where it is written.
func Example() {
	_, err := decodeDrill("drill.yaml", []byte(`title: Ping across nodes
server:
  host: 10.0.0.1/24
  prot: 80
steps:
  - id: ping
    points: 2
    timeout: 5
    kind: pign
  - points: two
    retry: yes
  - iid: curl
    faults: [drop]
`))
	fmt.Println(err)
	// Output:
	// drill.yaml:3:3: server.host: "10.0.0.1/24": give the address without a prefix length
	// drill.yaml:4:3: server.prot: unknown key "prot" (did you mean "port"?)
	// drill.yaml:8:5: steps[0].timeout: "5" needs a unit, like 5s or 5ms
	// drill.yaml:9:5: steps[0].kind: unknown kind "pign" (use "ping", "curl" or "capture")
	// drill.yaml:10:5: steps[1].points: "two" is not a whole number
	// drill.yaml:10:5: steps[1].id: every step needs an id
	// drill.yaml:11:5: steps[1].retry: "yes" is not true or false
	// drill.yaml:12:5: steps[2].iid: unknown key "iid" (did you mean "id"?)
	// drill.yaml:13:5: steps[2].faults: faults are not supported yet
}

func TestDrill(t *testing.T) {
	got, err := decodeDrill("drill.yaml", []byte(`title: Ping across nodes
server: {host: 10.0.0.1, port: 8080}
steps:
  - {id: ping, points: 2, kind: ping}
  - id: curl
    timeout: 1m30s
    retry: true
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &drill{
		Title:  "Ping across nodes",
		Server: server{Host: netip.MustParseAddr("10.0.0.1"), Port: 8080},
		Steps: []step{
			{ID: "ping", Points: 2, Timeout: 5 * time.Second, Kind: "ping"},
			{ID: "curl", Timeout: 90 * time.Second, Retry: true},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeDrill = %+v\nwant %+v", got, want)
	}
}
