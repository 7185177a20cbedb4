package spec

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

// MaxFileSize caps what Load reads. The largest lab one host can hold
// (MaxNodes nodes, MaxNamespaces namespaces, their containers) written out
// in full is well under 2 MiB; 4 MiB leaves room for comments and long
// commands while a stray /dev/zero or a 200 MB log file is refused before
// it is read, let alone parsed.
const MaxFileSize = 4 << 20

// format is what messages about a topology file as a whole say.
var format = yamldoc.Format{
	Noun:      "a topology",
	Root:      "name, network and nodes",
	EmptyHint: "a topology needs at least a list of nodes, e.g. nodes: [{name: node1}]",
	MaxSize:   MaxFileSize,
}

// Load reads and validates a topology file. Only a regular file of at most
// MaxFileSize bytes is read; anything else is an *InvalidError naming the
// file, like any other problem of the topology.
func Load(path string) (*Topology, error) {
	data, err := yamldoc.ReadFile(path, format)
	if err != nil {
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			return nil, err
		}
		return nil, fmt.Errorf("read topology: %w: %w", ErrUnreadable, err)
	}
	return Parse(path, data)
}

// Parse validates a topology held in memory; file names it in messages and
// provides the default lab name.
func Parse(file string, data []byte) (*Topology, error) {
	d := yamldoc.NewDecoder(file)
	root, ok := d.Document(data, format)
	if !ok {
		return nil, d.Err()
	}
	t := Decode(d, root)
	if err := d.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Decode validates the topology held by node n, a mapping, of the document
// d decodes: a topology file's top level, or a topology written inline in
// another document (decode it with d.Within("topology")), whose problems
// then join that document's, at their places in its file. The file d reads
// provides the default lab name. Decode returns nil when it found problems.
func Decode(d *yamldoc.Decoder, n *yaml.Node) *Topology {
	before := len(d.Problems())
	dec := &decoder{d}
	raw, ok := dec.decode(n)
	if !ok {
		return nil
	}
	v := &validator{decoder: dec}
	prior := d.Warnings()
	t := v.build(d.File(), raw)
	if len(d.Problems()) > before {
		return nil
	}
	t.Warnings = newWarnings(d.Warnings(), prior)
	return t
}

type validator struct {
	templates  map[string]podTemplate // by deployment name
	containers int                    // counted against MaxContainers
	*decoder
}

// countContainers adds a pod's containers to the lab's and reports, once,
// the pod that takes the lab past MaxContainers.
func (v *validator) countContainers(at *yaml.Node, path string, n int) {
	before := v.containers
	v.containers += n
	if before <= MaxContainers && v.containers > MaxContainers {
		v.Addf(at, path, "this pod brings the lab to %d containers; one host runs at most %d (each is a process, and the kernel's default pid_max of 32768 is shared with the whole host)",
			v.containers, MaxContainers)
	}
}

// nameRE is what labctl accepts for lab, node and pod names: they become
// file names under /run/netns and parts of interface names, so no slashes,
// dots or spaces.
var nameRE = lazyRegexp(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`)

// ifNameRE is the conservative subset of interface names labctl accepts.
var ifNameRE = lazyRegexp(`^[A-Za-z0-9_.-]+$`)

// MaxNameLen keeps "<lab>-<object>" namespace names short enough to type.
const MaxNameLen = 63

// MaxIfNameLen is the longest Linux interface name (IFNAMSIZ minus the NUL).
const MaxIfNameLen = 15

// reservedNames would collide with namespaces labctl itself creates.
var reservedNames = map[string]bool{"underlay": true}

func (v *validator) name(n *yaml.Node, path, what string) (string, bool) {
	s, ok := v.String(n, path)
	if !ok {
		return "", false
	}
	if msg := checkName(s); msg != "" {
		v.Addf(n, path, "%s name %q %s", what, s, msg)
		return "", false
	}
	// Node and pod namespaces sit next to the lab's underlay namespace; the
	// lab name only prefixes them all, so it cannot clash.
	if what != "lab" && reservedNames[s] {
		v.Addf(n, path, "%s name %q is reserved for the lab's underlay namespace", what, s)
		return "", false
	}
	if (what == "lab" || what == "pod" || what == "external") && cgroupFiles[s] {
		v.Addf(n, path, "%s name %q is taken: %s", what, s, cgroupFileWhy)
		return "", false
	}
	return s, true
}

// cgroupFiles are the files of every cgroup v1 directory whose names labctl
// would accept: labs, pods and containers each get a cgroup directory
// (labctl/<lab>/<pod>/<container>), and mkdir fails where such a file is.
var cgroupFiles = map[string]bool{"tasks": true, "notify_on_release": true}

const cgroupFileWhy = "every cgroup v1 directory has a file of that name, and labctl makes a cgroup directory for each lab, pod and container"

// checkName explains why s cannot be a name, or returns "".
func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.Contains(s, "/"):
		return `must not contain "/" (names become files under /run/netns)`
	case len(s) > MaxNameLen:
		return fmt.Sprintf("is %d characters long; at most %d are allowed", len(s), MaxNameLen)
	case !nameRE().MatchString(s):
		return "may contain only letters, digits, '-' and '_', and must start and end with a letter or digit"
	}
	return ""
}

// checkIfName explains why s cannot be a Linux interface name, or returns "".
func checkIfName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxIfNameLen:
		return fmt.Sprintf("is %d bytes long; Linux interface names hold at most %d", len(s), MaxIfNameLen)
	case s == "." || s == "..":
		return "is not a valid interface name"
	case strings.ContainsAny(s, "/: \t\n"):
		return "must not contain '/', ':' or whitespace"
	case !ifNameRE().MatchString(s):
		return "may contain only letters, digits, '-', '_' and '.'"
	}
	return ""
}

// reservedIfName reports whether a bridge called s would clash with a device
// labctl puts in every node: eth0 to the underlay, lo, and the pods' veths.
func reservedIfName(s string) bool {
	return s == "eth0" || s == "lo" || strings.HasPrefix(s, "veth")
}

// prefix reads a lab network: one with room for hosts.
func (v *validator) prefix(n *yaml.Node, path string) (netip.Prefix, bool) {
	p, ok := v.Prefix(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	if p.Bits() > 30 {
		v.Addf(n, path, "%s is too small: a /%d has no room for hosts (use /30 or larger)", p, p.Bits())
		return netip.Prefix{}, false
	}
	return p, true
}

// prefixOr parses n when present, or the default value otherwise.
func (v *validator) prefixOr(n *yaml.Node, path, def string) (netip.Prefix, bool) {
	if n == nil {
		return netip.MustParsePrefix(def), true
	}
	return v.prefix(n, path)
}

// netCheck tracks whether a lab-wide setting is known good. When it is not,
// the problem has been reported and nothing is checked against it, so one
// mistake yields one message.
type netCheck struct {
	underlay, cluster, service, mask bool
}

// build validates a decoded topology in passes, each relying on the ones
// before: the lab name; the network (its ranges, which every address is
// checked against); the deployments, expanded into pods on their nodes;
// the nodes and pods, named and addressed (buildNodes), then the external
// hosts and their router (buildExternals); the links between
// named nodes; the devices each node gets once the backends per pair are
// known.
func (v *validator) build(file string, raw rawTopology) *Topology {
	t := &Topology{File: file}

	// Lab name: explicit, or the file's base name.
	if raw.name != nil {
		t.Name, _ = v.name(raw.name, "name", "lab")
	} else if !v.Misspelled(raw.root, "name") {
		base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		switch msg := checkName(base); {
		case file == "":
			v.Addf(raw.root, "name", "the lab needs a name: add `name:`")
		case msg == "" && cgroupFiles[base]:
			v.Addf(raw.root, "name", "the lab needs a name: add `name:` (the file name %q cannot serve: %s)", base, cgroupFileWhy)
		case msg != "":
			v.Addf(raw.root, "name", "the lab needs a name: add `name:` (the file name %q cannot serve: it %s)", base, msg)
		default:
			t.Name = base
		}
	}

	ok := v.buildNetwork(&t.Network, raw.network)
	if raw.tooManyNodes {
		return t
	}

	if raw.nodesOK && len(raw.nodes) == 0 {
		at := raw.nodesAt
		if at == nil {
			at = raw.root
		}
		v.Addf(at, "nodes", "a lab needs at least one node")
	}

	v.templates = v.expandDeployments(t, &raw)
	v.addClusterDNSPod(t, &raw, ok) // services.go
	v.buildNodes(t, raw, ok).buildExternals(raw.externals)
	v.buildLinks(t, raw)
	v.checkNodeDevices(t, raw)
	v.buildServices(t, raw, ok) // services.go
	return t
}

func (v *validator) backend(n *yaml.Node, path string) (Backend, bool) {
	s, ok := v.Enum(n, path, "backend", string(BackendHostGW), string(BackendVXLAN), string(BackendIPIP))
	return Backend(s), ok
}

// Calico's VXLAN device, VNI and port (Felix's defaults; the device name
// is fixed in Calico).
const (
	CalicoVXLANDevice = "vxlan.calico"
	CalicoVXLANVNI    = 4096
	CalicoVXLANPort   = 4789
)

// buildVXLAN reads the VXLAN options; their defaults are flannel's, or
// Felix's in a Calico lab.
func (v *validator) buildVXLAN(o *VXLANOptions, raw rawVXLAN, cni CNI) {
	calico := cni == CNICalico
	o.Mode = VXLANRouted
	if s, good := v.String(raw.mode, "network.vxlan.mode"); good {
		switch m := VXLANMode(s); {
		case m == VXLANBridged && calico:
			v.Addf(raw.mode, "network.vxlan.mode", "bridged VXLAN makes the VXLAN device a port of the pod bridge, and Calico's nodes have no bridge (use %q, or network.cni: %s)", VXLANRouted, CNIBridge)
		case m == VXLANRouted || m == VXLANBridged:
			o.Mode = m
		default:
			v.Addf(raw.mode, "network.vxlan.mode", "unknown vxlan mode %q (use %q, as flannel, or %q, the vxlan device on the pod bridge)", s, VXLANRouted, VXLANBridged)
		}
	}
	o.Device = "flannel.1"
	switch {
	case calico:
		o.Device = CalicoVXLANDevice
	case o.Mode == VXLANBridged:
		o.Device = "vxlan0"
	}
	if s, good := v.String(raw.device, "network.vxlan.device"); good && v.tunnelDevice(raw.device, "network.vxlan.device", s, cni) {
		if msg := fallbackDevice(s); msg != "" {
			v.Addf(raw.device, "network.vxlan.device", "device name %s", msg)
		} else {
			o.Device = s
		}
	}
	o.VNI = 1
	if calico {
		o.VNI = CalicoVXLANVNI
	}
	if raw.vni != nil {
		if n, good := v.integer(raw.vni, "network.vxlan.vni"); good {
			if n < 1 || n > 1<<24-1 {
				v.Addf(raw.vni, "network.vxlan.vni", "vni %d is out of range (1 to 16777215)", n)
			} else {
				o.VNI = n
			}
		}
	}
	o.Port = 8472
	if calico {
		o.Port = CalicoVXLANPort
	}
	if raw.port != nil {
		if n, good := v.integer(raw.port, "network.vxlan.port"); good {
			if n < 1 || n > 65535 {
				v.Addf(raw.port, "network.vxlan.port", "port %d is out of range (1 to 65535; flannel uses 8472, Calico 4789)", n)
			} else {
				o.Port = n
			}
		}
	}
	o.Flooding = FloodMulticast
	if s, good := v.String(raw.flooding, "network.vxlan.flooding"); good {
		switch {
		case o.Mode != VXLANBridged:
			v.Addf(raw.flooding, "network.vxlan.flooding", "flooding applies only to mode %q (routed VXLAN never floods)", VXLANBridged)
		case s == FloodMulticast || s == FloodUnicast:
			o.Flooding = s
		default:
			v.Addf(raw.flooding, "network.vxlan.flooding", "unknown flooding %q (use %q or %q)", s, FloodMulticast, FloodUnicast)
		}
	}
	if o.Mode == VXLANBridged && o.Flooding == FloodMulticast {
		o.Group = netip.MustParseAddr("239.1.1.1")
	}
	if raw.group != nil {
		a, good := v.Addr(raw.group, "network.vxlan.group")
		switch {
		case !good:
		case o.Mode != VXLANBridged || o.Flooding != FloodMulticast:
			v.Addf(raw.group, "network.vxlan.group", "a multicast group applies only to mode %q with multicast flooding", VXLANBridged)
		case !a.IsMulticast():
			v.Addf(raw.group, "network.vxlan.group", "%s is not a multicast address (224.0.0.0/4)", a)
		default:
			o.Group = a
		}
	}
}

// tunnelDevice checks the name of a tunnel device every node may get: an
// interface name that none of the node's own devices has.
func (v *validator) tunnelDevice(n *yaml.Node, path, s string, cni CNI) bool {
	switch {
	case checkIfName(s) != "":
		v.Addf(n, path, "device name %q %s", s, checkIfName(s))
	case reservedIfName(s):
		v.Addf(n, path, "device name %q clashes with the node's eth0, lo or veth devices", s)
	case cni == CNICalico && strings.HasPrefix(s, calicoVethPrefix):
		v.Addf(n, path, "device name %q clashes with the node's %s* devices, Calico's host ends of the pods' veths", s, calicoVethPrefix)
	default:
		return true
	}
	return false
}

func (v *validator) buildIPIP(o *IPIPOptions, raw rawIPIP, cni CNI) {
	o.Device = "tunl0"
	if s, good := v.String(raw.device, "network.ipip.device"); good && v.tunnelDevice(raw.device, "network.ipip.device", s, cni) {
		if msg := fallbackDevice(s); msg != "" && s != "tunl0" {
			v.Addf(raw.device, "network.ipip.device", "device name %s, and is not an ipip device", msg)
		} else {
			o.Device = s
		}
	}
	o.Datapath = DatapathAuto
	if s, good := v.Enum(raw.datapath, "network.ipip.datapath", "datapath", DatapathAuto, DatapathKernel, DatapathUserspace); good {
		o.Datapath = s
	}
}

// buildLinks checks per node-pair backends: two distinct known nodes each,
// every pair at most once.
func (v *validator) buildLinks(t *Topology, raw rawTopology) {
	known := map[string]bool{}
	for _, n := range t.Nodes {
		if n.Name != "" {
			known[n.Name] = true
		}
	}
	seen := map[[2]string]string{}
	for _, rl := range raw.links {
		if !rl.ok {
			continue
		}
		l := Link{}
		names, good := v.linkNodes(rl, known)
		if rl.backend == nil {
			v.Addf(rl.at, rl.path+".backend", "a link needs a backend (%s, %s or %s)", BackendHostGW, BackendVXLAN, BackendIPIP)
			good = false
		} else if b, ok := v.backend(rl.backend, rl.path+".backend"); ok {
			l.Backend = b
			if b == BackendVXLAN && t.Network.VXLAN.Mode == VXLANBridged {
				v.Addf(rl.backend, rl.path+".backend", "bridged VXLAN is one L2 segment for the whole lab and cannot be chosen per link (use network.vxlan.mode: routed)")
				good = false
			}
		} else {
			good = false
		}
		if !good {
			continue
		}
		key := [2]string{min(names[0], names[1]), max(names[0], names[1])}
		if prev, dup := seen[key]; dup {
			v.Addf(rl.nodes, rl.path+".nodes", "the link %s-%s is already set at %s", names[0], names[1], prev)
			continue
		}
		seen[key] = rl.path
		l.Nodes = [2]string{names[0], names[1]}
		t.Links = append(t.Links, l)
	}
	if t.Network.Backend == BackendVXLAN && t.Network.VXLAN.Mode == VXLANBridged && len(t.Links) > 0 {
		for _, l := range t.Links {
			if l.Backend != BackendVXLAN {
				v.Addf(raw.network.backend, "network.backend", "bridged VXLAN joins every node in one L2 segment; it cannot be mixed with per-link backends")
				break
			}
		}
	}
	if t.Network.MTU-maxOverhead(t) < 576 {
		at := raw.network.mtu
		if at == nil {
			at = raw.root
		}
		v.Addf(at, "network.mtu", "MTU %d leaves pods only %d bytes after encapsulation (at least 576 are needed)", t.Network.MTU, t.Network.MTU-maxOverhead(t))
	}
}

// linkNodes checks the two nodes a link joins: known, and not one twice.
func (v *validator) linkNodes(rl rawLink, known map[string]bool) ([]string, bool) {
	if rl.nodes == nil {
		v.Addf(rl.at, rl.path+".nodes", "a link needs two nodes, e.g. nodes: [node1, node2]")
		return nil, false
	}
	if rl.nodes.Kind != yaml.SequenceNode || len(rl.nodes.Content) != 2 {
		v.Addf(rl.nodes, rl.path+".nodes", "must list exactly two nodes, e.g. [node1, node2]")
		return nil, false
	}
	good := true
	var names []string
	for i, item := range rl.nodes.Content {
		path := fmt.Sprintf("%s.nodes[%d]", rl.path, i)
		s, ok := v.String(item, path)
		switch {
		case !ok:
			good = false
		case !known[s]:
			v.Addf(item, path, "no node is named %q", s)
			good = false
		default:
			names = append(names, s)
		}
	}
	if good && names[0] == names[1] {
		v.Addf(rl.nodes, rl.path+".nodes", "a link joins two different nodes, not %q with itself", names[0])
		good = false
	}
	return names, good
}

func maxOverhead(t *Topology) int { return t.Network.MTU - t.PodMTU() }

// buildNetwork builds the lab-wide settings: the address ranges first
// (networkRanges), then the node subnet size that must fit the cluster
// CIDR (nodeMaskSize), then the backend, tunnel options and MTU. What it
// returns says which settings later checks may rely on.
func (v *validator) buildNetwork(nw *Network, raw rawNetwork) netCheck {
	ok := v.networkRanges(nw, raw)
	ok.mask = v.nodeMaskSize(nw, raw, ok.cluster)

	nw.Backend = DefaultBackend
	if b, good := v.backend(raw.backend, "network.backend"); good {
		nw.Backend = b
	}
	v.buildCNI(nw, raw)
	v.buildMasquerade(nw, raw)
	v.buildVXLAN(&nw.VXLAN, raw.vxlan, nw.CNI)
	v.buildIPIP(&nw.IPIP, raw.ipip, nw.CNI)

	nw.MTU = DefaultMTU
	if raw.mtu != nil {
		if m, good := v.integer(raw.mtu, "network.mtu"); good {
			if m < 576 || m > 65535 {
				v.Addf(raw.mtu, "network.mtu", "MTU %d is out of range (576 to 65535)", m)
			} else {
				nw.MTU = m
			}
		}
	}

	if !raw.ok {
		// "network" is not a mapping: the intended addresses are unknown.
		return netCheck{}
	}
	return ok
}

// buildCNI reads how nodes wire their pods, and the settings of the
// bridge style: hairpin (on by default, as flannel's CNI configuration
// asks) and IPv6 link-local addresses (off by default).
func (v *validator) buildCNI(nw *Network, raw rawNetwork) {
	nw.CNI = DefaultCNI
	if s, good := v.String(raw.cni, "network.cni"); good {
		switch c := CNI(s); {
		case c == CNIBridge || c == CNICalico:
			nw.CNI = c
		case s == "flannel":
			v.Addf(raw.cni, "network.cni", "flannel wires pods with the bridge CNI plugin: write %q", CNIBridge)
		default:
			v.Addf(raw.cni, "network.cni", "unknown cni %q (use %q, as flannel and the bridge plugin, or %q)", s, CNIBridge, CNICalico)
		}
	}
	nw.HairpinMode = nw.CNI == CNIBridge
	if on, good := v.Bool(raw.hairpinMode, "network.hairpinMode"); good {
		if nw.CNI == CNICalico {
			v.Addf(raw.hairpinMode, "network.hairpinMode", "%s", noBridgeHairpin)
		} else {
			nw.HairpinMode = on
		}
	}
	nw.IPv6LinkLocal, _ = v.Bool(raw.ipv6LL, "network.ipv6LinkLocal")
}

const noBridgeHairpin = "hairpin mode is a setting of bridge ports, and Calico's nodes have no bridge (each pod has a routed veth of its own)"

// networkRanges reads the underlay, cluster and service ranges (or their
// defaults) and reports any in reserved space or overlapping another.
func (v *validator) networkRanges(nw *Network, raw rawNetwork) netCheck {
	var ok netCheck
	nw.Underlay, ok.underlay = v.prefixOr(raw.underlay, "network.underlay", DefaultUnderlay)
	nw.ClusterCIDR, ok.cluster = v.prefixOr(raw.clusterCIDR, "network.clusterCIDR", DefaultClusterCIDR)
	nw.ServiceCIDR, ok.service = v.prefixOr(raw.serviceCIDR, "network.serviceCIDR", DefaultServiceCIDR)
	v.checkReserved(raw.underlay, "network.underlay", nw.Underlay, &ok.underlay)
	v.checkReserved(raw.clusterCIDR, "network.clusterCIDR", nw.ClusterCIDR, &ok.cluster)
	v.checkReserved(raw.serviceCIDR, "network.serviceCIDR", nw.ServiceCIDR, &ok.service)
	nets := []struct {
		ok   bool
		p    netip.Prefix
		n    *yaml.Node
		path string
		what string
	}{
		{ok.underlay, nw.Underlay, raw.underlay, "network.underlay", "underlay"},
		{ok.cluster, nw.ClusterCIDR, raw.clusterCIDR, "network.clusterCIDR", "cluster CIDR"},
		{ok.service, nw.ServiceCIDR, raw.serviceCIDR, "network.serviceCIDR", "service CIDR"},
	}
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			a, b := nets[i], nets[j]
			if !a.ok || !b.ok || !a.p.Overlaps(b.p) {
				continue
			}
			// Report at an explicit setting (the second when both are);
			// a default cannot be pointed at, so say where to move it.
			switch {
			case b.n != nil && a.n != nil:
				v.Addf(b.n, b.path, "%s %s overlaps the %s %s (%s)", b.what, b.p, a.what, a.p, a.path)
			case b.n != nil:
				v.Addf(b.n, b.path, "%s %s overlaps the default %s %s (set %s to another range)", b.what, b.p, a.what, a.p, a.path)
			default:
				v.Addf(a.n, a.path, "%s %s overlaps the default %s %s (set %s to another range)", a.what, a.p, b.what, b.p, b.path)
			}
		}
	}
	return ok
}

// nodeMaskSize reads the size of node subnets, which must fit the cluster
// CIDR when that is known good; it reports whether the size is good.
func (v *validator) nodeMaskSize(nw *Network, raw rawNetwork, clusterOK bool) bool {
	nw.NodeMaskSize = DefaultNodeMaskSize
	ok := true
	if raw.nodeMaskSize != nil {
		const path = "network.nodeCIDRMaskSize"
		m, good := v.integer(raw.nodeMaskSize, path)
		switch {
		case !good:
			ok = false
		case m < 1 || m > 30:
			v.Addf(raw.nodeMaskSize, path, "node subnet size /%d is out of range (use 1 to 30; 24 is usual)", m)
			ok = false
		case clusterOK && m < nw.ClusterCIDR.Bits():
			v.Addf(raw.nodeMaskSize, path, "node subnets of /%d do not fit the cluster CIDR %s (use a size between %d and 30)",
				m, nw.ClusterCIDR, nw.ClusterCIDR.Bits())
			ok = false
		default:
			nw.NodeMaskSize = m
		}
	} else if clusterOK && nw.ClusterCIDR.Bits() > nw.NodeMaskSize {
		v.Addf(raw.clusterCIDR, "network.clusterCIDR", "cluster CIDR %s is smaller than one /%d node subnet (set network.nodeCIDRMaskSize between %d and 30)",
			nw.ClusterCIDR, nw.NodeMaskSize, nw.ClusterCIDR.Bits())
		ok = false
	}
	return ok
}

// located pairs a value with where it was written, for conflict messages.
type located struct {
	path string
	name string // the owning node's or pod's name, "" if it has none
}

// owner describes who holds a value: `pod "pod1a" (nodes[0].pods[0].ip)`.
func (l located) owner(kind string) string {
	if l.name == "" {
		return l.path
	}
	return fmt.Sprintf("%s %q (%s)", kind, l.name, l.path)
}

// bridgePorts is how many pod veths a node's bridge takes.
func bridgePorts(t *Topology) (int, string) {
	if t.Network.Backend == BackendVXLAN && t.Network.VXLAN.Mode == VXLANBridged {
		return MaxBridgePorts - 1, fmt.Sprintf(", and bridged VXLAN's %s takes one", t.Network.VXLAN.Device)
	}
	return MaxBridgePorts, ""
}

type subnetClaim struct {
	p netip.Prefix
	located
}

// subnetIndex finds the claimed subnet a new one overlaps in at most 33
// map look-ups, where comparing with each claim would make validation
// quadratic in nodes. Two prefixes overlap when one contains the other;
// claims never overlap each other, so at most one contains a new prefix,
// and under holds, for every prefix containing a claim, the first claim
// (in file order) it contains.
type subnetIndex struct {
	exact map[netip.Prefix]subnetClaim
	under map[netip.Prefix]subnetClaim
}

func (x *subnetIndex) overlap(p netip.Prefix) (subnetClaim, bool) {
	for bits := p.Bits(); bits >= 0; bits-- {
		if c, ok := x.exact[netip.PrefixFrom(p.Addr(), bits).Masked()]; ok {
			return c, true
		}
	}
	c, ok := x.under[p]
	return c, ok
}

func (x *subnetIndex) add(c subnetClaim) {
	if x.exact == nil {
		x.exact, x.under = map[netip.Prefix]subnetClaim{}, map[netip.Prefix]subnetClaim{}
	}
	x.exact[c.p] = c
	for bits := c.p.Bits(); bits >= 0; bits-- {
		q := netip.PrefixFrom(c.p.Addr(), bits).Masked()
		if _, ok := x.under[q]; !ok {
			x.under[q] = c
		}
	}
}

func nodeLabel(name, path string) string {
	if name != "" {
		return name
	}
	return path
}

func andMore(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return " and 1 more node"
	}
	return fmt.Sprintf(" and %d more nodes", n)
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= uint32(1)<<hostBits - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// subnetAllocator hands out node subnets in address order, stepping around
// explicit ones. Explicit subnets do not overlap each other, so sorted by
// address they are also sorted by their end, and one forward sweep serves
// every request: O(n log n) however large the explicit subnets are.
type subnetAllocator struct {
	within   netip.Prefix
	cur      netip.Prefix // next candidate; invalid once within is exhausted
	explicit []netip.Prefix
}

func newSubnetAllocator(within netip.Prefix, bits int, explicit []netip.Prefix) *subnetAllocator {
	explicit = slices.Clone(explicit)
	slices.SortFunc(explicit, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return &subnetAllocator{within: within, cur: netip.PrefixFrom(within.Addr(), bits), explicit: explicit}
}

func (a *subnetAllocator) next() (netip.Prefix, bool) {
	for a.cur.IsValid() {
		// Drop explicit subnets that end before the candidate starts.
		for len(a.explicit) > 0 && broadcast(a.explicit[0]).Less(a.cur.Addr()) {
			a.explicit = a.explicit[1:]
		}
		if len(a.explicit) == 0 || !a.explicit[0].Overlaps(a.cur) {
			p := a.cur
			a.cur = a.after(broadcast(p))
			return p, true
		}
		// Skip past whichever ends later; both are aligned to a size at
		// least as large as a node subnet, so the result stays aligned.
		end := broadcast(a.cur)
		if e := broadcast(a.explicit[0]); end.Less(e) {
			end = e
		}
		a.cur = a.after(end)
	}
	return netip.Prefix{}, false
}

// after returns the candidate starting right after end, or an invalid
// prefix once that leaves the cluster CIDR.
func (a *subnetAllocator) after(end netip.Addr) netip.Prefix {
	n := end.Next()
	if !n.IsValid() || !a.within.Contains(n) {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(n, a.cur.Bits())
}

// lazyRegexp compiles a pattern on first use, not at program start: every
// labctl process, down to each pod's supervisor and builtin server, would
// otherwise pay for compiling patterns only topology loading needs.
func lazyRegexp(pattern string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(pattern) })
}
