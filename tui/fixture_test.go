package tui

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/labctl/labctl/emulator/capture"
	"github.com/labctl/labctl/emulator/lab"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/trace"
)

// fixtureFile holds what TestLive recorded from a real lab of
// testdata/mixed.yaml (go test -run TestLive -record as root): the lab's
// status, every packet the TUI captured, and the probe pane's ping and
// trace. The golden tests draw the panes from it, without a lab.
const fixtureFile = "testdata/mixed.json"

// fixtureLab is the name the recording is saved under (the live lab had a
// unique one).
const fixtureLab = "mixed"

type fixture struct {
	Status  *lab.Status            `json:"status"`
	Packets []trace.RecordedPacket `json:"packets"`
	Ping    string                 `json:"ping"`
	Journey *trace.Journey         `json:"journey"`
}

// saveFixture writes a recording, the live lab's name replaced by
// fixtureLab and its private state directory by labctl's default, so that
// the file reads as if recorded from `labctl up testdata/mixed.yaml`.
func saveFixture(t *testing.T, f *fixture, liveName, stateDir string) {
	t.Helper()
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.ReplaceAll(data, []byte(stateDir), []byte(lab.DefaultStateDir))
	data = bytes.ReplaceAll(data, []byte(liveName), []byte(fixtureLab))
	if wd, err := os.Getwd(); err == nil {
		data = bytes.ReplaceAll(data, []byte(wd+"/"), nil)
	}
	if err := os.WriteFile(fixtureFile, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// loadFixture reads the recording back; the status gets its topology
// from testdata/mixed.yaml again (a status does not encode it).
func loadFixture(t *testing.T) (*fixture, []capture.Packet) {
	t.Helper()
	data, err := os.ReadFile(fixtureFile)
	if err != nil {
		t.Fatalf("%v (record it as root: go test ./tui -run TestLive -record)", err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	topo, err := spec.Load(filepath.Join("testdata", "mixed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.Status.Topology = topo
	var pkts []capture.Packet
	for _, r := range f.Packets {
		pkts = append(pkts, capture.Packet{
			Time: r.Time, Label: r.Place, Namespace: r.Namespace, Interface: r.Interface,
			Type: capture.PacketType(r.Type), LinkType: r.LinkType, Length: r.Length, Data: r.Data,
		})
	}
	return &f, pkts
}

func recorded(p capture.Packet) trace.RecordedPacket {
	return trace.RecordedPacket{
		Time: p.Time.UTC(), Place: p.Label, Namespace: p.Namespace, Interface: p.Interface,
		Type: uint8(p.Type), LinkType: p.LinkType, Length: p.Length, Data: p.Data,
	}
}

// plain is a view as a terminal without colours shows it, trailing blanks
// removed, so that golden files are readable text.
func plain(s string) string {
	lines := strings.Split(ansi.Strip(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

func width(s string) int { return ansi.StringWidth(s) }
