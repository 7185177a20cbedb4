package spec

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/yamldoc"
)

// The raw* types hold what the YAML said, with positions, before defaults and
// validation. A field whose node is nil was omitted.
type rawTopology struct {
	root        *yaml.Node
	name        *yaml.Node
	network     rawNetwork
	nodes       []rawNode
	nodesAt     *yaml.Node
	links       []rawLink
	deployments []rawDeployment
	services    []rawService // services.go
	servicesAt  *yaml.Node
	externals   rawExternals // externals.go
	// nodesOK is false when "nodes" was given but is not a list (already
	// reported), so "a lab needs at least one node" would only repeat it.
	nodesOK bool
	// tooManyNodes: "nodes" lists more than MaxNodes (already reported);
	// nothing else is checked, so a huge file costs no more than its parse.
	tooManyNodes bool
}

type rawNetwork struct {
	at *yaml.Node
	// ok is false when "network" is not a mapping (already reported). Its
	// addresses are unknown then, so nothing is checked against them.
	ok           bool
	underlay     *yaml.Node
	clusterCIDR  *yaml.Node
	serviceCIDR  *yaml.Node
	nodeMaskSize *yaml.Node
	backend      *yaml.Node
	mtu          *yaml.Node
	cni          *yaml.Node
	hairpinMode  *yaml.Node
	ipv6LL       *yaml.Node
	clusterDNS   *yaml.Node // services.go
	masquerade   *yaml.Node
	vxlan        rawVXLAN
	ipip         rawIPIP
}

type rawVXLAN struct {
	at                                       *yaml.Node
	mode, device, vni, port, flooding, group *yaml.Node
}

type rawIPIP struct {
	at               *yaml.Node
	device, datapath *yaml.Node
}

type rawLink struct {
	at      *yaml.Node
	ok      bool
	path    string
	nodes   *yaml.Node
	backend *yaml.Node
}

type rawNode struct {
	at      *yaml.Node
	ok      bool // a mapping; otherwise already reported and skipped
	path    string
	name    *yaml.Node
	ip      *yaml.Node
	podCIDR *yaml.Node
	bridge  *yaml.Node
	gateway *yaml.Node
	hairpin *yaml.Node
	labels  *yaml.Node
	pods    []rawPod
	podsAt  *yaml.Node
}

type rawPod struct {
	at   *yaml.Node
	ok   bool // a mapping; otherwise already reported and skipped
	path string
	name *yaml.Node
	ip   *yaml.Node
	rawPodTemplate
	// Pods a deployment made have no YAML of their own: a generated name,
	// and the deployment's template.
	generated  string
	deployment string
}

// rawPodTemplate is what a pod and a deployment's template share.
type rawPodTemplate struct {
	path          string
	labels        *yaml.Node
	restartPolicy *yaml.Node
	containers    []rawContainer
	containersAt  *yaml.Node
}

type rawContainer struct {
	at, name, builtin, command, args, env, workingDir, ports, rootfs, restartPolicy, resources *yaml.Node
	path                                                                                       string
	ok                                                                                         bool
}

type rawDeployment struct {
	at, name, replicas, labels, nodeSelector, template *yaml.Node
	path                                               string
	ok                                                 bool
	tmpl                                               rawPodTemplate
}

// Keys the format reserves for features that have not landed yet. Using them
// is an error rather than being silently ignored.
var (
	futureTopKeys       = map[string]string{}
	futureContainerKeys = map[string]string{"image": "container images (use builtin:, command: or rootfs:)"}
)

// decoder reads a topology's YAML into raw* values, reporting what is not
// even the right shape; validator then checks what the values mean.
type decoder struct {
	*yamldoc.Decoder
}

// integer reads a whole number; a prefix length written with its slash
// ("/24") is recognised, since the number it holds is what was meant.
func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	if n != nil && n.Kind == yaml.ScalarNode && !yamldoc.IsNull(n) && strings.HasPrefix(n.Value, "/") {
		if _, err := strconv.Atoi(n.Value[1:]); err == nil {
			d.Addf(n, path, "%q: give the prefix length without the slash", n.Value)
			return 0, false
		}
	}
	return d.Int(n, path)
}

