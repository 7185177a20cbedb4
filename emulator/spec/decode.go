package spec

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
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
	futureTopKeys  = map[string]string{"services": "services", "externals": "external hosts"}
	futureNetKeys  = map[string]string{}
	futureNodeKeys = map[string]string{}
	futurePodKeys  = map[string]string{}
)

type decoder struct {
	file     string
	problems []Problem
	// keyOf maps a mapping value to its key. Problems with a value point at
	// its key, where the YAML path ends: "27:9: nodes[1].pods[0].ip: ...".
	keyOf map[*yaml.Node]*yaml.Node
	// guessed records, per mapping, the known keys an unknown key was taken
	// for ("nmae" -> "name"), so the key is not also reported as missing.
	guessed map[*yaml.Node]map[string]bool
}

// misspelled reports whether an unknown key of mapping m was already
// reported as a likely typo of key.
func (d *decoder) misspelled(m *yaml.Node, key string) bool {
	return d.guessed[m][key]
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if k, ok := d.keyOf[n]; ok {
		n = k
	}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// empty reports a file without a document (nothing, or only comments and
// blank lines) at its first line, so editors and scripts that jump to
// file:line:col land in it like for any other problem.
func (d *decoder) empty() {
	d.problems = append(d.problems, Problem{File: d.file, Line: 1, Col: 1,
		Msg: "the file is empty: a topology needs at least a list of nodes, e.g. nodes: [{name: node1}]"})
}

// alias reports n if it is a YAML alias. Following aliases would let a small
// file expand into a huge lab, and errors inside the anchored value would
// point somewhere else than where it is used.
func (d *decoder) alias(n *yaml.Node, path string) bool {
	if n.Kind != yaml.AliasNode {
		return false
	}
	d.addf(n, path, "YAML aliases (*%s) are not supported; write the value out", n.Value)
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// fields walks a mapping node, handing each known key's value to its setter
// and reporting unknown, duplicate and reserved keys. It reports whether n
// was usable as a mapping; with allowNull an empty value counts as an empty
// mapping.
func (d *decoder) fields(n *yaml.Node, path string, allowNull bool, known map[string]func(v *yaml.Node), future map[string]string) bool {
	if d.alias(n, path) {
		return false
	}
	if allowNull && isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "must be a mapping, not %s", kindName(n))
		return false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.addf(k, path, "keys must be plain names, not %s", kindName(k))
			continue
		}
		kp := join(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			d.addf(k, kp, "duplicate key %q (first given on line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		if set, ok := known[k.Value]; ok {
			if d.keyOf == nil {
				d.keyOf = map[*yaml.Node]*yaml.Node{}
			}
			d.keyOf[v] = k
			set(v)
			continue
		}
		if what, ok := future[k.Value]; ok {
			d.addf(k, kp, "%s are not supported yet", what)
			continue
		}
		if k.Value == "<<" {
			d.addf(k, kp, "YAML merge keys (<<) are not supported; write the keys out")
			continue
		}
		names := make([]string, 0, len(known))
		for name := range known {
			names = append(names, name)
		}
		sort.Strings(names)
		if guess := closest(k.Value, names); guess != "" {
			if d.guessed == nil {
				d.guessed = map[*yaml.Node]map[string]bool{}
			}
			if d.guessed[n] == nil {
				d.guessed[n] = map[string]bool{}
			}
			d.guessed[n][guess] = true
			d.addf(k, kp, "unknown key %q (did you mean %q?)", k.Value, guess)
		} else {
			d.addf(k, kp, "unknown key %q (known keys: %s)", k.Value, strings.Join(names, ", "))
		}
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if isNull(n) {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "unknown"
}

// root returns the single document's top node, or reports why there is none.
func (d *decoder) root(doc *yaml.Node) (*yaml.Node, bool) {
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.empty()
			return nil, false
		}
		doc = doc.Content[0]
	}
	if isNull(doc) {
		d.empty()
		return nil, false
	}
	if d.alias(doc, "") {
		return nil, false
	}
	if doc.Kind != yaml.MappingNode {
		d.addf(doc, "", "a topology must be a mapping with name, network and nodes, not %s", kindName(doc))
		return nil, false
	}
	return doc, true
}

