package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return Parse(path, data)
}

// Parse validates a topology held in memory; file names it in messages and
// provides the default lab name.
func Parse(file string, data []byte) (*Topology, error) {
	d := &decoder{file: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.addf(nil, "", "the file is empty")
			return nil, &InvalidError{Problems: d.problems}
		}
		return nil, &InvalidError{Problems: []Problem{yamlProblem(file, err)}}
	}
	raw := d.decode(&doc)
	v := &validator{decoder: d}
	t := v.build(file, raw)
	if len(d.problems) > 0 {
		sortProblems(d.problems)
		return nil, &InvalidError{Problems: d.problems}
	}
	return t, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlProblem turns a YAML syntax error into a located problem.
func yamlProblem(file string, err error) Problem {
	msg := err.Error()
	p := Problem{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &p.Line)
		p.Col = 1
		p.Msg = "invalid YAML: " + m[2]
	}
	return p
}

type validator struct {
	*decoder
}

// nameRE is what labctl accepts for lab, node and pod names: they become
// file names under /run/netns and parts of interface names, so no slashes,
// dots or spaces.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?$`)

// ifNameRE is the conservative subset of interface names labctl accepts.
var ifNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// MaxNameLen keeps "<lab>-<object>" namespace names short enough to type.
const MaxNameLen = 63

// reservedNames would collide with namespaces labctl itself creates.
var reservedNames = map[string]bool{"underlay": true}

func (v *validator) name(n *yaml.Node, path, what string) (string, bool) {
	s, ok := v.scalar(n, path)
	if !ok {
		return "", false
	}
	if msg := checkName(s); msg != "" {
		v.addf(n, path, "%s name %q %s", what, s, msg)
		return "", false
	}
	if reservedNames[s] {
		v.addf(n, path, "%s name %q is reserved for the lab's underlay namespace", what, s)
		return "", false
	}
	return s, true
}

// checkName explains why s cannot be a name, or returns "".
func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.Contains(s, "/"):
		return `must not contain "/" (names become files under /run/netns)`
	case len(s) > MaxNameLen:
		return fmt.Sprintf("is %d characters long; at most %d are allowed", len(s), MaxNameLen)
	case !nameRE.MatchString(s):
		return "may contain only letters, digits, '-' and '_', and must start and end with a letter or digit"
	}
	return ""
}

// checkIfName explains why s cannot be a Linux interface name, or returns "".
func checkIfName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > 15:
		return fmt.Sprintf("is %d bytes long; Linux interface names hold at most 15", len(s))
	case s == "." || s == "..":
		return "is not a valid interface name"
	case strings.ContainsAny(s, "/: \t\n"):
		return "must not contain '/', ':' or whitespace"
	case !ifNameRE.MatchString(s):
		return "may contain only letters, digits, '-', '_' and '.'"
	}
	return ""
}

func (v *validator) prefix(n *yaml.Node, path string) (netip.Prefix, bool) {
	s, ok := v.scalar(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Is4() {
			v.addf(n, path, "%q is an address, not a CIDR (add a prefix length such as /24)", s)
		} else {
			v.addf(n, path, "%q is not a CIDR like 10.0.0.0/24", s)
		}
		return netip.Prefix{}, false
	}
	if !p.Addr().Is4() {
		v.addf(n, path, "%q: IPv6 is not supported yet", s)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		v.addf(n, path, "%q has host bits set (did you mean %s?)", s, p.Masked())
		return netip.Prefix{}, false
	}
	if p.Bits() > 30 {
		v.addf(n, path, "%s is too small: a /%d has no room for hosts (use /30 or larger)", p, p.Bits())
		return netip.Prefix{}, false
	}
	return p, true
}

func (v *validator) addr(n *yaml.Node, path string) (netip.Addr, bool) {
	s, ok := v.scalar(n, path)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			v.addf(n, path, "%q: give the address without a prefix length", s)
		} else {
			v.addf(n, path, "%q is not an IPv4 address", s)
		}
		return netip.Addr{}, false
	}
	if !a.Is4() {
		v.addf(n, path, "%q: IPv6 is not supported yet", s)
		return netip.Addr{}, false
	}
	return a, true
}

