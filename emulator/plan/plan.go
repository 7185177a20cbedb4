// Package plan compiles a validated topology into the ordered list of kernel
// operations that build it. Every operation can print itself as the
// equivalent iproute2/sysctl command, so `labctl up --dry-run` doubles as a
// teaching aid: the same plan either goes to the kernel through netlink or
// becomes a shell script. The package is pure: no system calls.
package plan

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"

	"github.com/labctl/labctl/emulator/spec"
)

// UnderlayBridge is the bridge in the underlay namespace that plays the
// "physical" switch every node's eth0 is cabled to.
const UnderlayBridge = "underlay0"

// Roles of the namespaces a lab owns.
const (
	RoleUnderlay = "underlay"
	RoleNode     = "node"
	RolePod      = "pod"
)

// Plan is everything `labctl up` does, in order.
type Plan struct {
	Lab        string
	Namespaces []Namespace
	Stages     []Stage
}

// Namespace is one network namespace the lab owns.
type Namespace struct {
	Name   string // as listed by `ip netns`
	Role   string // underlay, node or pod
	Object string // the node or pod it emulates ("" for the underlay)
}

// Stage is a step every unit of which can run in parallel; stages run one
// after the other because later ones use what earlier ones created.
type Stage struct {
	Name  string
	Units []Unit
}

// Unit is the work done from inside one namespace, in order. Its first
// operation usually creates that namespace.
type Unit struct {
	Namespace string
	Ops       []Op
}

// Op is one kernel operation. Command renders it as the iproute2 (or sysctl)
// command a person would type for the same effect.
type Op interface {
	Command() string
}

// AddNamespace creates a named network namespace (`ip netns add`).
type AddNamespace struct {
	Name string
}

// SetSysctl writes a sysctl inside a namespace. Only net.* keys are
// per-namespace, so only those are ever planned.
type SetSysctl struct {
	Namespace string
	Key       string // dotted form, e.g. net.ipv4.ip_forward
	Value     string
}

// SetLinkUp brings an existing device up.
type SetLinkUp struct {
	Namespace string
	Device    string
}

// AddBridge creates a Linux bridge and brings it up.
type AddBridge struct {
	Namespace string
	Name      string
	MTU       int
}

// AddVeth creates a veth pair with each end directly in its namespace. The
// first end is attached to Master (if set) and brought up; the peer is left
// down for its own namespace to configure.
type AddVeth struct {
	Namespace     string
	Name          string
	Master        string
	PeerNamespace string
	PeerName      string
	MTU           int
}

// AddAddress assigns an address with its prefix length to a device.
type AddAddress struct {
	Namespace string
	Device    string
	Address   netip.Prefix // address/len, e.g. 192.168.1.1/24
}

// AddRoute adds a unicast route. A zero Dst means the default route.
type AddRoute struct {
	Namespace string
	Dst       netip.Prefix
	Via       netip.Addr
	Device    string // optional
}

func (o AddNamespace) Command() string { return "ip netns add " + o.Name }

func (o SetSysctl) Command() string {
	return fmt.Sprintf("ip netns exec %s sysctl -qw %s=%s", o.Namespace, o.Key, o.Value)
}

func (o SetLinkUp) Command() string {
	return fmt.Sprintf("ip -n %s link set %s up", o.Namespace, o.Device)
}

func (o AddBridge) Command() string {
	return fmt.Sprintf("ip -n %s link add %s mtu %d up type bridge", o.Namespace, o.Name, o.MTU)
}

func (o AddVeth) Command() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip -n %s link add %s mtu %d", o.Namespace, o.Name, o.MTU)
	if o.Master != "" {
		fmt.Fprintf(&b, " master %s", o.Master)
	}
	fmt.Fprintf(&b, " up type veth peer name %s mtu %d netns %s", o.PeerName, o.MTU, o.PeerNamespace)
	return b.String()
}

func (o AddAddress) Command() string {
	return fmt.Sprintf("ip -n %s addr add %s dev %s", o.Namespace, o.Address, o.Device)
}

func (o AddRoute) Command() string {
	dst := "default"
	if o.Dst.IsValid() {
		dst = o.Dst.String()
	}
	cmd := fmt.Sprintf("ip -n %s route add %s via %s", o.Namespace, dst, o.Via)
	if o.Device != "" {
		cmd += " dev " + o.Device
	}
	return cmd
}

// NamespaceName is the name of the namespace emulating object in lab. Lab
// names are part of it so two labs never collide.
func NamespaceName(lab, object string) string { return lab + "-" + object }

