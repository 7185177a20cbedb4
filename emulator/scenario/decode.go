package scenario

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/yamldoc"
)

// Limits on what one scenario may ask for: far beyond an exercise, far
// below what would let a file keep a grader busy for hours.
const (
	MaxFileSize    = 1 << 20
	MaxChecks      = 1000
	MaxSteps       = 100
	MaxFaults      = 100
	MaxVariants    = 100
	MaxTimeout     = 5 * time.Minute
	MaxRetry       = 10 * time.Minute
	MaxSleep       = time.Minute
	MaxPoints      = 1000
	MaxCount       = 1000 // echoes of one ping, packets of one capture
	MaxPingAll     = 100  // endpoints of one pingall: 9900 pairs
	MaxPingSize    = 65507
	maxIDLen       = 64
	defaultTimeout = time.Second
	defaultRetry   = 3 * time.Second
)

var format = yamldoc.Format{
	Noun:      "a scenario",
	Root:      "title, topology and sections",
	EmptyHint: "a scenario needs at least a title, a topology and a section of checks",
	MaxSize:   MaxFileSize,
}

// Problem and InvalidError are yamldoc's: a scenario's problems and its
// topology's are reported alike.
type (
	Problem      = yamldoc.Problem
	InvalidError = yamldoc.InvalidError
)

// ErrUnreadable says a scenario file could not be read at all.
var ErrUnreadable = errors.New("unreadable scenario file")

// Load reads and validates a scenario file. A topology it names by path
// is read relative to the scenario's directory; its problems are reported
// with the scenario's, at their places in the topology file.
func Load(path string) (*Scenario, error) {
	data, err := yamldoc.ReadFile(path, format)
	if err != nil {
		var invalid *InvalidError
		if errors.As(err, &invalid) {
			return nil, err
		}
		return nil, fmt.Errorf("read scenario: %w: %w", ErrUnreadable, err)
	}
	return Parse(path, data)
}

// Parse validates a scenario held in memory; file names it in messages
// and is where a topology path is relative to.
func Parse(file string, data []byte) (*Scenario, error) {
	d := &decoder{Decoder: yamldoc.NewDecoder(file), ids: map[string]int{}}
	root, ok := d.Document(data, format)
	if !ok {
		return nil, d.Err()
	}
	s := d.decode(root)
	problems := append(d.foreign, d.Problems()...)
	if len(problems) > 0 {
		return nil, &InvalidError{Problems: problems}
	}
	return s, nil
}

type decoder struct {
	*yamldoc.Decoder
	// topo is the scenario's topology; nil when it is missing or
	// invalid (already reported), and names are then not checked.
	topo *spec.Topology
	// foreign are problems of another file: the topology's.
	foreign []Problem
	ids     map[string]int // check id -> line
	timeout time.Duration
	retry   time.Duration
	points  int
	checks  int
}

func (d *decoder) decode(root *yaml.Node) *Scenario {
	s := &Scenario{File: d.File()}
	var title, topo, setup, faults, defaults, sections *yaml.Node
	d.Mapping(root, "", yamldoc.Keys{
		"title":       func(v *yaml.Node) { title = v },
		"description": func(v *yaml.Node) { s.Description, _ = d.String(v, "description") },
		"topology":    func(v *yaml.Node) { topo = v },
		"setup":       func(v *yaml.Node) { setup = v },
		"faults":      func(v *yaml.Node) { faults = v },
		"defaults":    func(v *yaml.Node) { defaults = v },
		"sections":    func(v *yaml.Node) { sections = v },
	})
	if title == nil {
		d.Missing(root, "", "title", "a scenario needs a title")
	} else if s.Title, _ = d.String(title, "title"); title.Kind == yaml.ScalarNode && strings.TrimSpace(s.Title) == "" && !yamldoc.IsNull(title) {
		d.Addf(title, "title", "must not be empty")
	}
	if topo == nil {
		d.Missing(root, "", "topology", "a scenario needs a topology: a path relative to this file, or one written inline")
	} else {
		d.topology(s, topo)
	}
	d.defaults(defaults)
	if setup != nil {
		d.steps(s, setup)
	}
	if faults != nil {
		d.faults(s, faults)
	}
	if sections == nil {
		d.Missing(root, "", "sections", "a scenario needs sections of checks")
	} else {
		d.sections(s, sections)
	}
	return s
}

// topology reads the scenario's topology: a file (relative to the
// scenario's directory) or a mapping written inline.
func (d *decoder) topology(s *Scenario, n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		d.topo = spec.Decode(d.Within("topology"), n)
		s.Topology = d.topo
		return
	}
	rel, ok := d.String(n, "topology")
	if !ok {
		return
	}
	path := rel
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.File()), rel)
	}
	t, err := spec.Load(path)
	var invalid *spec.InvalidError
	switch {
	case errors.As(err, &invalid):
		d.foreign = append(d.foreign, invalid.Problems...)
		d.Addf(n, "topology", "the topology %s is invalid (%d %s)", path, len(invalid.Problems), plural(len(invalid.Problems), "problem"))
	case err != nil:
		d.Addf(n, "topology", "%v", err)
	default:
		s.Topology, s.TopologyFile, d.topo = t, path, t
	}
}

func (d *decoder) defaults(n *yaml.Node) {
	d.timeout, d.retry, d.points = defaultTimeout, defaultRetry, 1
	if n == nil {
		return
	}
	d.Mapping(n, "defaults", yamldoc.Keys{
		"timeout": func(v *yaml.Node) { d.timeout = d.duration(v, "defaults.timeout", MaxTimeout, true, d.timeout) },
		"retry":   func(v *yaml.Node) { d.retry = d.duration(v, "defaults.retry", MaxRetry, false, d.retry) },
		"points":  func(v *yaml.Node) { d.points = d.bounded(v, "defaults.points", 0, MaxPoints, d.points) },
	}, yamldoc.OrEmpty())
}

// duration reads a duration up to limit (positive when nonzero is set),
// or returns def.
func (d *decoder) duration(n *yaml.Node, path string, limit time.Duration, nonzero bool, def time.Duration) time.Duration {
	v, ok := d.Duration(n, path)
	switch {
	case !ok:
		return def
	case nonzero && v == 0:
		d.Addf(n, path, "must be longer than 0s")
		return def
	case v > limit:
		d.Addf(n, path, "%s is longer than the %s a scenario may ask for", v, limit)
		return def
	}
	return v
}

