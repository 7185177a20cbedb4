package yamldoc

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// A warning is a Problem that does not make the document invalid: what is
// legal but probably not what the author meant, such as a Kubernetes
// service whose selector matches no pod (Kubernetes accepts it too; the
// service then has no endpoints). Err ignores warnings; front ends print
// them beside a valid document.

// Warnf records a warning about node n at path, placed as Addf places a
// problem.
func (d *Decoder) Warnf(n *yaml.Node, path, format string, args ...any) {
	d.warnings = append(d.warnings, d.at(n, path, fmt.Sprintf(format, args...)))
}

// Warnings returns the warnings recorded so far, in file order.
func (d *Decoder) Warnings() []Problem {
	ws := slices.Clone(d.warnings)
	sortProblems(ws)
	return ws
}
