package spec

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file holds the rules that mirror what the kernel or the container
// runtime would refuse, or silently get wrong, once `up` runs: `validate`
// passing must mean `up` cannot fail on the input itself.

// reservedRange is IPv4 space no lab network may use.
type reservedRange struct {
	p    netip.Prefix
	name string
	why  string
}

var reservedRanges = []reservedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" space (0.0.0.0/8)`, "it only ever means the host itself as a source"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback space (127.0.0.0/8)", "every namespace delivers it to itself, so each \"remote\" pod would answer from its own loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local space (169.254.0.0/16)", "routers never forward it, and Calico's pod gateway 169.254.1.1 lives there"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast space (224.0.0.0/4)", "the kernel refuses a unicast route via a multicast gateway"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved class E space (240.0.0.0/4, with the broadcast address 255.255.255.255)", "it is not routable unicast space"},
}

// reserved explains why a lab network cannot be p, or returns "".
func reserved(p netip.Prefix) string {
	for _, r := range reservedRanges {
		if r.p.Overlaps(p) {
			if r.p.Contains(p.Addr()) && p.Bits() >= r.p.Bits() {
				return fmt.Sprintf("%s is %s: %s", p, r.name, r.why)
			}
			return fmt.Sprintf("%s includes %s: %s", p, r.name, r.why)
		}
	}
	return ""
}

// checkReserved reports a lab network in reserved space.
func (v *validator) checkReserved(n *yaml.Node, path string, p netip.Prefix, ok *bool) {
	if !*ok || n == nil {
		return // invalid (already reported) or the default
	}
	if msg := reserved(p); msg != "" {
		v.Addf(n, path, "%s", msg)
		*ok = false
	}
}

// VethName names the host-side veth of object (a pod on its node's bridge,
// or a node on the underlay bridge): "veth-<name>" when that fits the
// 15-byte limit of interface names, else "veth" plus a hash of the name, as
// CNI plugins do. Two long names can hash alike: validation refuses that.
func VethName(object string) string {
	if name := "veth-" + object; len(name) <= MaxIfNameLen {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(object))
	return fmt.Sprintf("veth%08x", h.Sum32())
}

// calicoVethPrefix starts the host end of every Calico pod's veth (Felix's
// default InterfacePrefix).
const calicoVethPrefix = "cali"

