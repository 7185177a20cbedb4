// Package spec turns a topology YAML file into a validated, immutable model of
// a lab. It assigns every omitted address deterministically (same file, same
// addresses) and reports every problem at once, each pointing at the YAML.
// It makes no system calls: everything here runs without root.
package spec

import "net/netip"

// Backend names how nodes carry pod traffic to each other.
type Backend string

const (
	// BackendHostGW routes each remote pod subnet via the remote node's
	// underlay IP, as flannel's host-gw backend does.
	BackendHostGW Backend = "host-gw"
	BackendVXLAN  Backend = "vxlan"
	BackendIPIP   Backend = "ipip"
)

// Defaults used when the topology omits a value. They follow what a fresh
// Kubernetes cluster with flannel would use, so the lab looks familiar.
const (
	DefaultUnderlay     = "172.18.0.0/16"
	DefaultClusterCIDR  = "10.244.0.0/16"
	DefaultServiceCIDR  = "10.96.0.0/12"
	DefaultNodeMaskSize = 24
	DefaultMTU          = 1500
	DefaultBridge       = "cni0"
	DefaultBackend      = BackendHostGW
)

// Topology is a validated lab description with every address filled in.
type Topology struct {
	// File is the path the topology was loaded from ("" when parsed from memory).
	File    string
	Name    string
	Network Network
	Nodes   []Node
}

// Network holds the lab-wide address plan.
type Network struct {
	Underlay     netip.Prefix // the "physical" L2 network between nodes
	ClusterCIDR  netip.Prefix // all pod subnets are carved out of this
	ServiceCIDR  netip.Prefix // reserved for services; must not overlap the others
	NodeMaskSize int          // prefix length of each node's pod subnet
	Backend      Backend
	MTU          int // underlay MTU; pod MTU follows the backend
}

// Node is one emulated machine.
type Node struct {
	Name      string
	IP        netip.Addr   // address on the underlay
	PodSubnet netip.Prefix // this node's share of the cluster CIDR
	Gateway   netip.Addr   // the bridge's address, the pods' default gateway
	Bridge    string       // name of the pod bridge inside the node
	Pods      []Pod
}

// Pod is a network namespace attached to its node's bridge.
type Pod struct {
	Name string
	Node string
	IP   netip.Addr
}

// PodMTU is the MTU pods and bridges use. host-gw adds no header, so pods
// get the full underlay MTU.
func (n Network) PodMTU() int { return n.MTU }

// Pods lists every pod of the lab in node order.
func (t *Topology) Pods() []Pod {
	var pods []Pod
	for _, n := range t.Nodes {
		pods = append(pods, n.Pods...)
	}
	return pods
}

// Node returns the node with the given name.
func (t *Topology) Node(name string) (Node, bool) {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Pod returns the pod with the given name.
func (t *Topology) Pod(name string) (Pod, bool) {
	for _, n := range t.Nodes {
		for _, p := range n.Pods {
			if p.Name == name {
				return p, true
			}
		}
	}
	return Pod{}, false
}