// decode reads a topology's mapping; it reports whether root was one.
func (d *decoder) decode(root *yaml.Node) (rawTopology, bool) {
	t := rawTopology{root: root, network: rawNetwork{ok: true}, nodesOK: true}
	ok := d.Mapping(root, "", yamldoc.Keys{
		"name":    func(v *yaml.Node) { t.name = v },
		"network": func(v *yaml.Node) { t.network = d.decodeNetwork(v) },
		"nodes": func(v *yaml.Node) {
			t.nodesAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxNodes {
				d.Addf(v, "nodes", "%d nodes are more than one host can hold: at most %d (each node's eth0 is a port of the underlay bridge, and a Linux bridge takes at most %d ports)",
					len(v.Content), MaxNodes, MaxBridgePorts)
				t.nodesOK, t.tooManyNodes = false, true
				return
			}
			t.nodesOK = d.List(v, "nodes", func(i int, item *yaml.Node, path string) {
				t.nodes = append(t.nodes, d.decodeNode(item, path))
			})
		},
		"deployments": func(v *yaml.Node) {
			d.List(v, "deployments", func(i int, item *yaml.Node, path string) {
				t.deployments = append(t.deployments, d.decodeDeployment(item, path))
			})
		},
		"services":  func(v *yaml.Node) { d.decodeServices(v, &t) }, // services.go
		"externals": func(v *yaml.Node) { t.externals = d.decodeExternals(v) },
		"links": func(v *yaml.Node) {
			d.List(v, "links", func(i int, item *yaml.Node, path string) {
				l := rawLink{at: item, path: path}
				l.ok = d.Mapping(item, path, yamldoc.Keys{
					"nodes":   func(v *yaml.Node) { l.nodes = v },
					"backend": func(v *yaml.Node) { l.backend = v },
				})
				t.links = append(t.links, l)
			})
		},
	}, yamldoc.Reserved(futureTopKeys))
	return t, ok
}

func (d *decoder) decodeNetwork(n *yaml.Node) rawNetwork {
	nw := rawNetwork{at: n}
	nw.ok = d.Mapping(n, "network", yamldoc.Keys{
		"underlay":         func(v *yaml.Node) { nw.underlay = v },
		"clusterCIDR":      func(v *yaml.Node) { nw.clusterCIDR = v },
		"serviceCIDR":      func(v *yaml.Node) { nw.serviceCIDR = v },
		"nodeCIDRMaskSize": func(v *yaml.Node) { nw.nodeMaskSize = v },
		"backend":          func(v *yaml.Node) { nw.backend = v },
		"mtu":              func(v *yaml.Node) { nw.mtu = v },
		"cni":              func(v *yaml.Node) { nw.cni = v },
		"hairpinMode":      func(v *yaml.Node) { nw.hairpinMode = v },
		"ipv6LinkLocal":    func(v *yaml.Node) { nw.ipv6LL = v },
		"clusterDNS":       func(v *yaml.Node) { nw.clusterDNS = v }, // services.go
		"masquerade":       func(v *yaml.Node) { nw.masquerade = v },
		"vxlan": func(v *yaml.Node) {
			nw.vxlan.at = v
			d.Mapping(v, "network.vxlan", yamldoc.Keys{
				"mode":     func(v *yaml.Node) { nw.vxlan.mode = v },
				"device":   func(v *yaml.Node) { nw.vxlan.device = v },
				"vni":      func(v *yaml.Node) { nw.vxlan.vni = v },
				"port":     func(v *yaml.Node) { nw.vxlan.port = v },
				"flooding": func(v *yaml.Node) { nw.vxlan.flooding = v },
				"group":    func(v *yaml.Node) { nw.vxlan.group = v },
			}, yamldoc.OrEmpty())
		},
		"ipip": func(v *yaml.Node) {
			nw.ipip.at = v
			d.Mapping(v, "network.ipip", yamldoc.Keys{
				"device":   func(v *yaml.Node) { nw.ipip.device = v },
				"datapath": func(v *yaml.Node) { nw.ipip.datapath = v },
			}, yamldoc.OrEmpty())
		},
	}, yamldoc.OrEmpty())
	return nw
}