// withDefault parses n when present, or the default value otherwise.
func (v *validator) prefixOr(n *yaml.Node, path, def string) (netip.Prefix, bool) {
	if n == nil {
		return netip.MustParsePrefix(def), true
	}
	return v.prefix(n, path)
}

func (v *validator) build(file string, raw rawTopology) *Topology {
	t := &Topology{File: file}

	// Lab name: explicit, or the file's base name.
	if raw.name != nil {
		t.Name, _ = v.name(raw.name, "name", "lab")
	} else {
		base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		if msg := checkName(base); msg != "" || file == "" {
			v.addf(nil, "name", "the lab needs a name: add `name:` (the file name %q cannot serve: it %s)", base, msg)
		} else {
			t.Name = base
		}
	}

	nw := &t.Network
	underOK, clusterOK, serviceOK := false, false, false
	nw.Underlay, underOK = v.prefixOr(raw.network.underlay, "network.underlay", DefaultUnderlay)
	nw.ClusterCIDR, clusterOK = v.prefixOr(raw.network.clusterCIDR, "network.clusterCIDR", DefaultClusterCIDR)
	nw.ServiceCIDR, serviceOK = v.prefixOr(raw.network.serviceCIDR, "network.serviceCIDR", DefaultServiceCIDR)
	nets := []struct {
		ok   bool
		p    netip.Prefix
		n    *yaml.Node
		path string
	}{
		{underOK, nw.Underlay, raw.network.underlay, "network.underlay"},
		{clusterOK, nw.ClusterCIDR, raw.network.clusterCIDR, "network.clusterCIDR"},
		{serviceOK, nw.ServiceCIDR, raw.network.serviceCIDR, "network.serviceCIDR"},
	}
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			a, b := nets[i], nets[j]
			if a.ok && b.ok && a.p.Overlaps(b.p) {
				at := b.n
				if at == nil {
					at = a.n
				}
				if at == nil {
					at = raw.network.at
				}
				v.addf(at, b.path, "%s overlaps %s %s", b.p, a.path, a.p)
			}
		}
	}

	nw.NodeMaskSize = DefaultNodeMaskSize
	maskOK := true
	if raw.network.nodeMaskSize != nil {
		if m, ok := v.integer(raw.network.nodeMaskSize, "network.nodeCIDRMaskSize"); ok {
			nw.NodeMaskSize = m
		} else {
			maskOK = false
		}
	}
	if maskOK && clusterOK {
		if nw.NodeMaskSize < nw.ClusterCIDR.Bits() || nw.NodeMaskSize > 30 {
			at := raw.network.nodeMaskSize
			if at == nil {
				at = raw.network.clusterCIDR
			}
			v.addf(at, "network.nodeCIDRMaskSize", "node subnets of /%d do not fit cluster CIDR %s (use a size between %d and 30)",
				nw.NodeMaskSize, nw.ClusterCIDR, nw.ClusterCIDR.Bits())
			maskOK = false
		}
	}

	nw.Backend = DefaultBackend
	if s, ok := v.scalar(raw.network.backend, "network.backend"); ok {
		switch Backend(s) {
		case BackendHostGW:
			nw.Backend = BackendHostGW
		case BackendVXLAN, BackendIPIP:
			v.addf(raw.network.backend, "network.backend", "backend %q is not supported yet (only %q is)", s, BackendHostGW)
		default:
			v.addf(raw.network.backend, "network.backend", "unknown backend %q (use %q, %q or %q)", s, BackendHostGW, BackendVXLAN, BackendIPIP)
		}
	}

	nw.MTU = DefaultMTU
	if raw.network.mtu != nil {
		if m, ok := v.integer(raw.network.mtu, "network.mtu"); ok {
			if m < 576 || m > 65535 {
				v.addf(raw.network.mtu, "network.mtu", "MTU %d is out of range (576 to 65535)", m)
			} else {
				nw.MTU = m
			}
		}
	}

	if len(raw.nodes) == 0 {
		at := raw.nodesAt
		v.addf(at, "nodes", "a lab needs at least one node")
	}

	v.buildNodes(t, raw, underOK, clusterOK && maskOK)
	return t
}

// located pairs a value with where it was written, for conflict messages.
type located struct {
	node *yaml.Node
	path string
	name string
}

