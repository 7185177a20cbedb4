package plan

// Only returns the part of the plan that builds the given namespaces: the
// units working from inside them, in their stages and order. A repair uses
// it to rebuild namespaces that went missing next to ones that survived;
// the units still refer to the survivors (a pod's veth is created from its
// node's namespace), which must then be up.
func (p *Plan) Only(namespaces map[string]bool) *Plan {
	sub := &Plan{Lab: p.Lab, Calico: p.Calico, ExternalNetworks: p.ExternalNetworks}
	for _, ns := range p.Namespaces {
		if namespaces[ns.Name] {
			sub.Namespaces = append(sub.Namespaces, ns)
		}
	}
	for _, s := range p.Stages {
		var units []Unit
		for _, u := range s.Units {
			if namespaces[u.Namespace] {
				units = append(units, u)
			}
		}
		if len(units) > 0 {
			sub.Stages = append(sub.Stages, Stage{Name: s.Name, Units: units})
		}
	}
	return sub
}
