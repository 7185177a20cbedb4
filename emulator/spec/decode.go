package spec

import (
	"fmt"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// The raw* types hold what the YAML said, with positions, before defaults and
// validation. A field whose node is nil was omitted.
type rawTopology struct {
	name    *yaml.Node
	network rawNetwork
	nodes   []rawNode
	nodesAt *yaml.Node
}

type rawNetwork struct {
	at           *yaml.Node
	underlay     *yaml.Node
	clusterCIDR  *yaml.Node
	serviceCIDR  *yaml.Node
	nodeMaskSize *yaml.Node
	backend      *yaml.Node
	mtu          *yaml.Node
}

type rawNode struct {
	at      *yaml.Node
	path    string
	name    *yaml.Node
	ip      *yaml.Node
	podCIDR *yaml.Node
	bridge  *yaml.Node
	pods    []rawPod
	podsAt  *yaml.Node
}

type rawPod struct {
	at   *yaml.Node
	path string
	name *yaml.Node
	ip   *yaml.Node
}

// Keys the format reserves for features that have not landed yet. Using them
// is an error rather than being silently ignored.
var (
	futureTopKeys  = map[string]string{"links": "per node-pair links", "deployments": "deployments", "services": "services", "externals": "external hosts"}
	futureNetKeys  = map[string]string{"vxlan": "vxlan backend options", "ipip": "ipip backend options"}
	futureNodeKeys = map[string]string{"labels": "node labels"}
	futurePodKeys  = map[string]string{"containers": "containers", "labels": "pod labels"}
)

type decoder struct {
	file     string
	problems []Problem
}

func (d *decoder) addf(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// fields walks a mapping node, handing each known key's value to its setter
// and reporting unknown, duplicate and reserved keys.
func (d *decoder) fields(n *yaml.Node, path string, known map[string]func(v *yaml.Node), future map[string]string) {
	if n.Kind != yaml.MappingNode {
		d.addf(n, path, "must be a mapping, not %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		if seen[k.Value] {
			d.addf(k, kp, "duplicate key")
			continue
		}
		seen[k.Value] = true
		if set, ok := known[k.Value]; ok {
			set(v)
			continue
		}
		if what, ok := future[k.Value]; ok {
			d.addf(k, kp, "%s are not supported yet", what)
			continue
		}
		names := make([]string, 0, len(known))
		for name := range known {
			names = append(names, name)
		}
		sort.Strings(names)
		if guess := closest(k.Value, names); guess != "" {
			d.addf(k, kp, "unknown key %q (did you mean %q?)", k.Value, guess)
		} else {
			d.addf(k, kp, "unknown key %q (known keys: %v)", k.Value, names)
		}
	}
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
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "unknown"
}

func (d *decoder) decode(doc *yaml.Node) rawTopology {
	var t rawTopology
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.addf(doc, "", "the file is empty")
			return t
		}
		doc = doc.Content[0]
	}
	d.fields(doc, "", map[string]func(*yaml.Node){
		"name":    func(v *yaml.Node) { t.name = v },
		"network": func(v *yaml.Node) { t.network = d.decodeNetwork(v) },
		"nodes": func(v *yaml.Node) {
			t.nodesAt = v
			d.list(v, "nodes", func(i int, item *yaml.Node, path string) {
				t.nodes = append(t.nodes, d.decodeNode(item, path))
			})
		},
	}, futureTopKeys)
	return t
}

func (d *decoder) list(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			return
		}
		d.addf(n, path, "must be a list, not %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		each(i, item, fmt.Sprintf("%s[%d]", path, i))
	}
}

func (d *decoder) decodeNetwork(n *yaml.Node) rawNetwork {
	nw := rawNetwork{at: n}
	d.fields(n, "network", map[string]func(*yaml.Node){
		"underlay":         func(v *yaml.Node) { nw.underlay = v },
		"clusterCIDR":      func(v *yaml.Node) { nw.clusterCIDR = v },
		"serviceCIDR":      func(v *yaml.Node) { nw.serviceCIDR = v },
		"nodeCIDRMaskSize": func(v *yaml.Node) { nw.nodeMaskSize = v },
		"backend":          func(v *yaml.Node) { nw.backend = v },
		"mtu":              func(v *yaml.Node) { nw.mtu = v },
	}, futureNetKeys)
	return nw
}

func (d *decoder) decodeNode(n *yaml.Node, path string) rawNode {
	node := rawNode{at: n, path: path}
	d.fields(n, path, map[string]func(*yaml.Node){
		"name":    func(v *yaml.Node) { node.name = v },
		"ip":      func(v *yaml.Node) { node.ip = v },
		"podCIDR": func(v *yaml.Node) { node.podCIDR = v },
		"bridge":  func(v *yaml.Node) { node.bridge = v },
		"pods": func(v *yaml.Node) {
			node.podsAt = v
			d.list(v, path+".pods", func(i int, item *yaml.Node, ppath string) {
				pod := rawPod{at: item, path: ppath}
				d.fields(item, ppath, map[string]func(*yaml.Node){
					"name": func(v *yaml.Node) { pod.name = v },
					"ip":   func(v *yaml.Node) { pod.ip = v },
				}, futurePodKeys)
				node.pods = append(node.pods, pod)
			})
		},
	}, futureNodeKeys)
	return node
}

// scalar returns the string value of a scalar node, reporting anything else.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
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
	if err != nil {
		d.addf(n, path, "%q is not a whole number", s)
		return 0, false
	}
	return v, true
}