func (v *validator) buildNodes(t *Topology, raw rawTopology, underOK, clusterOK bool) {
	nw := t.Network
	names := map[string]located{}
	claimName := func(n *yaml.Node, path, name, kind string) {
		if prev, dup := names[name]; dup {
			v.addf(n, path, "%s name %q is already used by the %s at %s (node and pod names must be unique in a lab)", kind, name, prev.name, strings.TrimSuffix(prev.path, ".name"))
			return
		}
		names[name] = located{n, path, kind}
	}

	// First pass: names and explicit addresses.
	nodeIPs := map[netip.Addr]located{}
	type subnetClaim struct {
		p netip.Prefix
		located
	}
	var subnets []subnetClaim
	podIPs := map[netip.Addr]located{}
	t.Nodes = make([]Node, len(raw.nodes))
	for i, rn := range raw.nodes {
		n := &t.Nodes[i]
		if rn.name == nil {
			v.addf(rn.at, rn.path+".name", "every node needs a name")
		} else if name, ok := v.name(rn.name, rn.path+".name", "node"); ok {
			n.Name = name
			claimName(rn.name, rn.path+".name", name, "node")
		}
		label := n.Name
		if label == "" {
			label = rn.path
		}
		if rn.ip != nil {
			if ip, ok := v.addr(rn.ip, rn.path+".ip"); ok && underOK {
				switch {
				case !nw.Underlay.Contains(ip):
					v.addf(rn.ip, rn.path+".ip", "%s is outside the underlay %s", ip, nw.Underlay)
				case ip == nw.Underlay.Addr():
					v.addf(rn.ip, rn.path+".ip", "%s is the underlay's network address", ip)
				case ip == broadcast(nw.Underlay):
					v.addf(rn.ip, rn.path+".ip", "%s is the underlay's broadcast address", ip)
				default:
					if prev, dup := nodeIPs[ip]; dup {
						v.addf(rn.ip, rn.path+".ip", "%s is already the IP of %s", ip, prev.path)
					} else {
						nodeIPs[ip] = located{rn.ip, rn.path + ".ip", label}
						n.IP = ip
					}
				}
			}
		}
		if rn.podCIDR != nil {
			if p, ok := v.prefix(rn.podCIDR, rn.path+".podCIDR"); ok && clusterOK {
				switch {
				case !(nw.ClusterCIDR.Contains(p.Addr()) && p.Bits() >= nw.ClusterCIDR.Bits()):
					v.addf(rn.podCIDR, rn.path+".podCIDR", "%s is outside the cluster CIDR %s", p, nw.ClusterCIDR)
				default:
					clash := false
					for _, s := range subnets {
						if s.p.Overlaps(p) {
							v.addf(rn.podCIDR, rn.path+".podCIDR", "%s overlaps %s's pod CIDR %s (%s)", p, s.name, s.p, s.path)
							clash = true
							break
						}
					}
					if !clash {
						subnets = append(subnets, subnetClaim{p, located{rn.podCIDR, rn.path + ".podCIDR", label}})
						n.PodSubnet = p
					}
				}
			}
		}
		n.Bridge = DefaultBridge
		if s, ok := v.scalar(rn.bridge, rn.path+".bridge"); ok {
			if msg := checkIfName(s); msg != "" {
				v.addf(rn.bridge, rn.path+".bridge", "bridge name %q %s", s, msg)
			} else if s == "eth0" || s == "lo" || strings.HasPrefix(s, "veth") {
				v.addf(rn.bridge, rn.path+".bridge", "bridge name %q clashes with the node's eth0, lo or pod veth devices", s)
			} else {
				n.Bridge = s
			}
		}
		for _, rp := range rn.pods {
			p := Pod{Node: n.Name}
			if rp.name == nil {
				v.addf(rp.at, rp.path+".name", "every pod needs a name")
			} else if name, ok := v.name(rp.name, rp.path+".name", "pod"); ok {
				p.Name = name
				claimName(rp.name, rp.path+".name", name, "pod")
			}
			n.Pods = append(n.Pods, p)
		}
	}

	// Second pass: automatic node subnets and node IPs, in file order, never
	// reusing what another node asked for explicitly.
	if clusterOK {
		taken := make([]netip.Prefix, 0, len(subnets))
		for _, s := range subnets {
			taken = append(taken, s.p)
		}
		next := netip.PrefixFrom(nw.ClusterCIDR.Addr(), nw.NodeMaskSize)
		for i := range t.Nodes {
			if t.Nodes[i].PodSubnet.IsValid() || raw.nodes[i].podCIDR != nil {
				continue // explicit, or explicit but invalid (already reported)
			}
			for next.IsValid() && overlapsAny(next, taken) {
				next = nextPrefix(next, nw.ClusterCIDR)
			}
			if !next.IsValid() {
				v.addf(raw.network.clusterCIDR, "network.clusterCIDR", "cluster CIDR %s has no free /%d subnet left for %s", nw.ClusterCIDR, nw.NodeMaskSize, raw.nodes[i].path)
				break
			}
			t.Nodes[i].PodSubnet = next
			taken = append(taken, next)
		}
	}
	if underOK {
		next := nw.Underlay.Addr().Next().Next() // .1 stays free for a future underlay gateway
		for i := range t.Nodes {
			if t.Nodes[i].IP.IsValid() || raw.nodes[i].ip != nil {
				continue
			}
			for {
				if _, used := nodeIPs[next]; !used {
					break
				}
				next = next.Next()
			}
			if !nw.Underlay.Contains(next) || next == broadcast(nw.Underlay) {
				v.addf(raw.network.underlay, "network.underlay", "underlay %s has no free address left for %s", nw.Underlay, raw.nodes[i].path)
				break
			}
			t.Nodes[i].IP = next
			nodeIPs[next] = located{nil, raw.nodes[i].path, t.Nodes[i].Name}
			next = next.Next()
		}
	}

	// Third pass: gateways and pod IPs inside each node's subnet.
	for i, rn := range raw.nodes {
		n := &t.Nodes[i]
		if !n.PodSubnet.IsValid() {
			continue
		}
		subnet := n.PodSubnet
		n.Gateway = subnet.Addr().Next()
		bcast := broadcast(subnet)
		capacity := (1 << (32 - subnet.Bits())) - 3 // network, gateway, broadcast
		if len(rn.pods) > capacity {
			at := rn.podsAt
			v.addf(at, rn.path+".pods", "%d pods do not fit %s's pod CIDR %s, which holds %d", len(rn.pods), nameOr(n.Name, rn.path), subnet, capacity)
			continue
		}
		local := map[netip.Addr]bool{}
		for j, rp := range rn.pods {
			if rp.ip == nil {
				continue
			}
			ip, ok := v.addr(rp.ip, rp.path+".ip")
			if !ok {
				continue
			}
			path := rp.path + ".ip"
			switch {
			case !subnet.Contains(ip):
				v.addf(rp.ip, path, "%s is outside %s's pod CIDR %s", ip, nameOr(n.Name, rn.path), subnet)
			case ip == subnet.Addr():
				v.addf(rp.ip, path, "%s is the network address of %s", ip, subnet)
			case ip == n.Gateway:
				v.addf(rp.ip, path, "%s is the gateway (bridge) address of %s", ip, nameOr(n.Name, rn.path))
			case ip == bcast:
				v.addf(rp.ip, path, "%s is the broadcast address of %s", ip, subnet)
			default:
				if prev, dup := podIPs[ip]; dup {
					v.addf(rp.ip, path, "%s is already the IP of %s", ip, prev.path)
					continue
				}
				podIPs[ip] = located{rp.ip, path, n.Pods[j].Name}
				local[ip] = true
				n.Pods[j].IP = ip
			}
		}
		next := n.Gateway.Next()
		for j, rp := range rn.pods {
			if rp.ip != nil {
				continue
			}
			for local[next] {
				next = next.Next()
			}
			n.Pods[j].IP = next
			local[next] = true
			next = next.Next()
		}
	}
}

func nameOr(name, path string) string {
	if name != "" {
		return name
	}
	return path
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	hostBits := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << hostBits) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// nextPrefix returns the prefix of the same size right after p, or an
// invalid prefix once it leaves within.
func nextPrefix(p, within netip.Prefix) netip.Prefix {
	n := broadcast(p).Next()
	if !n.IsValid() || !within.Contains(n) {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(n, p.Bits())
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}