// bounded reads a whole number in [lo, hi], or returns def.
func (d *decoder) bounded(n *yaml.Node, path string, lo, hi, def int) int {
	v, ok := d.Int(n, path)
	if !ok {
		return def
	}
	if v < lo || v > hi {
		d.Addf(n, path, "%d is out of range (%d to %d)", v, lo, hi)
		return def
	}
	return v
}

// strings reads one string or a list of them.
func (d *decoder) strings(n *yaml.Node, path string) []string {
	if n.Kind == yaml.SequenceNode {
		var out []string
		d.List(n, path, func(i int, item *yaml.Node, p string) {
			if s, ok := d.String(item, p); ok {
				out = append(out, s)
			}
		})
		return out
	}
	if s, ok := d.String(n, path); ok {
		return []string{s}
	}
	return nil
}

func (d *decoder) regexp(n *yaml.Node, path string) *regexp.Regexp {
	s, ok := d.String(n, path)
	if !ok {
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		d.Addf(n, path, "%q is not a regular expression: %v", s, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return nil
	}
	return re
}

// known lists the pods, nodes and external hosts of the topology, for
// messages.
func (d *decoder) known() []string {
	var names []string
	for _, n := range d.topo.Nodes {
		names = append(names, n.Name)
		for _, p := range n.Pods {
			names = append(names, p.Name)
		}
	}
	for _, e := range d.topo.Externals {
		names = append(names, e.Name)
	}
	return names
}

// unknownName reports a name that is no pod, node or external host of the
// topology, with the name it most likely misspells.
func (d *decoder) unknownName(n *yaml.Node, path, what, name string, candidates []string) {
	if guess := yamldoc.Closest(name, candidates); guess != "" {
		d.Addf(n, path, "no %s %q in the topology (did you mean %q?)", what, name, guess)
		return
	}
	if len(candidates) == 0 {
		d.Addf(n, path, "no %s %q: the topology has none", what, name)
		return
	}
	list := candidates
	if len(list) > 12 {
		list = append(slices.Clone(list[:12]), "...")
	}
	d.Addf(n, path, "no %s %q in the topology (it has %s)", what, name, strings.Join(list, ", "))
}

// place reads where a probe or command runs: a pod, a node or "underlay".
func (d *decoder) place(n *yaml.Node, path string) (Place, bool) {
	name, ok := d.String(n, path)
	if !ok {
		return Place{}, false
	}
	if name == "underlay" {
		return Place{Role: plan.RoleUnderlay, Name: "underlay"}, true
	}
	if d.topo == nil {
		return Place{Name: name}, true
	}
	if _, ok := d.topo.Pod(name); ok {
		return Place{Role: plan.RolePod, Name: name}, true
	}
	if _, ok := d.topo.Node(name); ok {
		return Place{Role: plan.RoleNode, Name: name}, true
	}
	if p, ok := d.outsidePlace(name); ok {
		return p, true
	}
	d.unknownName(n, path, d.namedWhat(), name, append(d.known(), d.outsidePlaces("underlay")...))
	return Place{}, false
}

// reservedEndpoints are forms of an endpoint written as a mapping that
// the format keeps for features still to come: none at the moment.
var reservedEndpoints = map[string]string{}

// endpoint reads what a probe is aimed at: a pod, node or external host by
// name, or an IPv4 address; or the same as a mapping ({pod: x}, {node: x},
// {external: x}, {address: a}), or a service's cluster IP or node port
// ({service: name}, {nodePort: {node, service, port}}).
func (d *decoder) endpoint(n *yaml.Node, path string) (Endpoint, bool) {
	if n.Kind == yaml.MappingNode {
		var e Endpoint
		set := 0
		ok := d.Mapping(n, path, yamldoc.Keys{
			"pod":      func(v *yaml.Node) { set++; e, _ = d.named(v, path+".pod", EndpointPod) },
			"node":     func(v *yaml.Node) { set++; e, _ = d.named(v, path+".node", EndpointNode) },
			"address":  func(v *yaml.Node) { set++; e.Kind = EndpointAddress; e.Addr, _ = d.Addr(v, path+".address") },
			"external": func(v *yaml.Node) { set++; e, _ = d.named(v, path+".external", EndpointExternal) },
			"service":  func(v *yaml.Node) { set++; e = d.serviceEndpoint(v, path+".service") },   // services.go
			"nodePort": func(v *yaml.Node) { set++; e = d.nodePortEndpoint(v, path+".nodePort") }, // services.go
		}, yamldoc.Reserved(reservedEndpoints))
		if ok && set != 1 && len(n.Content) > 0 && !d.reservedUsed(n) {
			d.Addf(n, path, "an endpoint is one of pod, node, external, address, service or nodePort")
		}
		return e, e.Kind != "" && (e.Addr.IsValid() || d.topo == nil)
	}
	s, ok := d.String(n, path)
	if !ok {
		return Endpoint{}, false
	}
	if d.isName(s) || !strings.ContainsAny(s, ".:/") {
		return d.named(n, path, "")
	}
	a, ok := d.Addr(n, path)
	if !ok {
		return Endpoint{}, false
	}
	return Endpoint{Kind: EndpointAddress, Addr: a}, true
}

// reservedUsed reports whether a mapping holds a reserved endpoint key,
// already reported.
func (d *decoder) reservedUsed(n *yaml.Node) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, ok := reservedEndpoints[n.Content[i].Value]; ok {
			return true
		}
	}
	return false
}

func (d *decoder) isName(s string) bool {
	if d.topo == nil {
		return false
	}
	_, pod := d.topo.Pod(s)
	_, node := d.topo.Node(s)
	_, external := d.topo.External(s)
	return pod || node || external
}

// named resolves a pod, node or external host (kind "" for any) to its
// address.
func (d *decoder) named(n *yaml.Node, path, kind string) (Endpoint, bool) {
	name, ok := d.String(n, path)
	if !ok {
		return Endpoint{}, false
	}
	if d.topo == nil {
		return Endpoint{Kind: kind, Name: name}, true
	}
	if p, ok := d.topo.Pod(name); ok && kind != EndpointNode && kind != EndpointExternal {
		return Endpoint{Kind: EndpointPod, Name: name, Addr: p.IP}, true
	}
	if nd, ok := d.topo.Node(name); ok && kind != EndpointPod && kind != EndpointExternal {
		return Endpoint{Kind: EndpointNode, Name: name, Addr: nd.IP}, true
	}
	if e, ok := d.topo.External(name); ok && (kind == "" || kind == EndpointExternal) {
		return Endpoint{Kind: EndpointExternal, Name: name, Addr: e.IP}, true
	}
	what, candidates := d.namedWhat(), d.known()
	switch kind {
	case EndpointExternal:
		if len(d.topo.Externals) == 0 {
			d.Addf(n, path, "no external host %q: the topology has none (its externals list them)", name)
			return Endpoint{}, false
		}
		what, candidates = "external host", nil
		for _, e := range d.topo.Externals {
			candidates = append(candidates, e.Name)
		}
	case EndpointPod:
		what, candidates = "pod", nil
		for _, p := range d.topo.Pods() {
			candidates = append(candidates, p.Name)
		}
	case EndpointNode:
		what, candidates = "node", nil
		for _, nd := range d.topo.Nodes {
			candidates = append(candidates, nd.Name)
		}
	}
	d.unknownName(n, path, what, name, candidates)
	return Endpoint{}, false
}

