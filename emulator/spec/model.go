// Package spec turns a topology YAML file into a validated, immutable model of
// a lab. It assigns every omitted address deterministically (same file, same
// addresses) and reports every problem at once, each pointing at the YAML.
// It makes no system calls: everything here runs without root.
package spec

import (
	"net/netip"

	"github.com/labctl/labctl/emulator/yamldoc"
)

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
	DefaultCNI          = CNIBridge
)

// CNI names how a node wires its pods, as the CNI plugin it emulates does.
type CNI string

const (
	// CNIBridge is the bridge style of flannel and the bridge CNI plugin:
	// pods share a bridge on their node whose address is their gateway,
	// each pod's address with its node subnet's prefix length.
	CNIBridge CNI = "bridge"
	// CNICalico is Calico's routed style: no bridge; each pod has a /32 on
	// eth0, whose other end (cali plus a hash) is an unaddressed, proxy-ARP
	// veth on the node with a /32 route to the pod; the pods' gateway is
	// 169.254.1.1; the node's block is a blackhole route, and remote blocks
	// are routed as BIRD (IPIP, no encapsulation) or Felix (VXLAN) do.
	CNICalico CNI = "calico"
)

// CalicoGateway is the gateway of every Calico pod: an address no device
// has, that the host end of the pod's veth answers by proxy ARP.
var CalicoGateway = netip.AddrFrom4([4]byte{169, 254, 1, 1})

// Topology is a validated lab description with every address filled in.
//
// Lab records store it as JSON, so every field of it and of what it holds
// has an explicit JSON name: lowerCamelCase, and its Go name but for case,
// which keeps records written before the names were explicit readable
// (encoding/json matches names regardless of case). Renaming one changes
// the record format: testdata/json/every-field.golden shows it.
type Topology struct {
	// File is the path the topology was loaded from ("" when parsed from memory).
	File    string  `json:"file"`
	Name    string  `json:"name"`
	Network Network `json:"network"`
	Nodes   []Node  `json:"nodes"`
	// Links override the backend for particular node pairs; every other
	// pair uses Network.Backend.
	Links []Link `json:"links"`
	// Deployments are already expanded into pods on their nodes; this keeps
	// what they asked for.
	Deployments []Deployment `json:"deployments"`
	// Services are Kubernetes Services (services.go), the cluster DNS
	// service first when the lab has cluster DNS.
	Services []Service `json:"services"`
	// Warnings are what validation found legal but likely not meant, such
	// as a selector that matches no pod: front ends show them.
	Warnings []yamldoc.Problem `json:"warnings"`
	// Externals are machines outside the cluster (externals.go); Router
	// joins the networks of those not on the underlay to it, nil when
	// there are none.
	Externals []External `json:"externals"`
	Router    *Router    `json:"router"`
}

// Deployment is a set of identical pods spread over nodes.
type Deployment struct {
	Name         string            `json:"name"`
	Replicas     int               `json:"replicas"`
	Labels       map[string]string `json:"labels"`
	NodeSelector map[string]string `json:"nodeSelector"`
	Pods         []string          `json:"pods"` // the pods it made, in replica order
}

// Link sets the backend between two nodes.
type Link struct {
	Nodes   [2]string `json:"nodes"`
	Backend Backend   `json:"backend"`
}

// Network holds the lab-wide address plan.
type Network struct {
	Underlay     netip.Prefix `json:"underlay"`     // the "physical" L2 network between nodes
	ClusterCIDR  netip.Prefix `json:"clusterCIDR"`  // all pod subnets are carved out of this
	ServiceCIDR  netip.Prefix `json:"serviceCIDR"`  // reserved for services; must not overlap the others
	NodeMaskSize int          `json:"nodeMaskSize"` // prefix length of each node's pod subnet
	Backend      Backend      `json:"backend"`
	VXLAN        VXLANOptions `json:"vxlan"`
	IPIP         IPIPOptions  `json:"ipip"`
	MTU          int          `json:"mtu"` // underlay MTU; pod MTU follows the backends in use
	// CNI is how every node wires its pods; "" (a record written before
	// the choice existed) means CNIBridge.
	CNI CNI `json:"cni"`
	// HairpinMode is the lab's default for bridge ports (flannel's
	// hairpinMode: true); each node holds its own, which may differ.
	HairpinMode bool `json:"hairpinMode"`
	// IPv6LinkLocal keeps IPv6 on in every namespace, so each device gets
	// its fe80:: link-local address; off, IPv6 is disabled there.
	IPv6LinkLocal bool `json:"ipv6LinkLocal"`
	// ClusterDNS runs kubeadm's cluster DNS: the kube-dns service at the
	// tenth address of the service CIDR and its CoreDNS pod on the first
	// node (services.go). On by default in a lab with services.
	ClusterDNS bool `json:"clusterDNS"`
	// Masquerade makes every node masquerade its pods' traffic to
	// destinations outside the cluster CIDR to its own address, as
	// flannel's ip-masq does (externals.go). Records written before it
	// existed read false, which is what those labs built.
	Masquerade bool `json:"masquerade"`
}

