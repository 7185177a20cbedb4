package trace

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/internal/golden"
	"github.com/labctl/labctl/internal/nstest"
)

// Test namespaces are named tracetest-<pid>-<random>-<role>.
var nsPrefix = nstest.Prefix("trace")

func TestMain(m *testing.M) { nstest.Main(m, nsPrefix) }

// record makes the root tests save their recordings under testdata/, for
// TestGolden: go test -run TestNAT -record testdata (e2e's trace tests
// record the lab journeys the same way).
var record = flag.String("record", "", "save the recordings of root tests in this directory")

// saveRecording writes rec as <dir>/<name>.rec.json, with namespace names
// renamed (old, new, old, new...) so that the file reads the same each time.
func saveRecording(t *testing.T, rec *Recording, name string, renames []string) {
	t.Helper()
	data, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.NewReplacer(renames...).Replace(string(data)))
	if err := os.WriteFile(filepath.Join(*record, name+".rec.json"), append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The journey, as people and programs read it, from recordings of real
// traces (testdata/*.rec.json, made by the root tests with -record): the
// analysis replays each one without a lab, so the output is deterministic
// and pinned by golden files.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.rec.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recordings in testdata")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".rec.json")
		t.Run(name, func(t *testing.T) {
			rec := loadRecording(t, f)
			j := Analyze(rec, rec.Replay())
			golden.Check(t, filepath.Join("testdata", name+".table.golden"), []byte(j.Text(false)))
			golden.Check(t, filepath.Join("testdata", name+".wide.golden"), []byte(j.Text(true)))
			out, err := j.JSON()
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", name+".json.golden"), out)
			// The replay asked nothing the recording cannot answer.
			if strings.Contains(string(out), "not recorded") {
				t.Errorf("the analysis asked the kernel something the recording lacks:\n%s", j.Text(false))
			}
		})
	}
}

func loadRecording(t *testing.T, path string) *Recording {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec Recording
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &rec
}

// A journey decoded from its JSON is the same journey: the documented
// shape carries everything.
func TestJSONRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.rec.json"))
	for _, f := range files {
		rec := loadRecording(t, f)
		j := Analyze(rec, rec.Replay())
		data, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		var back Journey
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if back.Text(true) != j.Text(true) {
			t.Errorf("%s: the journey read back from JSON renders differently", f)
		}
	}
}

func TestCheck(t *testing.T) {
	from := Place{Name: "pod1a", Namespace: "/run/netns/x-pod1a"}
	to := netip.MustParseAddr("192.168.2.20")
	for _, tc := range []struct {
		name  string
		req   Request
		error string
	}{
		{"icmp defaults", Request{From: from, To: to}, ""},
		{"no sender", Request{To: to}, "no place to send from"},
		{"ipv6", Request{From: from, To: netip.MustParseAddr("fd00::1")}, "not an IPv4 address"},
		{"tcp without port", Request{From: from, To: to, Probe: Probe{Protocol: TCP}}, "needs a port"},
		{"icmp with port", Request{From: from, To: to, Probe: Probe{Protocol: ICMP, Port: 80}}, "has no port"},
		{"tcp with size", Request{From: from, To: to, Probe: Probe{Protocol: TCP, Port: 80, Size: 10}}, "bare SYN"},
		{"udp with df", Request{From: from, To: to, Probe: Probe{Protocol: UDP, Port: 53, DontFragment: true}}, "DF anyway"},
		{"too large", Request{From: from, To: to, Probe: Probe{Size: 70000}}, "outside 0..65507"},
		{"unknown protocol", Request{From: from, To: to, Probe: Probe{Protocol: "sctp"}}, "unknown protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Check()
			switch {
			case tc.error == "" && err != nil:
				t.Fatal(err)
			case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)):
				t.Fatalf("error %v, want one saying %q", err, tc.error)
			}
			if tc.error == "" {
				if tc.req.Probe.Protocol != ICMP || tc.req.Probe.Size != DefaultICMPSize || tc.req.Timeout == 0 || len(tc.req.Places) != 1 {
					t.Errorf("defaults not filled in: %+v", tc.req)
				}
			}
		})
	}
}