// address reads an address given as such or as a pod or node's name.
func (d *decoder) address(n *yaml.Node, path string) netip.Addr {
	e, ok := d.endpoint(n, path)
	if !ok {
		return netip.Addr{}
	}
	return e.Addr
}

// prefix reads a network (CIDR), an address (a /32) or a pod or node's
// name (its address, a /32).
func (d *decoder) prefix(n *yaml.Node, path string) netip.Prefix {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "/") {
		p, _ := d.Prefix(n, path)
		return p
	}
	if a := d.address(n, path); a.IsValid() {
		return netip.PrefixFrom(a, 32)
	}
	return netip.Prefix{}
}

// device reads a Linux interface name.
func (d *decoder) device(n *yaml.Node, path string) string {
	s, ok := d.String(n, path)
	if !ok {
		return ""
	}
	switch {
	case len(s) > spec.MaxIfNameLen:
		d.Addf(n, path, "%q is %d bytes long; Linux interface names hold at most %d", s, len(s), spec.MaxIfNameLen)
	case s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n"):
		d.Addf(n, path, "%q is not an interface name", s)
	default:
		return s
	}
	return ""
}

func (d *decoder) container(n *yaml.Node, path string, in Place) string {
	c, ok := d.String(n, path)
	if !ok || d.topo == nil {
		return c
	}
	var cs []spec.Container
	switch in.Role {
	case plan.RolePod:
		pod, _ := d.topo.Pod(in.Name)
		cs = pod.Containers
	case plan.RoleExternal:
		e, _ := d.topo.External(in.Name)
		cs = e.Containers
	default:
		d.Addf(n, path, "%s is not a pod: only pods (and external hosts) run containers", in.Name)
		return ""
	}
	what := "pod"
	if in.Role == plan.RoleExternal {
		what = "external host"
	}
	var names []string
	for _, pc := range cs {
		names = append(names, pc.Name)
	}
	if !slices.Contains(names, c) {
		switch guess := yamldoc.Closest(c, names); {
		case len(names) == 0:
			d.Addf(n, path, "%s %q runs no containers", what, in.Name)
		case guess != "":
			d.Addf(n, path, "%s %q has no container %q (did you mean %q?)", what, in.Name, c, guess)
		default:
			d.Addf(n, path, "%s %q has no container %q (it has %s)", what, in.Name, c, strings.Join(names, ", "))
		}
		return ""
	}
	return c
}

func (d *decoder) steps(s *Scenario, n *yaml.Node) {
	if n.Kind == yaml.SequenceNode && len(n.Content) > MaxSteps {
		d.Addf(n, "setup", "%d setup steps are more than a scenario may have (at most %d)", len(n.Content), MaxSteps)
		return
	}
	d.List(n, "setup", func(i int, item *yaml.Node, path string) {
		st := Step{Line: item.Line}
		kinds := 0
		ok := d.Mapping(item, path, yamldoc.Keys{
			"name": func(v *yaml.Node) { st.Name, _ = d.String(v, path+".name") },
			"command": func(v *yaml.Node) {
				kinds++
				st.Command = d.command(v, path+".command")
			},
			"sleep": func(v *yaml.Node) { kinds++; st.Sleep = d.duration(v, path+".sleep", MaxSleep, true, 0) },
		})
		if ok && kinds != 1 {
			d.Addf(item, path, "a setup step is either a command or a sleep")
		}
		s.Setup = append(s.Setup, st)
	})
}

func (d *decoder) faults(s *Scenario, n *yaml.Node) {
	if n.Kind == yaml.SequenceNode && len(n.Content) > MaxFaults {
		d.Addf(n, "faults", "%d faults are more than a scenario may have (at most %d)", len(n.Content), MaxFaults)
		return
	}
	seen := map[string]int{}
	d.List(n, "faults", func(i int, item *yaml.Node, path string) {
		f := Fault{ID: fmt.Sprintf("fault-%d", i+1), Line: item.Line}
		var idNode, oneOf *yaml.Node
		keys := yamldoc.Keys{
			"id":    func(v *yaml.Node) { idNode = v },
			"oneOf": func(v *yaml.Node) { oneOf = v },
		}
		var direct []FaultVariant
		for _, kind := range FaultKinds {
			keys[kind] = func(v *yaml.Node) {
				if fv, ok := d.faultVariant(kind, v, path+"."+kind); ok {
					direct = append(direct, fv)
				} else {
					direct = append(direct, FaultVariant{})
				}
			}
		}
		if !d.Mapping(item, path, keys) {
			return
		}
		if idNode != nil {
			if id, ok := d.id(idNode, path+".id"); ok {
				if line, dup := seen[id]; dup {
					d.Addf(idNode, path+".id", "fault id %q is taken (line %d)", id, line)
				}
				seen[id], f.ID = idNode.Line, id
			}
		}
		switch {
		case oneOf != nil && len(direct) > 0:
			d.Addf(item, path, "a fault is one change or oneOf its variants, not both")
		case oneOf != nil:
			f.Variants = d.oneOf(oneOf, path+".oneOf")
		case len(direct) == 1:
			f.Variants = direct
		case len(direct) == 0:
			d.Addf(item, path, "a fault needs a kind: one of %s, or oneOf a list of them", strings.Join(FaultKinds, ", "))
		default:
			d.Addf(item, path, "a fault is one change; give several as separate faults, or as oneOf for a variant per student")
		}
		s.Faults = append(s.Faults, f)
	})
}

