package spec

import "fmt"

// CheckName says why s cannot be the name of a lab, node or pod, or returns
// nil. Every name that becomes a path or a namespace name is checked with
// it wherever it comes from: a topology, the command line or a record.
func CheckName(s string) error {
	if msg := checkName(s); msg != "" {
		return fmt.Errorf("name %q %s", s, msg)
	}
	return nil
}