// UnderlayNamespace is the name of the lab's underlay namespace.
func UnderlayNamespace(lab string) string { return NamespaceName(lab, "underlay") }

// VethName names the host-side veth of object (a pod on its node's bridge,
// or a node on the underlay bridge): "veth-<name>" when that fits the
// 15-byte limit of interface names, else "veth" plus a hash of the name, as
// CNI plugins do.
func VethName(object string) string {
	if name := "veth-" + object; len(name) <= 15 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(object))
	return fmt.Sprintf("veth%08x", h.Sum32())
}

// Compile turns a validated topology into a plan.
func Compile(t *spec.Topology) (*Plan, error) {
	p := &Plan{Lab: t.Name}
	underlay := UnderlayNamespace(t.Name)
	mtu := t.Network.PodMTU()

	p.Namespaces = append(p.Namespaces, Namespace{Name: underlay, Role: RoleUnderlay})
	p.Stages = append(p.Stages, Stage{Name: "underlay", Units: []Unit{{
		Namespace: underlay,
		Ops: []Op{
			AddNamespace{underlay},
			SetLinkUp{underlay, "lo"},
			AddBridge{underlay, UnderlayBridge, t.Network.MTU},
		},
	}}})

	nodes := Stage{Name: "nodes"}
	pods := Stage{Name: "pods"}
	underlayVeths := map[string]string{}
	for _, n := range t.Nodes {
		ns := NamespaceName(t.Name, n.Name)
		p.Namespaces = append(p.Namespaces, Namespace{Name: ns, Role: RoleNode, Object: n.Name})
		veth := VethName(n.Name)
		if other, clash := underlayVeths[veth]; clash {
			return nil, fmt.Errorf("node %q: veth name %q clashes with node %q's", n.Name, veth, other)
		}
		underlayVeths[veth] = n.Name
		ops := []Op{
			AddNamespace{ns},
			SetSysctl{ns, "net.ipv4.ip_forward", "1"},
			SetLinkUp{ns, "lo"},
			AddVeth{Namespace: underlay, Name: veth, Master: UnderlayBridge, PeerNamespace: ns, PeerName: "eth0", MTU: t.Network.MTU},
			SetLinkUp{ns, "eth0"},
			AddAddress{ns, "eth0", netip.PrefixFrom(n.IP, t.Network.Underlay.Bits())},
			AddBridge{ns, n.Bridge, mtu},
			AddAddress{ns, n.Bridge, netip.PrefixFrom(n.Gateway, n.PodSubnet.Bits())},
		}
		// host-gw: every other node's pod subnet is one hop away on the
		// underlay, via that node's own address.
		for _, peer := range t.Nodes {
			if peer.Name != n.Name {
				ops = append(ops, AddRoute{Namespace: ns, Dst: peer.PodSubnet, Via: peer.IP, Device: "eth0"})
			}
		}
		nodes.Units = append(nodes.Units, Unit{Namespace: ns, Ops: ops})

		podVeths := map[string]string{}
		for _, pod := range n.Pods {
			pns := NamespaceName(t.Name, pod.Name)
			p.Namespaces = append(p.Namespaces, Namespace{Name: pns, Role: RolePod, Object: pod.Name})
			pveth := VethName(pod.Name)
			if other, clash := podVeths[pveth]; clash || pveth == n.Bridge {
				return nil, fmt.Errorf("pod %q: veth name %q clashes with %q on node %q", pod.Name, pveth, other, n.Name)
			}
			podVeths[pveth] = pod.Name
			pods.Units = append(pods.Units, Unit{Namespace: pns, Ops: []Op{
				AddNamespace{pns},
				SetLinkUp{pns, "lo"},
				AddVeth{Namespace: ns, Name: pveth, Master: n.Bridge, PeerNamespace: pns, PeerName: "eth0", MTU: mtu},
				SetLinkUp{pns, "eth0"},
				AddAddress{pns, "eth0", netip.PrefixFrom(pod.IP, n.PodSubnet.Bits())},
				AddRoute{Namespace: pns, Via: n.Gateway},
			}})
		}
	}
	p.Stages = append(p.Stages, nodes, pods)
	return p, nil
}

// Ops returns every operation in execution order.
func (p *Plan) Ops() []Op {
	var ops []Op
	for _, s := range p.Stages {
		for _, u := range s.Units {
			ops = append(ops, u.Ops...)
		}
	}
	return ops
}