func (d *decoder) oneOf(n *yaml.Node, path string) []FaultVariant {
	if n.Kind == yaml.SequenceNode && len(n.Content) > MaxVariants {
		d.Addf(n, path, "%d variants are more than a fault may have (at most %d)", len(n.Content), MaxVariants)
		return nil
	}
	var out []FaultVariant
	listed := d.List(n, path, func(i int, item *yaml.Node, p string) {
		var got []FaultVariant
		keys := yamldoc.Keys{}
		for _, kind := range FaultKinds {
			keys[kind] = func(v *yaml.Node) {
				fv, _ := d.faultVariant(kind, v, p+"."+kind)
				got = append(got, fv)
			}
		}
		if !d.Mapping(item, p, keys) {
			return
		}
		if len(got) != 1 {
			d.Addf(item, p, "a variant is exactly one change: one of %s", strings.Join(FaultKinds, ", "))
			return
		}
		out = append(out, got[0])
	})
	if listed && len(n.Content) == 0 {
		d.Addf(n, path, "oneOf needs at least one variant")
	}
	return out
}

// faultVariant reads one change of the given kind.
func (d *decoder) faultVariant(kind string, n *yaml.Node, path string) (FaultVariant, bool) {
	v := FaultVariant{Kind: kind, Hook: plan.HookForward}
	var in, dst, peer, via, device, mtu, key, value, hook, protocol, src, port, ip, mac, container *yaml.Node
	var onlink *yaml.Node
	keys := yamldoc.Keys{}
	field := func(name string, target **yaml.Node) { keys[name] = func(x *yaml.Node) { *target = x } }
	switch kind {
	case FaultDeleteRoute, FaultReplaceRoute:
		field("in", &in)
		field("dst", &dst)
		field("peer", &peer)
		field("via", &via)
		field("dev", &device)
		if kind == FaultReplaceRoute {
			field("onlink", &onlink)
		}
	case FaultLinkDown:
		field("in", &in)
		field("dev", &device)
	case FaultMTU:
		field("in", &in)
		field("dev", &device)
		field("mtu", &mtu)
	case FaultSysctl:
		field("in", &in)
		field("key", &key)
		field("value", &value)
	case FaultDropRule:
		field("in", &in)
		field("hook", &hook)
		field("protocol", &protocol)
		field("src", &src)
		field("dst", &dst)
		field("port", &port)
	case FaultDeleteNeighbor:
		field("in", &in)
		field("dev", &device)
		field("ip", &ip)
		field("peer", &peer)
	case FaultDeleteFDB:
		field("in", &in)
		field("dev", &device)
		field("mac", &mac)
		field("dst", &dst)
		field("peer", &peer)
	case FaultStopContainer:
		field("pod", &in)
		field("container", &container)
	}
	if !d.Mapping(n, path, keys) {
		return v, false
	}
	before := len(d.Problems())
	need := func(x *yaml.Node, key, msg string) bool {
		if x == nil {
			d.Missing(n, path, key, "%s", msg)
			return false
		}
		return true
	}
	inKey := "in"
	if kind == FaultStopContainer {
		inKey = "pod"
	}
	if need(in, inKey, "a fault needs the namespace it happens in: a pod, a node or underlay") {
		v.In, _ = d.place(in, path+"."+inKey)
	}
	if device != nil {
		v.Device = d.device(device, path+".dev")
	}
	var peerNode spec.Node
	var hasPeer bool
	if peer != nil {
		if e, ok := d.named(peer, path+".peer", EndpointNode); ok && d.topo != nil {
			peerNode, _ = d.topo.Node(e.Name)
			hasPeer = true
		}
	}
	switch kind {
	case FaultDeleteRoute, FaultReplaceRoute:
		switch {
		case dst != nil && peer != nil:
			d.Addf(peer, path+".peer", "give dst or peer, not both")
		case dst != nil:
			if s, ok := d.String(dst, path+".dst"); ok && s == "default" {
				v.DefaultRoute = true
			} else if ok {
				v.Dst, _ = d.Prefix(dst, path+".dst")
			}
		case hasPeer:
			v.Dst = peerNode.PodSubnet
		case peer == nil:
			d.Missing(n, path, "dst", "a route fault needs dst (a CIDR or default) or peer (the node whose pod subnet the route leads to)")
		}
		if via != nil {
			v.Via = d.address(via, path+".via")
		}
		if kind == FaultReplaceRoute {
			need(via, "via", "replaceRoute needs via: the gateway the route now points at")
			if onlink != nil {
				v.OnLink, _ = d.Bool(onlink, path+".onlink")
			}
		}
	case FaultLinkDown:
		need(device, "dev", "linkDown needs dev: the device to take down")
	case FaultMTU:
		need(device, "dev", "mtu needs dev: the device whose MTU changes")
		if need(mtu, "mtu", "mtu needs mtu: the new value") {
			v.MTU = d.bounded(mtu, path+".mtu", 68, 65535, 0)
		}
	case FaultSysctl:
		if need(key, "key", "sysctl needs key, such as net.ipv4.ip_forward") {
			v.Key = d.sysctlKey(key, path+".key")
		}
		if need(value, "value", "sysctl needs value") {
			v.Value, _ = d.String(value, path+".value")
			if strings.ContainsAny(v.Value, "\n\x00") {
				d.Addf(value, path+".value", "a sysctl value is one line")
			}
		}
	case FaultDropRule:
		if hook != nil {
			v.Hook, _ = d.Enum(hook, path+".hook", "hook", plan.HookForward, plan.HookInput, plan.HookOutput)
		}
		if protocol != nil {
			v.Protocol, _ = d.Enum(protocol, path+".protocol", "protocol", "icmp", "tcp", "udp")
		}
		if src != nil {
			v.Src = d.prefix(src, path+".src")
		}
		if dst != nil {
			v.DstNet = d.prefix(dst, path+".dst")
		}
		if port != nil {
			v.Port = d.bounded(port, path+".port", 1, 65535, 0)
			if v.Protocol != "tcp" && v.Protocol != "udp" {
				d.Addf(port, path+".port", "a port needs protocol tcp or udp")
			}
		}
	case FaultDeleteNeighbor:
		switch {
		case hasPeer && d.vxlanPeer(v.In, peer, path+".peer"):
			// flannel's neighbour entry for the peer's VTEP address.
			v.IP = peerNode.PodSubnet.Addr()
			if v.Device == "" {
				v.Device = d.topo.Network.VXLAN.Device
			}
		case peer == nil:
			if need(ip, "ip", "deleteNeighbor needs ip (with dev), or peer: a node whose VXLAN neighbour entry goes") {
				v.IP, _ = d.Addr(ip, path+".ip")
			}
			need(device, "dev", "deleteNeighbor needs dev")
		}
	case FaultDeleteFDB:
		switch {
		case hasPeer && d.vxlanPeer(v.In, peer, path+".peer"):
			v.MAC, v.IP = plan.VTEPMAC(peerNode.IP), peerNode.IP
			if v.Device == "" {
				v.Device = d.topo.Network.VXLAN.Device
			}
		case peer == nil:
			need(device, "dev", "deleteFDB needs dev")
			if need(mac, "mac", "deleteFDB needs mac and dst, or peer: a node whose VXLAN FDB entry goes") {
				if s, ok := d.String(mac, path+".mac"); ok {
					m, err := net.ParseMAC(s)
					if err != nil || len(m) != 6 {
						d.Addf(mac, path+".mac", "%q is not a MAC address like 0e:fa:0a:1e:2d:c8", s)
					}
					v.MAC = m
				}
			}
			if need(dst, "dst", "deleteFDB needs dst: the node address the entry sends to") {
				v.IP = d.address(dst, path+".dst")
			}
		}
	case FaultStopContainer:
		if need(container, "container", "stopContainer needs container") && v.In.Name != "" {
			v.Container = d.container(container, path+".container", v.In)
		}
	}
	return v, len(d.Problems()) == before
}

