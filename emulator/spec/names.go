package spec

import (
	"errors"
	"fmt"
)

// CheckName says why s cannot be the name of a lab, node or pod, or returns
// nil. Every name that becomes a path or a namespace name is checked with
// it wherever it comes from: a topology, the command line or a record.
func CheckName(s string) error {
	if msg := checkName(s); msg != "" {
		return fmt.Errorf("name %q %s", s, msg)
	}
	return nil
}

// ErrUnreadable says a topology file could not be read at all (missing,
// not permitted): input that is not there is invalid input, not a failure
// of the machine.
var ErrUnreadable = errors.New("unreadable topology file")
