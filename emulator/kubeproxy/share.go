package kubeproxy

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/mdlayher/netlink"
)

// RulesForNodes builds the rulesets of the nodes of one cluster, as Rules
// does for each. Where nothing in a node's rules depends on which node it
// is (no service has Local traffic policy, and the node neither
// masquerades pod traffic nor limits its NodePort addresses), nodes of the
// same cluster and service CIDRs get the same tables: they share one copy,
// built once, and Program marshals it once for all of them.
func RulesForNodes(nodes []Node, services []Service) ([]*Ruleset, error) {
	out := make([]*Ruleset, len(nodes))
	local := slices.ContainsFunc(services, func(s Service) bool {
		return s.serviceType() == NodePort && s.externalPolicyLocal()
	})
	shared := map[[2]netip.Prefix]*Ruleset{}
	for i := range nodes {
		n := &nodes[i]
		alike := !local && !n.MasqueradeOutside && len(n.NodePortAddresses) == 0
		key := [2]netip.Prefix{n.ClusterCIDR, n.ServiceCIDR}
		if base := shared[key]; alike && base != nil {
			var p problems
			validateNode(&p, n)
			if err := p.err(); err != nil {
				return nil, err
			}
			out[i] = base.forNode(n.Name)
			continue
		}
		rs, err := Rules(*n, services)
		if err != nil {
			return nil, err
		}
		out[i] = rs
		if alike {
			shared[key] = rs
		}
	}
	return out, nil
}

// forNode is the ruleset for another node whose rules are the same: the
// tables and their marshalled batches are shared.
func (r *Ruleset) forNode(name string) *Ruleset {
	c := *r
	c.Node = name
	return &c
}

// batchCache holds a ruleset's marshalled batches, for every node that
// shares its tables: one transaction (replace) and several (fresh).
type batchCache struct {
	once    [2]sync.Once
	batches [2][][]netlink.Message
	err     [2]error
}

// batches marshals the ruleset's batches, once per ruleset (and the
// rulesets sharing its tables). split asks for a fresh table's several
// transactions. The messages are shared: senders copy them before
// changing a header.
func (r *Ruleset) batches(split bool) ([][]netlink.Message, error) {
	queue := r.batch
	if split {
		queue = r.freshBatches
	}
	if r.cache == nil {
		return marshal(queue)
	}
	i := 0
	if split {
		i = 1
	}
	c := r.cache
	c.once[i].Do(func() { c.batches[i], c.err[i] = marshal(queue) })
	return c.batches[i], c.err[i]
}