// vxlanPeer checks that a peer names another node that node in reaches
// through flannel's (routed) VXLAN.
func (d *decoder) vxlanPeer(in Place, peer *yaml.Node, path string) bool {
	switch {
	case in.Role != plan.RoleNode:
		d.Addf(peer, path, "peer needs the fault to happen in a node")
	case in.Name == peer.Value:
		d.Addf(peer, path, "a node is not its own peer")
	case d.topo.LinkBackend(in.Name, peer.Value) != spec.BackendVXLAN || d.topo.Network.VXLAN.Mode != spec.VXLANRouted:
		d.Addf(peer, path, "%s reaches %s without flannel's VXLAN: it has no VXLAN neighbour or FDB entry for it", in.Name, peer.Value)
	default:
		return true
	}
	return false
}

var sysctlKeyRE = regexp.MustCompile(`^net(\.[A-Za-z0-9_-]+)+$`)

// sysctlKey reads a per-namespace sysctl key: only net.* keys belong to a
// network namespace; anything else would change the host.
func (d *decoder) sysctlKey(n *yaml.Node, path string) string {
	s, ok := d.String(n, path)
	if !ok {
		return ""
	}
	if !sysctlKeyRE.MatchString(s) {
		d.Addf(n, path, "%q: only net.* keys (such as net.ipv4.ip_forward) belong to a lab's namespace", s)
		return ""
	}
	return s
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// id reads an identifier: the name reports, JUnit and TAP use.
func (d *decoder) id(n *yaml.Node, path string) (string, bool) {
	s, ok := d.String(n, path)
	if !ok {
		return "", false
	}
	if len(s) > maxIDLen || !idRE.MatchString(s) {
		d.Addf(n, path, "%q: an id is at most %d letters, digits, '.', '_' and '-', starting with a letter or digit", s, maxIDLen)
		return "", false
	}
	return s, true
}

func (d *decoder) sections(s *Scenario, n *yaml.Node) {
	listed := d.List(n, "sections", func(i int, item *yaml.Node, path string) {
		sec := Section{}
		var checks *yaml.Node
		ok := d.Mapping(item, path, yamldoc.Keys{
			"name":   func(v *yaml.Node) { sec.Name, _ = d.String(v, path+".name") },
			"checks": func(v *yaml.Node) { checks = v },
		})
		if !ok {
			return
		}
		if sec.Name == "" {
			d.Missing(item, path, "name", "every section needs a name")
		}
		if checks == nil {
			d.Missing(item, path, "checks", "a section needs checks")
		} else {
			d.List(checks, path+".checks", func(j int, c *yaml.Node, cpath string) {
				d.checks++
				if d.checks == MaxChecks+1 {
					d.Addf(c, cpath, "a scenario has at most %d checks", MaxChecks)
				}
				if d.checks > MaxChecks {
					return
				}
				if ch, ok := d.check(c, cpath); ok {
					ch.Section = sec.Name
					sec.Checks = append(sec.Checks, ch)
				}
			})
			if checks.Kind == yaml.SequenceNode && len(checks.Content) == 0 {
				d.Addf(checks, path+".checks", "a section needs at least one check")
			}
		}
		s.Sections = append(s.Sections, sec)
	})
	if listed && n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.Addf(n, "sections", "a scenario needs at least one section")
	}
}

// checkKinds are the keys that name a check's kind.
var checkKinds = []string{KindPing, KindHTTP, KindTCP, KindUDP, KindRoute, KindCommand, KindPingAll, KindCapture, KindLogs}

func (d *decoder) check(n *yaml.Node, path string) (Check, bool) {
	c := Check{Line: n.Line, Points: d.points, Timeout: d.timeout, Retry: d.retry, Expect: ExpectPass}
	var idNode *yaml.Node
	var kinds []string
	keys := yamldoc.Keys{
		"id":      func(v *yaml.Node) { idNode = v },
		"title":   func(v *yaml.Node) { c.Title, _ = d.String(v, path+".title") },
		"points":  func(v *yaml.Node) { c.Points = d.bounded(v, path+".points", 0, MaxPoints, c.Points) },
		"hint":    func(v *yaml.Node) { c.Hint, _ = d.String(v, path+".hint") },
		"timeout": func(v *yaml.Node) { c.Timeout = d.duration(v, path+".timeout", MaxTimeout, true, c.Timeout) },
		"retry":   func(v *yaml.Node) { c.Retry = d.duration(v, path+".retry", MaxRetry, false, c.Retry) },
		"expect": func(v *yaml.Node) {
			if e, ok := d.Enum(v, path+".expect", "outcome", string(ExpectPass), string(ExpectFail)); ok {
				c.Expect = Outcome(e)
			}
		},
	}
	kindNodes := map[string]*yaml.Node{}
	for _, k := range checkKinds {
		keys[k] = func(v *yaml.Node) { kinds = append(kinds, k); kindNodes[k] = v }
	}
	if !d.Mapping(n, path, keys) {
		return c, false
	}
	before := len(d.Problems())
	if idNode == nil {
		d.Missing(n, path, "id", "every check needs an id")
	} else if id, ok := d.id(idNode, path+".id"); ok {
		if line, dup := d.ids[id]; dup {
			d.Addf(idNode, path+".id", "check id %q is taken (line %d)", id, line)
		}
		d.ids[id], c.ID = idNode.Line, id
	}
	switch len(kinds) {
	case 0:
		d.Addf(n, path, "a check needs a kind: one of %s", strings.Join(checkKinds, ", "))
	case 1:
		c.Kind = kinds[0]
		d.checkKind(&c, kindNodes[c.Kind], path+"."+c.Kind)
	default:
		d.Addf(n, path, "a check has one kind; this one has %s", strings.Join(kinds, " and "))
	}
	return c, len(d.Problems()) == before
}

