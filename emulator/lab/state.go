package lab

import (
	"fmt"

	"github.com/labctl/labctl/emulator/statedir"
)

// The state directory holds, per lab: labs/<lab>.json (the record),
// locks/<lab>.lock (while a labctl changes the lab), netns/<namespace>
// (ownership records), logs/<lab>/ (helper processes' logs) and
// pods/<lab>/<pod>/ (supervisors' state and container logs); bin/ holds the
// applet links containers find in their PATH. Every file operation goes
// through emulator/statedir: labctl runs as root, and nothing another user
// can change may decide what it deletes or signals.

// state opens the state directory, creating it if it is missing.
func (m Manager) state() (*statedir.Dir, error) {
	d, err := statedir.Open(m.dir())
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return d, nil
}

// stateExisting opens the state directory for reading; a missing one is
// fs.ErrNotExist (no labs), and is not created (a user without root can
// still ask for status).
func (m Manager) stateExisting() (*statedir.Dir, error) {
	d, err := statedir.OpenExisting(m.dir())
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return d, nil
}

// ownershipStore keeps the namespace ownership records under netns/ of the
// state directory, through statedir; each call opens the directory, so a
// long-lived Manager holds no descriptor.
type ownershipStore struct{ m Manager }

func (s ownershipStore) CreateFile(name string, data []byte) error {
	d, err := s.m.state()
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.MkdirAll("netns", 0o755); err != nil {
		return err
	}
	return d.CreateFile("netns/"+name, data, 0o644)
}

func (s ownershipStore) ReadFile(name string, max int64) ([]byte, error) {
	d, err := s.m.stateExisting()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile("netns/"+name, max)
}

func (s ownershipStore) Remove(name string) error {
	d, err := s.m.stateExisting()
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Remove("netns/" + name)
}

func (s ownershipStore) Names() ([]string, error) {
	d, err := s.m.stateExisting()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir("netns")
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, err
}
