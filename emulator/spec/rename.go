package spec

import "fmt"

// Renamed returns a copy of the topology as the lab called name: the same
// nodes, pods and addresses in namespaces of their own (`<name>-<object>`),
// so one topology runs many times side by side, a copy per student.
func (t *Topology) Renamed(name string) (*Topology, error) {
	if msg := checkName(name); msg != "" {
		return nil, fmt.Errorf("lab name %q %s", name, msg)
	}
	if cgroupFiles[name] {
		return nil, fmt.Errorf("lab name %q is taken: %s", name, cgroupFileWhy)
	}
	c := *t
	c.Name = name
	return &c, nil
}