func (d *decoder) checkKind(c *Check, n *yaml.Node, path string) {
	switch c.Kind {
	case KindPing:
		c.Ping = d.ping(n, path)
	case KindHTTP:
		c.HTTP = d.http(n, path)
	case KindTCP:
		c.TCP = d.conn(n, path, false)
	case KindUDP:
		c.UDP = d.conn(n, path, true)
	case KindRoute:
		c.Route = d.route(n, path)
	case KindCommand:
		c.Command = d.command(n, path)
	case KindPingAll:
		c.PingAll = d.pingAll(n, path)
	case KindCapture:
		c.Capture = d.capture(n, path)
	case KindLogs:
		c.Logs = d.logs(n, path)
	}
}

// probeEnds reads from and to, both required.
func (d *decoder) probeEnds(n *yaml.Node, path string, from, to *yaml.Node) (Place, Endpoint) {
	var p Place
	var e Endpoint
	if from == nil {
		d.Missing(n, path, "from", "a probe needs from: the pod or node it is sent from")
	} else {
		p, _ = d.place(from, path+".from")
	}
	if to != nil {
		e, _ = d.endpoint(to, path+".to")
	}
	return p, e
}

func (d *decoder) ping(n *yaml.Node, path string) *Ping {
	p := &Ping{Count: 3, Size: 56}
	var from, to *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"from":         func(v *yaml.Node) { from = v },
		"to":           func(v *yaml.Node) { to = v },
		"count":        func(v *yaml.Node) { p.Count = d.bounded(v, path+".count", 1, MaxCount, p.Count) },
		"size":         func(v *yaml.Node) { p.Size = d.bounded(v, path+".size", 0, MaxPingSize, p.Size) },
		"dontFragment": func(v *yaml.Node) { p.DontFragment, _ = d.Bool(v, path+".dontFragment") },
		"sendTTL":      func(v *yaml.Node) { p.SendTTL = d.bounded(v, path+".sendTTL", 1, 255, 0) },
		"maxLoss":      func(v *yaml.Node) { p.MaxLoss = d.percent(v, path+".maxLoss") },
		"maxRTT":       func(v *yaml.Node) { p.MaxRTT = d.duration(v, path+".maxRTT", MaxTimeout, true, 0) },
		"ttl":          func(v *yaml.Node) { p.TTL = d.bounded(v, path+".ttl", 1, 255, 0) },
	}) {
		return p
	}
	p.From, p.To = d.probeEnds(n, path, from, to)
	if to == nil {
		d.Missing(n, path, "to", "a ping needs to: a pod, a node or an address")
	}
	return p
}

// percent reads a percentage: 20 or "20%".
func (d *decoder) percent(n *yaml.Node, path string) int {
	s, ok := d.String(n, path)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil || v < 0 || v > 100 {
		d.Addf(n, path, "%q is not a percentage from 0 to 100", s)
		return 0
	}
	return v
}

func (d *decoder) http(n *yaml.Node, path string) *HTTP {
	h := &HTTP{Status: 200}
	var from, to, rawURL, port, urlPath *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"from":         func(v *yaml.Node) { from = v },
		"to":           func(v *yaml.Node) { to = v },
		"port":         func(v *yaml.Node) { port = v },
		"path":         func(v *yaml.Node) { urlPath = v },
		"url":          func(v *yaml.Node) { rawURL = v },
		"status":       func(v *yaml.Node) { h.Status = d.bounded(v, path+".status", 100, 599, h.Status) },
		"bodyContains": func(v *yaml.Node) { h.BodyContains = d.strings(v, path+".bodyContains") },
		"bodyMatches":  func(v *yaml.Node) { h.BodyMatches = d.regexp(v, path+".bodyMatches") },
	}) {
		return h
	}
	h.From, h.To = d.probeEnds(n, path, from, to)
	switch {
	case rawURL != nil && (to != nil || port != nil || urlPath != nil):
		d.Addf(rawURL, path+".url", "give url, or to with port and path, not both")
	case rawURL != nil:
		if h.URL = d.url(rawURL, path+".url"); h.URL != "" {
			u, _ := url.Parse(h.URL)
			h.To = Endpoint{Kind: EndpointAddress, Addr: netip.MustParseAddr(u.Hostname())}
		}
	case to != nil:
		pt, p := 80, "/"
		if h.To.Port != 0 {
			pt = h.To.Port // a service's port, a node port
		}
		if port != nil {
			pt = d.bounded(port, path+".port", 1, 65535, pt)
		}
		if urlPath != nil {
			if s, ok := d.String(urlPath, path+".path"); ok {
				if !strings.HasPrefix(s, "/") {
					d.Addf(urlPath, path+".path", "%q: a path starts with /", s)
				}
				p = s
			}
		}
		if h.To.Addr.IsValid() {
			host := h.To.Addr.String()
			if pt != 80 {
				host = netip.AddrPortFrom(h.To.Addr, uint16(pt)).String()
			}
			h.URL = "http://" + host + p
		}
	default:
		d.Missing(n, path, "to", "an http check needs to (with port and path) or url")
	}
	return h
}

// url reads an http URL whose host is an IPv4 address.
func (d *decoder) url(n *yaml.Node, path string) string {
	s, ok := d.String(n, path)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		d.Addf(n, path, "%q is not an http:// URL", s)
		return ""
	}
	if a, err := netip.ParseAddr(u.Hostname()); err != nil || !a.Is4() {
		d.Addf(n, path, "%q: name the host by its IPv4 address (nothing resolves names inside a lab namespace), or use to: with a pod or node", s)
		return ""
	}
	return s
}

func (d *decoder) conn(n *yaml.Node, path string, udp bool) *Conn {
	c := &Conn{}
	var from, to, port *yaml.Node
	keys := yamldoc.Keys{
		"from": func(v *yaml.Node) { from = v },
		"to":   func(v *yaml.Node) { to = v },
		"port": func(v *yaml.Node) { port = v },
	}
	if udp {
		c.Payload = "labctl"
		keys["payload"] = func(v *yaml.Node) { c.Payload, _ = d.String(v, path+".payload") }
	}
	if !d.Mapping(n, path, keys) {
		return c
	}
	c.From, c.To = d.probeEnds(n, path, from, to)
	if to == nil {
		d.Missing(n, path, "to", "a connection needs to: a pod, a node or an address")
	}
	switch {
	case port == nil && c.To.Port != 0:
		c.Port = c.To.Port // a service's port, a node port
	case port == nil && impliesPort(c.To):
		// A service endpoint that did not resolve is reported already;
		// one with several ports must be told which.
		if c.To.Addr.IsValid() && c.To.Kind == EndpointService {
			d.Missing(n, path, "port", "a connection needs port: %s has several", c.To)
		}
	case port == nil:
		d.Missing(n, path, "port", "a connection needs port")
	default:
		c.Port = d.bounded(port, path+".port", 1, 65535, 0)
	}
	return c
}

