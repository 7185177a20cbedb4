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