// CalicoVethName names the host end of a pod's veth as Calico does
// (libcalico-go's VethNameForWorkload): "cali" and the first 11 hex digits
// of the SHA-1 of "<namespace>.<pod>". labctl's pods stand for pods of
// Kubernetes' "default" namespace, so each gets the name Calico would give
// it there.
func CalicoVethName(pod string) string {
	sum := sha1.Sum([]byte("default." + pod))
	return calicoVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// vethClaims finds two objects whose veths share one namespace and name.
type vethClaims map[string]located

// claim reports object's veth (named veth) if another object in the same
// namespace already has that name; what says where the veths live.
func (v *validator) claimVeth(c vethClaims, at *yaml.Node, path, kind, object, veth, where string) {
	if prev, dup := c[veth]; dup && prev.name != object { // the same name twice is reported as such
		why := fmt.Sprintf("names longer than %d bytes are hashed into interface names", MaxIfNameLen-len("veth-"))
		if strings.HasPrefix(veth, calicoVethPrefix) {
			why = `Calico names a pod's veth "cali" and 11 hex digits of a hash of its namespace and name`
		}
		v.Addf(at, path, "%s name %q gives the veth %q %s, as %s does: %s (rename one)",
			kind, object, veth, where, prev.owner(kind), why)
		return
	}
	if _, dup := c[veth]; !dup {
		c[veth] = located{path, object}
	}
}

// fallbackDevices are the devices tunnel modules create in every network
// namespace as soon as they are loaded: a device of that name made by the
// lab fails with "file exists" on hosts with the module, and on hosts
// without it hides the kernel's own device.
var fallbackDevices = map[string]string{
	"tunl0": "ipip", "gre0": "ip_gre", "gretap0": "ip_gre", "erspan0": "ip_gre", "sit0": "sit",
	"ip6tnl0": "ip6_tunnel", "ip6gre0": "ip6_gre", "ip_vti0": "ip_vti", "ip6_vti0": "ip6_vti",
}

// fallbackDevice explains why the lab cannot create a device called s, or
// returns "".
func fallbackDevice(s string) string {
	if m, ok := fallbackDevices[s]; ok {
		return fmt.Sprintf("%q is the device the kernel's %s module creates in every network namespace", s, m)
	}
	return ""
}

// nodeTunnels says which tunnel devices each node gets: the VXLAN device
// where some peer uses vxlan (every node in bridged mode), the IPIP device
// where some peer uses ipip. Counting links per node keeps it linear.
func nodeTunnels(t *Topology) map[string][2]bool {
	links := map[string]int{}
	used := map[string][2]bool{}
	mark := func(name string, b Backend) {
		u := used[name]
		switch b {
		case BackendVXLAN:
			u[0] = true
		case BackendIPIP:
			u[1] = true
		}
		used[name] = u
	}
	for _, l := range t.Links {
		for _, n := range l.Nodes {
			links[n]++
			mark(n, l.Backend)
		}
	}
	bridged := t.Network.Backend == BackendVXLAN && t.Network.VXLAN.Mode == VXLANBridged
	for _, n := range t.Nodes {
		if bridged {
			mark(n.Name, BackendVXLAN)
		} else if links[n.Name] < len(t.Nodes)-1 {
			mark(n.Name, t.Network.Backend)
		}
	}
	return used
}

// checkNodeDevices reports two devices of one node namespace with one
// name: the pod bridge, the VXLAN device and the IPIP device, where the
// node has them. Each clash is reported at what the file set: the node's
// bridge, or else the network's device, once.
func (v *validator) checkNodeDevices(t *Topology, raw rawTopology) {
	nw := t.Network
	tunnels := nodeTunnels(t)
	reported := map[*yaml.Node]bool{}
	once := func(n *yaml.Node, path, format string, args ...any) {
		if n == nil || reported[n] {
			return
		}
		reported[n] = true
		v.Addf(n, path, format, args...)
	}
	for i, rn := range raw.nodes {
		if !rn.ok || i >= len(t.Nodes) {
			continue
		}
		n := t.Nodes[i]
		use := tunnels[n.Name]
		for _, tun := range []struct {
			used      bool
			dev, what string
			devAt     *yaml.Node
			devPath   string
		}{
			{use[0], nw.VXLAN.Device, "VXLAN", raw.network.vxlan.device, "network.vxlan.device"},
			{use[1], nw.IPIP.Device, "IPIP", raw.network.ipip.device, "network.ipip.device"},
		} {
			if !tun.used || tun.dev != n.Bridge {
				continue
			}
			if rn.bridge != nil {
				v.Addf(rn.bridge, rn.path+".bridge", "bridge name %q is also the name of the lab's %s device on %s (%s)",
					n.Bridge, tun.what, nodeLabel(n.Name, rn.path), tun.devPath)
			} else {
				once(tun.devAt, tun.devPath, "device name %q is also the name of %s's pod bridge", tun.dev, nodeLabel(n.Name, rn.path))
			}
		}
		if use[0] && use[1] && nw.VXLAN.Device == nw.IPIP.Device {
			at, path := raw.network.ipip.device, "network.ipip.device"
			if at == nil {
				at, path = raw.network.vxlan.device, "network.vxlan.device"
			}
			once(at, path, "device name %q is both the VXLAN and the IPIP device, and %s has peers of both", nw.IPIP.Device, nodeLabel(n.Name, rn.path))
		}
	}
}

// Bounds of the kernel and the container runtime on what a container is
// given.
const (
	// MaxCPUMilli is the largest CPU limit (and request) in millicores:
	// labctl writes limits as a CFS quota per 100 ms period, and the kernel
	// refuses a cpu.cfs_quota_us (or cpu.max) above 2^44-1 µs with EINVAL
	// (kernel/sched: max_cfs_runtime; confirmed on Linux 6.18, where
	// 17592186044415 is accepted and 17592186044416 refused). A pod's
	// containers' limits add up to its own quota, so the bound holds for
	// their sum too.
	MaxCPUMilli = (1<<44 - 1) * 1000 / cfsPeriodUS
	cfsPeriodUS = 100000

	// MinMemoryLimit is the smallest memory limit a container can start
	// and work with: labctl's container init, builtins and applets peak at
	// 3.5 MiB (measured on Linux 6.18: the client builtin with a curl
	// applet exec'd into it; web-server 1.9 MiB after 30 requests; sh 1.8
	// MiB), and at 1 MiB every kind is OOM-killed in a restart loop. Docker
	// refuses less than 6 MiB for the same reason.
	MinMemoryLimit = 6 << 20

	// MaxArgLen is the longest single argument or "NAME=value" string
	// execve takes (MAX_ARG_STRLEN is 32 pages, 131072 bytes with the NUL).
	MaxArgLen = 32*4096 - 1

	// MaxPathLen and MaxPathElemLen are PATH_MAX and NAME_MAX less the NUL
	// where it counts: longer paths fail with ENAMETOOLONG.
	MaxPathLen     = 4095
	MaxPathElemLen = 255

	// containerBudget is how many bytes of a container's command, args,
	// env, workingDir and rootfs, JSON-encoded, fit the one environment
	// string in which labctl hands a container's configuration to its init
	// (that string is also capped at MAX_ARG_STRLEN); 4 KiB stay free for
	// labctl's own fields (names, cgroup paths, pod IP, default env).
	containerBudget = MaxArgLen - 4096
)

// execString reports a string a container's execve or chdir cannot take.
func (v *validator) execString(n *yaml.Node, path, what, s string) bool {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		v.Addf(n, path, "%s contains a NUL byte, which the kernel cannot pass to a program (strings end at the first NUL)", what)
	case len(s) > MaxArgLen:
		v.Addf(n, path, "%s is %d bytes; the kernel passes at most %d bytes per argument or environment string", what, len(s), MaxArgLen)
	default:
		return true
	}
	return false
}

// pathString reports a path the kernel would refuse.
func (v *validator) pathString(n *yaml.Node, path, what, s string) bool {
	if !v.execString(n, path, what, s) {
		return false
	}
	if len(s) > MaxPathLen {
		v.Addf(n, path, "%s is %d bytes; the kernel takes paths of at most %d", what, len(s), MaxPathLen)
		return false
	}
	for _, elem := range strings.Split(s, "/") {
		if len(elem) > MaxPathElemLen {
			v.Addf(n, path, "%s has a %d-byte component; file names hold at most %d bytes", what, len(elem), MaxPathElemLen)
			return false
		}
	}
	return true
}

// encodedSize is what a container's own strings take in labctl's init
// configuration (JSON, as the workload package encodes it).
func encodedSize(c Container) int {
	size := 0
	add := func(s string) {
		b, _ := json.Marshal(s)
		size += len(b) + 1 // and a comma
	}
	for _, s := range c.Command {
		add(s)
	}
	for _, s := range c.Args {
		add(s)
	}
	for _, e := range c.Env {
		add(e.Name + "=" + e.Value)
	}
	add(c.WorkingDir)
	add(c.RootFS)
	return size
}