func (d *decoder) route(n *yaml.Node, path string) *Route {
	r := &Route{}
	var in, to *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"in":  func(v *yaml.Node) { in = v },
		"to":  func(v *yaml.Node) { to = v },
		"dev": func(v *yaml.Node) { r.Device = d.device(v, path+".dev") },
		"via": func(v *yaml.Node) { r.Via = d.address(v, path+".via") },
		"src": func(v *yaml.Node) { r.Src = d.address(v, path+".src") },
	}) {
		return r
	}
	if in == nil {
		d.Missing(n, path, "in", "a route check needs in: the pod or node whose routing table is asked")
	} else {
		r.In, _ = d.place(in, path+".in")
	}
	if to == nil {
		d.Missing(n, path, "to", "a route check needs to: the destination looked up")
	} else {
		r.To = d.address(to, path+".to")
	}
	return r
}

func (d *decoder) command(n *yaml.Node, path string) *Command {
	c := &Command{}
	var in, container, run *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"in":             func(v *yaml.Node) { in = v },
		"container":      func(v *yaml.Node) { container = v },
		"run":            func(v *yaml.Node) { run = v },
		"exitCode":       func(v *yaml.Node) { c.ExitCode = d.bounded(v, path+".exitCode", 0, 255, 0) },
		"stdoutContains": func(v *yaml.Node) { c.StdoutContains = d.strings(v, path+".stdoutContains") },
		"stdoutMatches":  func(v *yaml.Node) { c.StdoutMatches = d.regexp(v, path+".stdoutMatches") },
		"stderrContains": func(v *yaml.Node) { c.StderrContains = d.strings(v, path+".stderrContains") },
	}) {
		return c
	}
	if in == nil {
		d.Missing(n, path, "in", "a command needs in: the pod, node or underlay it runs in")
	} else {
		c.In, _ = d.place(in, path+".in")
	}
	if container != nil && c.In.Name != "" {
		c.Container = d.container(container, path+".container", c.In)
	}
	if run == nil {
		d.Missing(n, path, "run", "a command needs run: the program and its arguments, as a list")
		return c
	}
	if run.Kind != yaml.SequenceNode {
		d.Addf(run, path+".run", "give the program and its arguments as a list, such as [ip, route] (no shell runs it)")
		return c
	}
	d.List(run, path+".run", func(i int, item *yaml.Node, p string) {
		if s, ok := d.String(item, p); ok {
			if strings.ContainsRune(s, 0) {
				d.Addf(item, p, "an argument holds no NUL byte")
			}
			c.Argv = append(c.Argv, s)
		}
	})
	if len(run.Content) == 0 {
		d.Addf(run, path+".run", "run needs at least the program")
	}
	return c
}

func (d *decoder) pingAll(n *yaml.Node, path string) *PingAll {
	p := &PingAll{Count: 1}
	var pods, nodes *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"pods":  func(v *yaml.Node) { pods = v },
		"nodes": func(v *yaml.Node) { nodes = v },
		"count": func(v *yaml.Node) { p.Count = d.bounded(v, path+".count", 1, 10, p.Count) },
	}, yamldoc.OrEmpty()) {
		return p
	}
	p.Pods = d.members(pods, path+".pods", EndpointPod, true)
	p.Nodes = d.members(nodes, path+".nodes", EndpointNode, false)
	if d.topo != nil {
		switch total := len(p.Pods) + len(p.Nodes); {
		case total < 2:
			d.Addf(n, path, "pingall needs at least two pods or nodes")
		case total > MaxPingAll:
			d.Addf(n, path, "pingall takes at most %d pods and nodes (%d pairs); this one has %d", MaxPingAll, MaxPingAll*(MaxPingAll-1), total)
		}
	}
	return p
}

// members reads "all", a list of names, or nothing (all when allByDefault).
func (d *decoder) members(n *yaml.Node, path, kind string, allByDefault bool) []string {
	all := func() []string {
		var out []string
		if d.topo == nil {
			return nil
		}
		if kind == EndpointPod {
			for _, p := range d.topo.Pods() {
				out = append(out, p.Name)
			}
		} else {
			for _, nd := range d.topo.Nodes {
				out = append(out, nd.Name)
			}
		}
		return out
	}
	if n == nil {
		if allByDefault {
			return all()
		}
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Value == "all" {
		return all()
	}
	if n.Kind != yaml.SequenceNode {
		d.Addf(n, path, "give all, or a list of names")
		return nil
	}
	var out []string
	d.List(n, path, func(i int, item *yaml.Node, p string) {
		if e, ok := d.named(item, p, kind); ok {
			if slices.Contains(out, e.Name) {
				d.Addf(item, p, "%s is listed twice", e.Name)
				return
			}
			out = append(out, e.Name)
		}
	})
	return out
}

func (d *decoder) capture(n *yaml.Node, path string) *Capture {
	c := &Capture{Min: 1, Max: -1}
	var on, during, match, count, forbid *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"on":      func(v *yaml.Node) { on = v },
		"during":  func(v *yaml.Node) { during = v },
		"packets": func(v *yaml.Node) { match = v },
		"count":   func(v *yaml.Node) { count = v },
		"forbid":  func(v *yaml.Node) { forbid = v },
	}) {
		return c
	}
	if on == nil {
		d.Missing(n, path, "on", "a capture needs on: the interfaces to watch, as NAME/INTERFACE (a node, pod or underlay)")
	} else {
		for _, s := range d.strings(on, path+".on") {
			if t, ok := d.tap(on, path+".on", s); ok {
				c.On = append(c.On, t)
			}
		}
		if len(c.On) > 16 {
			d.Addf(on, path+".on", "a capture watches at most 16 interfaces")
		}
	}
	if during == nil {
		d.Missing(n, path, "during", "a capture needs during: the probe whose packets it watches (ping, http, tcp or udp)")
	} else {
		c.During = d.probe(during, path+".during")
	}
	if match == nil {
		d.Missing(n, path, "packets", "a capture needs packets: what the packets it counts look like")
	} else {
		c.Match = d.packetMatch(match, path+".packets")
	}
	if forbid != nil {
		if f, ok := d.Bool(forbid, path+".forbid"); ok && f {
			c.Min, c.Max = 0, 0
			if count != nil {
				d.Addf(count, path+".count", "forbid means no packet; leave out count")
			}
		}
	}
	if count != nil && c.Max != 0 {
		d.Mapping(count, path+".count", yamldoc.Keys{
			"min": func(v *yaml.Node) { c.Min = d.bounded(v, path+".count.min", 0, MaxCount, c.Min) },
			"max": func(v *yaml.Node) { c.Max = d.bounded(v, path+".count.max", 0, MaxCount, c.Max) },
		})
		if c.Max >= 0 && c.Max < c.Min {
			d.Addf(count, path+".count", "max %d is less than min %d", c.Max, c.Min)
		}
	}
	return c
}