// VXLANMode says how VXLAN carries pod traffic.
type VXLANMode string

const (
	// VXLANRouted is flannel's vxlan backend: a route per remote pod subnet
	// via that node's VTEP address, with permanent neighbour and FDB
	// entries and no learning.
	VXLANRouted VXLANMode = "routed"
	// VXLANBridged is the article's L2 overlay: the VXLAN device is a port
	// of the pod bridge, floods to the other nodes and learns MACs; one
	// route covers the whole cluster CIDR.
	VXLANBridged VXLANMode = "bridged"
)

// VXLAN flooding in bridged mode.
const (
	FloodMulticast = "multicast" // one multicast group (the article's 239.1.1.1)
	FloodUnicast   = "unicast"   // head-end replication: an all-zero FDB entry per node
)

// VXLANOptions configure the vxlan backend. The defaults are flannel's.
type VXLANOptions struct {
	Mode     VXLANMode  `json:"mode"`
	Device   string     `json:"device"`   // flannel.1 (routed) or vxlan0 (bridged)
	VNI      int        `json:"vni"`      // 1
	Port     int        `json:"port"`     // 8472, flannel's; Calico and the IANA use 4789
	Flooding string     `json:"flooding"` // bridged only: multicast or unicast
	Group    netip.Addr `json:"group"`
}

// IPIP datapaths.
const (
	DatapathAuto      = "auto"      // the kernel's ipip device if it has one, else userspace
	DatapathKernel    = "kernel"    // insist on the kernel's ipip device
	DatapathUserspace = "userspace" // a TUN device served by labctl
)

// IPIPOptions configure the ipip backend. The defaults are Calico's.
type IPIPOptions struct {
	Device   string `json:"device"` // tunl0
	Datapath string `json:"datapath"`
}

// Encapsulation overhead of each backend, in bytes.
func (b Backend) Overhead() int {
	switch b {
	case BackendVXLAN:
		return 50 // outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
	case BackendIPIP:
		return 20 // outer IPv4 header
	}
	return 0
}

// Node is one emulated machine.
type Node struct {
	Name      string       `json:"name"`
	IP        netip.Addr   `json:"ip"`        // address on the underlay
	PodSubnet netip.Prefix `json:"podSubnet"` // this node's share of the cluster CIDR (Calico: its block)
	// Gateway is the pods' default gateway: the bridge's address in the
	// bridge style, CalicoGateway in Calico's.
	Gateway netip.Addr `json:"gateway"`
	Bridge  string     `json:"bridge"` // name of the pod bridge inside the node; "" in Calico's style
	// HairpinMode turns hairpin on for the node's bridge ports: a frame
	// may leave by the port it came in, so a pod reaches itself through a
	// service address. Always false in Calico's style (no bridge).
	HairpinMode bool              `json:"hairpinMode"`
	Labels      map[string]string `json:"labels"`
	Pods        []Pod             `json:"pods"`
}

// Pod is a network namespace attached to its node's bridge, with the
// containers that run in it.
type Pod struct {
	Name          string            `json:"name"`
	Node          string            `json:"node"`
	IP            netip.Addr        `json:"ip"`
	Labels        map[string]string `json:"labels"`
	Deployment    string            `json:"deployment"` // the deployment that made it, if any
	RestartPolicy RestartPolicy     `json:"restartPolicy"`
	Containers    []Container       `json:"containers"`
	Namespace     string            `json:"namespace"` // Kubernetes namespace: "" (default), or kube-system for the cluster DNS pod
}