func (d *decoder) decodeNode(n *yaml.Node, path string) rawNode {
	node := rawNode{at: n, path: path}
	node.ok = d.Mapping(n, path, yamldoc.Keys{
		"name":        func(v *yaml.Node) { node.name = v },
		"ip":          func(v *yaml.Node) { node.ip = v },
		"podCIDR":     func(v *yaml.Node) { node.podCIDR = v },
		"bridge":      func(v *yaml.Node) { node.bridge = v },
		"gateway":     func(v *yaml.Node) { node.gateway = v },
		"hairpinMode": func(v *yaml.Node) { node.hairpin = v },
		"labels":      func(v *yaml.Node) { node.labels = v },
		"pods": func(v *yaml.Node) {
			node.podsAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxBridgePorts {
				d.Addf(v, path+".pods", "%d pods are more than a node can hold: at most %d (each pod's veth is a port of the node's bridge, and a Linux bridge takes at most %d ports)",
					len(v.Content), MaxBridgePorts, MaxBridgePorts)
				return
			}
			d.List(v, path+".pods", func(i int, item *yaml.Node, ppath string) {
				pod := rawPod{at: item, path: ppath}
				pod.rawPodTemplate.path = ppath
				fields := d.templateFields(&pod.rawPodTemplate)
				fields["name"] = func(v *yaml.Node) { pod.name = v }
				fields["ip"] = func(v *yaml.Node) { pod.ip = v }
				pod.ok = d.Mapping(item, ppath, fields)
				node.pods = append(node.pods, pod)
			})
		},
	})
	return node
}

// templateFields are the keys a pod and a deployment's template share.
func (d *decoder) templateFields(t *rawPodTemplate) yamldoc.Keys {
	return yamldoc.Keys{
		"labels":        func(v *yaml.Node) { t.labels = v },
		"restartPolicy": func(v *yaml.Node) { t.restartPolicy = v },
		"containers": func(v *yaml.Node) {
			t.containersAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxContainersPerPod {
				d.Addf(v, t.path+".containers", "%d containers are more than a pod may have (at most %d)", len(v.Content), MaxContainersPerPod)
				return
			}
			d.List(v, t.path+".containers", func(i int, item *yaml.Node, path string) {
				c := rawContainer{at: item, path: path}
				c.ok = d.Mapping(item, path, yamldoc.Keys{
					"name":          func(v *yaml.Node) { c.name = v },
					"builtin":       func(v *yaml.Node) { c.builtin = v },
					"command":       func(v *yaml.Node) { c.command = v },
					"args":          func(v *yaml.Node) { c.args = v },
					"env":           func(v *yaml.Node) { c.env = v },
					"workingDir":    func(v *yaml.Node) { c.workingDir = v },
					"ports":         func(v *yaml.Node) { c.ports = v },
					"rootfs":        func(v *yaml.Node) { c.rootfs = v },
					"restartPolicy": func(v *yaml.Node) { c.restartPolicy = v },
					"resources":     func(v *yaml.Node) { c.resources = v },
				}, yamldoc.Reserved(futureContainerKeys))
				t.containers = append(t.containers, c)
			})
		},
	}
}

func (d *decoder) decodeDeployment(n *yaml.Node, path string) rawDeployment {
	dep := rawDeployment{at: n, path: path}
	dep.ok = d.Mapping(n, path, yamldoc.Keys{
		"name":         func(v *yaml.Node) { dep.name = v },
		"replicas":     func(v *yaml.Node) { dep.replicas = v },
		"labels":       func(v *yaml.Node) { dep.labels = v },
		"nodeSelector": func(v *yaml.Node) { dep.nodeSelector = v },
		"template": func(v *yaml.Node) {
			dep.template = v
			dep.tmpl.path = path + ".template"
			d.Mapping(v, dep.tmpl.path, d.templateFields(&dep.tmpl))
		},
	})
	return dep
}
