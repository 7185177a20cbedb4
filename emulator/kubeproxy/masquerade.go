package kubeproxy

import "fmt"

// Masquerade builds flannel's ip-masq table alone for node (MasqueradeOutside
// is implied): what a node needs so that its pods' traffic to destinations
// outside the cluster CIDR leaves with its address, whether or not the lab
// has services. It is a Ruleset like Rules', rendered and programmed the
// same way; Program replaces only flannel's table, so kube-proxy's, when a
// node has it, stays as it is.
func Masquerade(node Node) (*Ruleset, error) {
	node.MasqueradeOutside = true
	if err := validate(&node, nil); err != nil {
		return nil, fmt.Errorf("masquerade rules for node %q: %w", node.Name, err)
	}
	return &Ruleset{Node: node.Name, Tables: []*Table{flannel(&node)}}, nil
}