func (d *decoder) decode(root *yaml.Node) rawTopology {
	t := rawTopology{root: root, network: rawNetwork{ok: true}, nodesOK: true}
	d.fields(root, "", false, map[string]func(*yaml.Node){
		"name":    func(v *yaml.Node) { t.name = v },
		"network": func(v *yaml.Node) { t.network = d.decodeNetwork(v) },
		"nodes": func(v *yaml.Node) {
			t.nodesAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxNodes {
				d.addf(v, "nodes", "%d nodes are more than one host can hold: at most %d (each node's eth0 is a port of the underlay bridge, and a Linux bridge takes at most %d ports)",
					len(v.Content), MaxNodes, MaxBridgePorts)
				t.nodesOK, t.tooManyNodes = false, true
				return
			}
			t.nodesOK = d.list(v, "nodes", func(i int, item *yaml.Node, path string) {
				t.nodes = append(t.nodes, d.decodeNode(item, path))
			})
		},
		"deployments": func(v *yaml.Node) {
			d.list(v, "deployments", func(i int, item *yaml.Node, path string) {
				t.deployments = append(t.deployments, d.decodeDeployment(item, path))
			})
		},
		"links": func(v *yaml.Node) {
			d.list(v, "links", func(i int, item *yaml.Node, path string) {
				l := rawLink{at: item, path: path}
				l.ok = d.fields(item, path, false, map[string]func(*yaml.Node){
					"nodes":   func(v *yaml.Node) { l.nodes = v },
					"backend": func(v *yaml.Node) { l.backend = v },
				}, nil)
				t.links = append(t.links, l)
			})
		},
	}, futureTopKeys)
	return t
}

// list calls each for every item of a list; an empty value is an empty list.
// It reports whether n was usable as a list.
func (d *decoder) list(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) bool {
	if d.alias(n, path) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		if isNull(n) {
			return true
		}
		d.addf(n, path, "must be a list, not %s", kindName(n))
		return false
	}
	for i, item := range n.Content {
		each(i, item, fmt.Sprintf("%s[%d]", path, i))
	}
	return true
}

func (d *decoder) decodeNetwork(n *yaml.Node) rawNetwork {
	nw := rawNetwork{at: n}
	nw.ok = d.fields(n, "network", true, map[string]func(*yaml.Node){
		"underlay":         func(v *yaml.Node) { nw.underlay = v },
		"clusterCIDR":      func(v *yaml.Node) { nw.clusterCIDR = v },
		"serviceCIDR":      func(v *yaml.Node) { nw.serviceCIDR = v },
		"nodeCIDRMaskSize": func(v *yaml.Node) { nw.nodeMaskSize = v },
		"backend":          func(v *yaml.Node) { nw.backend = v },
		"mtu":              func(v *yaml.Node) { nw.mtu = v },
		"vxlan": func(v *yaml.Node) {
			nw.vxlan.at = v
			d.fields(v, "network.vxlan", true, map[string]func(*yaml.Node){
				"mode":     func(v *yaml.Node) { nw.vxlan.mode = v },
				"device":   func(v *yaml.Node) { nw.vxlan.device = v },
				"vni":      func(v *yaml.Node) { nw.vxlan.vni = v },
				"port":     func(v *yaml.Node) { nw.vxlan.port = v },
				"flooding": func(v *yaml.Node) { nw.vxlan.flooding = v },
				"group":    func(v *yaml.Node) { nw.vxlan.group = v },
			}, nil)
		},
		"ipip": func(v *yaml.Node) {
			nw.ipip.at = v
			d.fields(v, "network.ipip", true, map[string]func(*yaml.Node){
				"device":   func(v *yaml.Node) { nw.ipip.device = v },
				"datapath": func(v *yaml.Node) { nw.ipip.datapath = v },
			}, nil)
		},
	}, futureNetKeys)
	return nw
}