// RestartPolicy says whether an exited container starts again.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// Built-in workloads, compiled into labctl so a lab needs nothing installed.
const (
	BuiltinWebServer  = "web-server"  // the textbook's python server: pod IP and request path
	BuiltinEchoServer = "echo-server" // TCP and UDP echo
	BuiltinClient     = "client"      // idles; exec into it to run curl and ping
)

// Container is a process (tree) in its pod's namespaces.
type Container struct {
	Name          string        `json:"name"`
	Builtin       string        `json:"builtin"`
	Command       []string      `json:"command"`
	Args          []string      `json:"args"`
	Env           []EnvVar      `json:"env"`
	WorkingDir    string        `json:"workingDir"`
	Ports         []Port        `json:"ports"`
	RootFS        string        `json:"rootfs"`
	RestartPolicy RestartPolicy `json:"restartPolicy"` // "" means the pod's
	Resources     Resources     `json:"resources"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Port is a port a container serves.
type Port struct {
	Name          string `json:"name"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"` // TCP or UDP
}

// Resources are Kubernetes requests and limits: millicores and bytes, 0
// when unset.
type Resources struct {
	CPURequestMilli int64 `json:"cpuRequestMilli"`
	CPULimitMilli   int64 `json:"cpuLimitMilli"`
	MemoryRequest   int64 `json:"memoryRequest"`
	MemoryLimit     int64 `json:"memoryLimit"`
}

// LinkBackend returns the backend between two nodes. It looks through the
// links, so code asking for every pair of a large lab builds its own index.
func (t *Topology) LinkBackend(a, b string) Backend {
	for _, l := range t.Links {
		if (l.Nodes[0] == a && l.Nodes[1] == b) || (l.Nodes[0] == b && l.Nodes[1] == a) {
			return l.Backend
		}
	}
	return t.Network.Backend
}

// Backends lists the backends the lab uses between any two nodes (the
// network's backend when it has a single node), in a stable order. It
// counts pairs instead of visiting them, so it costs O(nodes + links): the
// network's backend is in use unless links cover every pair.
func (t *Topology) Backends() []Backend {
	used := map[Backend]bool{}
	nodes := make(map[string]bool, len(t.Nodes))
	for _, n := range t.Nodes {
		nodes[n.Name] = true
	}
	covered := map[[2]string]bool{}
	for _, l := range t.Links {
		a, b := l.Nodes[0], l.Nodes[1]
		key := [2]string{min(a, b), max(a, b)}
		if a == b || !nodes[a] || !nodes[b] || covered[key] {
			continue // not a pair of this lab, or not the pair's first link
		}
		covered[key] = true
		used[l.Backend] = true
	}
	n := len(nodes)
	if n < 2 || len(covered) < n*(n-1)/2 {
		used[t.Network.Backend] = true
	}
	var out []Backend
	for _, b := range []Backend{BackendHostGW, BackendVXLAN, BackendIPIP} {
		if used[b] {
			out = append(out, b)
		}
	}
	return out
}

// PodMTU is the MTU of pods and bridges: the underlay MTU less the largest
// encapsulation overhead in use, so a full-size pod packet still fits the
// underlay once wrapped (as flannel and Calico size theirs). It is the same
// lab-wide, so two pods always agree on it.
func (t *Topology) PodMTU() int {
	overhead := 0
	for _, b := range t.Backends() {
		overhead = max(overhead, b.Overhead())
	}
	return t.Network.MTU - overhead
}

// UnderlayGateway is the underlay's first host address. labctl never gives
// it to a node unasked; Calico's nodes route their default traffic to it.
func UnderlayGateway(underlay netip.Prefix) netip.Addr { return underlay.Masked().Addr().Next() }

// Calico reports whether the lab's nodes wire their pods in Calico's
// routed style.
func (t *Topology) Calico() bool { return t.Network.CNI == CNICalico }

// HostVeth names the node end of a pod's veth: Calico's name in its
// style, else VethName's.
func (t *Topology) HostVeth(pod string) string {
	if t.Calico() {
		return CalicoVethName(pod)
	}
	return VethName(pod)
}

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