// tap reads NAME/INTERFACE or NAME (every interface of the namespace).
func (d *decoder) tap(n *yaml.Node, path, s string) (Tap, bool) {
	name, dev, _ := strings.Cut(s, "/")
	at := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Line: n.Line, Column: n.Column}
	p, ok := d.place(at, path)
	if !ok {
		return Tap{}, false
	}
	if dev != "" {
		devNode := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: dev, Line: n.Line, Column: n.Column}
		if dev = d.device(devNode, path); dev == "" {
			return Tap{}, false
		}
	}
	return Tap{Place: p, Interface: dev}, true
}

// probe reads the one probe a capture watches.
func (d *decoder) probe(n *yaml.Node, path string) Probe {
	var p Probe
	kinds := 0
	if !d.Mapping(n, path, yamldoc.Keys{
		"ping": func(v *yaml.Node) { kinds++; p.Ping = d.ping(v, path+".ping") },
		"http": func(v *yaml.Node) { kinds++; p.HTTP = d.http(v, path+".http") },
		"tcp":  func(v *yaml.Node) { kinds++; p.TCP = d.conn(v, path+".tcp", false) },
		"udp":  func(v *yaml.Node) { kinds++; p.UDP = d.conn(v, path+".udp", true) },
	}) {
		return p
	}
	if kinds != 1 {
		d.Addf(n, path, "during is exactly one probe: ping, http, tcp or udp")
	}
	return p
}

func (d *decoder) packetMatch(n *yaml.Node, path string) PacketMatch {
	var m PacketMatch
	var vni *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"encap": func(v *yaml.Node) {
			m.Encap, _ = d.Enum(v, path+".encap", "encapsulation", EncapNone, EncapVXLAN, EncapIPIP)
		},
		"vni":   func(v *yaml.Node) { vni = v; m.VNI = d.bounded(v, path+".vni", 1, 1<<24-1, 0) },
		"outer": func(v *yaml.Node) { m.Outer = d.layer(v, path+".outer") },
		"inner": func(v *yaml.Node) { m.Inner = d.layer(v, path+".inner") },
	}) {
		return m
	}
	if vni != nil && m.Encap != EncapVXLAN {
		d.Addf(vni, path+".vni", "a VNI needs encap: vxlan")
	}
	if !m.Inner.IsZero() && m.Encap != EncapVXLAN && m.Encap != EncapIPIP {
		d.Addf(n, path+".inner", "an inner packet needs encap: vxlan or ipip (outer describes a packet that is not tunnelled)")
	}
	return m
}

func (d *decoder) layer(n *yaml.Node, path string) Layer {
	var l Layer
	d.Mapping(n, path, yamldoc.Keys{
		"src": func(v *yaml.Node) { l.Src = d.address(v, path+".src") },
		"dst": func(v *yaml.Node) { l.Dst = d.address(v, path+".dst") },
		"protocol": func(v *yaml.Node) {
			l.Protocol, _ = d.Enum(v, path+".protocol", "protocol", "icmp", "tcp", "udp", "ipip")
		},
		"srcPort": func(v *yaml.Node) { l.SrcPort = d.bounded(v, path+".srcPort", 1, 65535, 0) },
		"dstPort": func(v *yaml.Node) { l.DstPort = d.bounded(v, path+".dstPort", 1, 65535, 0) },
		"ttl":     func(v *yaml.Node) { l.TTL = d.bounded(v, path+".ttl", 1, 255, 0) },
	})
	return l
}

func (d *decoder) logs(n *yaml.Node, path string) *Logs {
	l := &Logs{}
	var pod, external, container *yaml.Node
	if !d.Mapping(n, path, yamldoc.Keys{
		"pod":       func(v *yaml.Node) { pod = v },
		"external":  func(v *yaml.Node) { external = v },
		"container": func(v *yaml.Node) { container = v },
		"contains":  func(v *yaml.Node) { l.Contains = d.strings(v, path+".contains") },
		"matches":   func(v *yaml.Node) { l.Matches = d.regexp(v, path+".matches") },
	}) {
		return l
	}
	// An external host's containers log as a pod's do.
	key, kind, role := "pod", EndpointPod, plan.RolePod
	switch {
	case pod != nil && external != nil:
		d.Addf(n, path, "a logs check reads one pod or one external host, not both")
		return l
	case external != nil:
		pod, key, kind, role = external, "external", EndpointExternal, plan.RoleExternal
	case pod == nil:
		d.Missing(n, path, "pod", "a logs check needs pod (or external)")
		return l
	}
	p, ok := d.named(pod, path+"."+key, kind)
	if !ok {
		return l
	}
	l.Pod = p.Name
	if container == nil {
		d.Missing(n, path, "container", "a logs check needs container")
	} else {
		l.Container = d.container(container, path+".container", Place{Role: role, Name: p.Name})
	}
	if len(l.Contains) == 0 && l.Matches == nil {
		d.Addf(n, path, "a logs check needs contains or matches")
	}
	return l
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// outsidePlace is an external host, or the router when the topology has
// one, as a place.
func (d *decoder) outsidePlace(name string) (Place, bool) {
	if _, ok := d.topo.External(name); ok {
		return Place{Role: plan.RoleExternal, Name: name}, true
	}
	if name == spec.RouterName && d.topo.Router != nil {
		return Place{Role: plan.RoleRouter, Name: name}, true
	}
	return Place{}, false
}

// outsidePlaces are the names of places that are neither pods, nodes nor
// external hosts: the underlay, and the router when there is one.
func (d *decoder) outsidePlaces(underlay string) []string {
	names := []string{underlay}
	if d.topo.Router != nil {
		names = append(names, spec.RouterName)
	}
	return names
}

// namedWhat is what a name may stand for in the topology, for messages.
func (d *decoder) namedWhat() string {
	if len(d.topo.Externals) > 0 {
		return "pod, node or external host"
	}
	return "pod or node"
}