func (d *decoder) decodeNode(n *yaml.Node, path string) rawNode {
	node := rawNode{at: n, path: path}
	node.ok = d.fields(n, path, false, map[string]func(*yaml.Node){
		"name":    func(v *yaml.Node) { node.name = v },
		"ip":      func(v *yaml.Node) { node.ip = v },
		"podCIDR": func(v *yaml.Node) { node.podCIDR = v },
		"bridge":  func(v *yaml.Node) { node.bridge = v },
		"labels":  func(v *yaml.Node) { node.labels = v },
		"pods": func(v *yaml.Node) {
			node.podsAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxBridgePorts {
				d.addf(v, path+".pods", "%d pods are more than a node can hold: at most %d (each pod's veth is a port of the node's bridge, and a Linux bridge takes at most %d ports)",
					len(v.Content), MaxBridgePorts, MaxBridgePorts)
				return
			}
			d.list(v, path+".pods", func(i int, item *yaml.Node, ppath string) {
				pod := rawPod{at: item, path: ppath}
				pod.rawPodTemplate.path = ppath
				fields := d.templateFields(&pod.rawPodTemplate)
				fields["name"] = func(v *yaml.Node) { pod.name = v }
				fields["ip"] = func(v *yaml.Node) { pod.ip = v }
				pod.ok = d.fields(item, ppath, false, fields, futurePodKeys)
				node.pods = append(node.pods, pod)
			})
		},
	}, futureNodeKeys)
	return node
}

// scalar returns the string value of a scalar node, reporting anything else.
// A nil node (omitted key) yields false without a report.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n == nil || d.alias(n, path) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.addf(n, path, "must be a single value, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) integer(n *yaml.Node, path string) (int, bool) {
	s, ok := d.scalar(n, path)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange):
		d.addf(n, path, "%s is out of range", s)
		return 0, false
	case err != nil && strings.HasPrefix(s, "/"):
		if _, err := strconv.Atoi(s[1:]); err == nil {
			d.addf(n, path, "%q: give the prefix length without the slash", s)
			return 0, false
		}
		fallthrough
	case err != nil:
		d.addf(n, path, "%q is not a whole number", s)
		return 0, false
	}
	return v, true
}

// templateFields are the keys a pod and a deployment's template share.
func (d *decoder) templateFields(t *rawPodTemplate) map[string]func(*yaml.Node) {
	return map[string]func(*yaml.Node){
		"labels":        func(v *yaml.Node) { t.labels = v },
		"restartPolicy": func(v *yaml.Node) { t.restartPolicy = v },
		"containers": func(v *yaml.Node) {
			t.containersAt = v
			if v.Kind == yaml.SequenceNode && len(v.Content) > MaxContainersPerPod {
				d.addf(v, t.path+".containers", "%d containers are more than a pod may have (at most %d)", len(v.Content), MaxContainersPerPod)
				return
			}
			d.list(v, t.path+".containers", func(i int, item *yaml.Node, path string) {
				c := rawContainer{at: item, path: path}
				c.ok = d.fields(item, path, false, map[string]func(*yaml.Node){
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
				}, map[string]string{"image": "container images (use builtin:, command: or rootfs:)"})
				t.containers = append(t.containers, c)
			})
		},
	}
}

func (d *decoder) decodeDeployment(n *yaml.Node, path string) rawDeployment {
	dep := rawDeployment{at: n, path: path}
	dep.ok = d.fields(n, path, false, map[string]func(*yaml.Node){
		"name":         func(v *yaml.Node) { dep.name = v },
		"replicas":     func(v *yaml.Node) { dep.replicas = v },
		"labels":       func(v *yaml.Node) { dep.labels = v },
		"nodeSelector": func(v *yaml.Node) { dep.nodeSelector = v },
		"template": func(v *yaml.Node) {
			dep.template = v
			dep.tmpl.path = path + ".template"
			d.fields(v, dep.tmpl.path, false, d.templateFields(&dep.tmpl), nil)
		},
	}, nil)
	return dep
}
