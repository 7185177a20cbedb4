package lab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// RecordVersion is the format of lab records this labctl writes and reads.
// Version 1 (no "version" field) proved namespaces by inode number.
const RecordVersion = 2

// maxRecordBytes bounds what is read of a record: a 4000-node lab's record
// is a few MB.
const maxRecordBytes = 64 << 20

// Record is what labctl remembers about a lab that is up.
type Record struct {
	Version    int              `json:"version"`
	Name       string           `json:"name"`
	ID         string           `json:"id"`
	File       string           `json:"file,omitempty"`
	Digest     string           `json:"digest"`
	Phase      string           `json:"phase"` // "creating" until up finished
	CreatedAt  time.Time        `json:"createdAt"`
	Topology   *spec.Topology   `json:"topology"`
	Namespaces []plan.Namespace `json:"namespaces"`
	// Datapaths holds, per node with an IPIP device, what serves it and
	// the userspace datapath process when there is one.
	Datapaths map[string]*Datapath `json:"datapaths,omitempty"`
	// Pods holds the supervisor of every pod that runs containers.
	Pods map[string]workload.Shim `json:"pods,omitempty"`
	// Hostnames holds, per node, the process that holds the node's UTS
	// namespace, whose hostname is the node's name (nodes.go).
	Hostnames map[string]*Process `json:"hostnames,omitempty"`

	// Timing says where the time of the Up that returned this record went,
	// and Repaired what a repair restored; neither is saved.
	Timing   UpTiming `json:"-"`
	Repaired []string `json:"-"`
}

// BadRecord is a record that cannot be used; List reports it next to the
// good ones instead of hiding the lab or failing for all.
type BadRecord struct {
	Name string
	Err  error
}

// ErrBadRecord says a lab record is unreadable, truncated, of another
// version or inconsistent.
var ErrBadRecord = errors.New("unusable lab record")

func recordFile(name string) string { return "labs/" + name + ".json" }

// Load returns the record of a lab.
func (m Manager) Load(name string) (*Record, error) {
	if err := checkLabName(name); err != nil {
		return nil, err
	}
	d, err := m.stateExisting()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	data, err := d.ReadFile(recordFile(name), maxRecordBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w: %w", name, ErrBadRecord, err)
	}
	r, err := decodeRecord(name, data)
	if err != nil {
		return nil, fmt.Errorf("lab %q: %w %s: %w", name, ErrBadRecord, d.Join(recordFile(name)), err)
	}
	return r, nil
}

// decodeRecord parses a record and checks that it is whole and consistent
// with its name: every name in it becomes a path or is acted on.
func decodeRecord(name string, data []byte) (*Record, error) {
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not valid JSON (truncated?): %w", err)
	}
	if probe.Version != RecordVersion {
		v := probe.Version
		if v == 0 {
			v = 1
		}
		return nil, fmt.Errorf("written by another labctl version (format %d, this labctl reads %d); `labctl down %s` still removes the lab", v, RecordVersion, name)
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	switch {
	case r.Name != name:
		return nil, fmt.Errorf("it names lab %q", r.Name)
	case r.ID == "":
		return nil, errors.New("it has no lab id")
	case r.Topology == nil:
		return nil, errors.New("it has no topology")
	case len(r.Namespaces) == 0:
		return nil, errors.New("it lists no namespaces")
	}
	for _, ns := range r.Namespaces {
		if ns.Name != plan.NamespaceName(name, objectOrUnderlay(ns)) {
			return nil, fmt.Errorf("namespace %q does not belong to lab %q", ns.Name, name)
		}
		if ns.Object != "" {
			if err := spec.CheckName(ns.Object); err != nil {
				return nil, fmt.Errorf("namespace %q: %w", ns.Name, err)
			}
		}
	}
	for pod := range r.Pods {
		if err := spec.CheckName(pod); err != nil {
			return nil, fmt.Errorf("pod: %w", err)
		}
	}
	for node := range r.Hostnames {
		if err := spec.CheckName(node); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
	}
	return &r, nil
}

func objectOrUnderlay(ns plan.Namespace) string {
	if ns.Role == plan.RoleUnderlay {
		return "underlay"
	}
	return ns.Object
}

// save writes the record atomically: readers see the old or the new one.
func (m Manager) save(r *Record) error {
	r.Version = RecordVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	d, err := m.state()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.MkdirAll("labs", 0o755); err != nil {
		return err
	}
	return d.WriteFile(recordFile(r.Name), data, 0o644)
}

// List returns every recorded lab that can be read, by name, and the
// records that cannot, so one bad record never hides the others.
func (m Manager) List() ([]*Record, []BadRecord, error) {
	d, err := m.stateExisting()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	entries, err := d.ReadDir("labs")
	d.Close()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var recs []*Record
	var bad []BadRecord
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		r, err := m.Load(name)
		switch {
		case errors.Is(err, ErrNotFound):
			// removed since ReadDir
		case err != nil:
			bad = append(bad, BadRecord{Name: name, Err: err})
		default:
			recs = append(recs, r)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	return recs, bad, nil
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkLabName refuses a lab name that is not a valid name before it
// becomes part of a path.
func checkLabName(name string) error {
	if err := spec.CheckName(name); err != nil {
		return fmt.Errorf("lab %w: %w", err, ErrInvalidName)
	}
	return nil
}

// Ownership is where namespace ownership records live, and the tag that
// marks this state directory's namespaces.
func (m Manager) Ownership() netns.Ownership {
	return netns.Ownership{Store: ownershipStore{m}, Tag: netns.StateTag(m.dir())}
}
