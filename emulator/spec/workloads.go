package spec

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/labctl/labctl/emulator/quantity"
	"github.com/labctl/labctl/emulator/yamldoc"
)

// containerNameRE is a DNS label, as Kubernetes requires of container names.
var containerNameRE = lazyRegexp(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// labelRE is the name part of a Kubernetes label key, and a label value.
var labelRE = lazyRegexp(`^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$`)

var envNameRE = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// expandDeployments places every deployment's replicas on nodes before
// names and addresses are checked, so its pods are named, addressed and
// counted like any other. The rule, deterministic and documented: replica i
// goes to the i-th eligible node, round robin in file order; a node is
// eligible when its labels include every nodeSelector pair. Pods are named
// <deployment>-<i>.
//
// It runs in two steps per deployment: buildDeployment checks what the
// deployment says on its own (name, replicas, labels, template); then the
// eligible nodes and the lab's namespace cap decide where its pods go.
func (v *validator) expandDeployments(t *Topology, raw *rawTopology) map[string]podTemplate {
	templates := map[string]podTemplate{}
	nodes := labelledNodes(raw)
	namespaces, full := v.countNamespaces(raw)
	// Deployments with the same selector share one list of eligible nodes.
	eligibleFor := map[string][]nodeInfo{}
	seen := map[string]string{}
	for _, rd := range raw.deployments {
		if !rd.ok {
			continue
		}
		d, tmpl, good := v.buildDeployment(rd, seen)
		if !good {
			continue
		}
		templates[d.Name] = tmpl
		key := selectorKey(d.NodeSelector)
		eligible, cached := eligibleFor[key]
		if !cached {
			for _, n := range nodes {
				if matches(n.labels, d.NodeSelector) {
					eligible = append(eligible, n)
				}
			}
			eligibleFor[key] = eligible
		}
		if d.Replicas > 0 && len(eligible) == 0 {
			if !raw.nodesOK {
				continue // the nodes are unknown (already reported)
			}
			at := rd.nodeSelector
			if at == nil {
				at = rd.at
			}
			v.Addf(at, rd.path+".nodeSelector", "no node has the labels %s", formatLabels(d.NodeSelector))
			continue
		}
		if !full && namespaces+d.Replicas > MaxNamespaces {
			at := rd.replicas
			if at == nil {
				at = rd.name
			}
			v.Addf(at, rd.path+".replicas", "%d replicas would make the lab %d namespaces; one host holds at most %d (each costs the kernel about 0.4 MB)",
				d.Replicas, namespaces+d.Replicas, MaxNamespaces)
			full = true
		}
		if full {
			continue // reported once; expanding would only cost memory
		}
		namespaces += d.Replicas
		for i := 0; i < d.Replicas; i++ {
			n := eligible[i%len(eligible)]
			pod := fmt.Sprintf("%s-%d", d.Name, i)
			d.Pods = append(d.Pods, pod)
			raw.nodes[n.index].pods = append(raw.nodes[n.index].pods, rawPod{
				at: rd.name, ok: true, path: rd.path, generated: pod, deployment: d.Name,
			})
		}
		t.Deployments = append(t.Deployments, d)
	}
	return templates
}

// nodeInfo is a node a deployment may place pods on.
type nodeInfo struct {
	index  int
	labels map[string]string
}

// labelledNodes lists the nodes with a name, and their labels, before the
// nodes are checked: deployments add their pods to the nodes' own.
func labelledNodes(raw *rawTopology) []nodeInfo {
	var nodes []nodeInfo
	for i, rn := range raw.nodes {
		if !rn.ok || rn.name == nil || rn.name.Kind != yaml.ScalarNode {
			continue
		}
		nodes = append(nodes, nodeInfo{i, quietLabels(rn.labels)})
	}
	return nodes
}

// countNamespaces counts the namespaces the file lists, before the
// deployments add theirs, and reports a lab already past MaxNamespaces
// (full): every pod is a namespace, and no deployment may add one then.
func (v *validator) countNamespaces(raw *rawTopology) (namespaces int, full bool) {
	namespaces = 1 + len(raw.nodes)
	pods := 0
	for _, rn := range raw.nodes {
		pods += len(rn.pods)
	}
	namespaces += pods
	externals := raw.externals.namespaces() // externals.go: the hosts and their router
	namespaces += externals
	full = namespaces > MaxNamespaces
	if full {
		others := ""
		if externals > 0 {
			others = fmt.Sprintf(" and %d for external hosts", externals)
		}
		v.Addf(raw.nodesAt, "nodes", "the lab has %d namespaces (the underlay, %d nodes and %d pods%s); one host holds at most %d (each costs the kernel about 0.4 MB)",
			namespaces, len(raw.nodes), pods, others, MaxNamespaces)
	}
	return namespaces, full
}

// buildDeployment checks what a deployment says on its own: a name unique
// among deployments (seen) that leaves room for replica suffixes, the
// replica count, labels, node selector and pod template. It reports
// whether the deployment can be placed.
func (v *validator) buildDeployment(rd rawDeployment, seen map[string]string) (Deployment, podTemplate, bool) {
	d := Deployment{}
	if rd.name == nil {
		v.Addf(rd.at, rd.path+".name", "every deployment needs a name")
		return d, podTemplate{}, false
	}
	name, good := v.name(rd.name, rd.path+".name", "deployment")
	if !good {
		return d, podTemplate{}, false
	}
	if prev, dup := seen[name]; dup {
		v.Addf(rd.name, rd.path+".name", "deployment name %q is already used at %s", name, prev)
		return d, podTemplate{}, false
	}
	seen[name] = rd.path
	d.Name = name
	d.Replicas = 1
	if rd.replicas != nil {
		n, good := v.integer(rd.replicas, rd.path+".replicas")
		switch {
		case !good:
			return d, podTemplate{}, false
		case n < 0 || n > MaxReplicas:
			v.Addf(rd.replicas, rd.path+".replicas", "%d replicas is out of range (0 to %d)", n, MaxReplicas)
			return d, podTemplate{}, false
		}
		d.Replicas = n
	}
	if d.Replicas > 0 {
		last := fmt.Sprintf("%s-%d", name, d.Replicas-1)
		if len(last) > MaxNameLen {
			v.Addf(rd.name, rd.path+".name", "deployment name %q makes pod names up to %q, %d bytes; a pod name is its hostname, a DNS label of at most %d bytes (shorten the deployment name to %d)",
				name, last, len(last), MaxNameLen, MaxNameLen-len(last)+len(name))
			return d, podTemplate{}, false
		}
	}
	d.Labels = v.labels(rd.labels, rd.path+".labels")
	d.NodeSelector = v.labels(rd.nodeSelector, rd.path+".nodeSelector")
	if rd.template == nil {
		v.Addf(rd.at, rd.path+".template", "a deployment needs a pod template (template: {containers: [...]})")
		return d, podTemplate{}, false
	}
	tmpl := v.buildTemplate(rd.tmpl)
	// The template's labels are what services will select; the
	// deployment's own labels default to them, as kubectl create does.
	if tmpl.labels == nil {
		tmpl.labels = d.Labels
	}
	if d.Labels == nil {
		d.Labels = tmpl.labels
	}
	return d, tmpl, true
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// selectorKey is a node selector in a canonical form, to share the list of
// nodes it matches.
func selectorKey(sel map[string]string) string {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(sel[k])
		b.WriteByte(0)
	}
	return b.String()
}

func formatLabels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// quietLabels reads a label mapping without reporting: the node's labels are
// checked (and reported) with the node.
func quietLabels(n *yaml.Node) map[string]string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		m[n.Content[i].Value] = n.Content[i+1].Value
	}
	return m
}

// labels checks a Kubernetes label map.
func (v *validator) labels(n *yaml.Node, path string) map[string]string {
	if n == nil || yamldoc.IsNull(n) || v.Aliased(n, path) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		v.Addf(n, path, "must be a mapping of label names to values, like {app: web}")
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := path + "." + k.Value
		name := k.Value
		if prefix, rest, ok := strings.Cut(k.Value, "/"); ok {
			if prefix == "" || len(prefix) > 253 {
				v.Addf(k, kp, "label %q has an empty or too long prefix", k.Value)
				continue
			}
			name = rest
		}
		if name == "" || !labelRE().MatchString(name) {
			v.Addf(k, kp, "label name %q must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", k.Value)
			continue
		}
		s, good := v.String(val, kp)
		if !good {
			continue
		}
		if !labelRE().MatchString(s) {
			v.Addf(val, kp, "label value %q must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit", s)
			continue
		}
		m[k.Value] = s
	}
	return m
}

// podTemplate is what a pod's YAML (or its deployment's template) says
// besides name and address.
type podTemplate struct {
	labels        map[string]string
	restartPolicy RestartPolicy
	containers    []Container
}

func (v *validator) restartPolicy(n *yaml.Node, path string) RestartPolicy {
	s, good := v.String(n, path)
	if !good {
		return ""
	}
	switch p := RestartPolicy(s); p {
	case RestartAlways, RestartOnFailure, RestartNever:
		return p
	}
	v.Addf(n, path, "unknown restart policy %q (use %s, %s or %s)", s, RestartAlways, RestartOnFailure, RestartNever)
	return ""
}

func (v *validator) buildTemplate(t rawPodTemplate) podTemplate {
	pt := podTemplate{labels: v.labels(t.labels, t.path+".labels"), restartPolicy: RestartAlways}
	if t.restartPolicy != nil {
		if p := v.restartPolicy(t.restartPolicy, t.path+".restartPolicy"); p != "" {
			pt.restartPolicy = p
		}
	}
	names := map[string]string{}
	for _, rc := range t.containers {
		if !rc.ok {
			continue
		}
		c, good := v.buildContainer(rc)
		if !good {
			continue
		}
		if prev, dup := names[c.Name]; dup {
			v.Addf(rc.name, rc.path+".name", "container name %q is already used at %s", c.Name, prev)
			continue
		}
		names[c.Name] = rc.path
		pt.containers = append(pt.containers, c)
	}
	v.checkPodContainers(t, pt.containers)
	return pt
}

// checkPodContainers checks what the pod's containers ask for together:
// the pod cgroup's CPU quota is the sum of their limits, and builtin
// servers share the pod's ports.
func (v *validator) checkPodContainers(t rawPodTemplate, cs []Container) {
	var sum int64
	limited := len(cs) > 0
	for _, c := range cs {
		sum += c.Resources.CPULimitMilli
		limited = limited && c.Resources.CPULimitMilli > 0
	}
	if limited && sum > MaxCPUMilli {
		v.Addf(t.containersAt, t.path+".containers", "the containers' cpu limits add up to %s CPUs, the pod's CFS quota, which the kernel caps at %s",
			quantity.FormatCPU(sum), maxCPU())
	}
	ports := map[int]string{}
	for _, c := range cs {
		if c.Builtin != BuiltinWebServer && c.Builtin != BuiltinEchoServer {
			continue
		}
		port := builtinPort(c)
		if prev, taken := ports[port]; taken {
			rc := t.containerOf(c.Name)
			v.Addf(rc.at, rc.path, "builtin %s listens on port %d, as container %q does: the second server would fail to start (address in use); give one of them ports: [{containerPort: N}]",
				c.Builtin, port, prev)
			continue
		}
		ports[port] = c.Name
	}
}

// maxCPU says MaxCPUMilli in CPUs and in millicores.
func maxCPU() string {
	return fmt.Sprintf("%d.%03d CPUs (%s)", MaxCPUMilli/1000, MaxCPUMilli%1000, quantity.FormatCPU(MaxCPUMilli))
}

// builtinPort is the port a builtin server listens on (both TCP and UDP
// for echo-server), as the workload package picks it.
func builtinPort(c Container) int {
	switch {
	case len(c.Ports) > 0:
		return c.Ports[0].ContainerPort
	case c.Builtin == BuiltinEchoServer:
		return 7 // the echo protocol's
	}
	return 80
}

// containerOf finds the raw container a built one came from.
func (t rawPodTemplate) containerOf(name string) rawContainer {
	for _, rc := range t.containers {
		if rc.name != nil && rc.name.Value == name {
			return rc
		}
	}
	return rawContainer{at: t.containersAt, path: t.path + ".containers"}
}

// buildContainer checks one container: its name, what it runs (builtin or
// command and args), its environment, paths, restart policy, ports and
// resources, each on its own, and then what they take together in the one
// string labctl hands the container's init. It reports whether the
// container is good.
func (v *validator) buildContainer(rc rawContainer) (Container, bool) {
	c := Container{}
	var ok bool
	c.Name, ok = v.containerName(rc)
	ok = v.containerProgram(rc, &c) && ok
	if rc.env != nil && !yamldoc.IsNull(rc.env) {
		c.Env = v.containerEnv(rc.env, rc.path+".env")
	}
	var good bool
	if c.WorkingDir, good = v.absPath(rc.workingDir, rc.path+".workingDir", "", "the working directory"); !good {
		ok = false
	}
	if c.RootFS, good = v.absPath(rc.rootfs, rc.path+".rootfs", " to a root file system directory", "the root file system path"); !good {
		ok = false
	}
	if rc.restartPolicy != nil {
		c.RestartPolicy = v.restartPolicy(rc.restartPolicy, rc.path+".restartPolicy")
	}
	if rc.ports != nil && !yamldoc.IsNull(rc.ports) {
		c.Ports = v.containerPorts(rc.ports, rc.path+".ports")
	}
	if rc.resources != nil && !yamldoc.IsNull(rc.resources) {
		c.Resources = v.resources(rc.resources, rc.path+".resources")
	}
	if size := encodedSize(c); size > containerBudget {
		v.Addf(rc.at, rc.path, "the container's command, args, env, workingDir and rootfs take %d bytes; labctl hands them to the container in one environment string, and the kernel takes at most %d bytes per string (%d are left for them)",
			size, MaxArgLen, containerBudget)
		ok = false
	}
	return c, ok
}

// containerName checks a container's name: a DNS label, as Kubernetes
// requires, that can be a cgroup directory.
func (v *validator) containerName(rc rawContainer) (string, bool) {
	if rc.name == nil {
		v.Addf(rc.at, rc.path+".name", "every container needs a name")
		return "", false
	}
	s, good := v.String(rc.name, rc.path+".name")
	switch {
	case !good:
		return "", false
	case !containerNameRE().MatchString(s):
		v.Addf(rc.name, rc.path+".name", "container name %q must be a DNS label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", s)
		return s, false
	case cgroupFiles[s]:
		v.Addf(rc.name, rc.path+".name", "container name %q is taken: %s", s, cgroupFileWhy)
		return s, false
	}
	return s, true
}

// containerProgram checks what a container runs: a builtin, or a command
// (with args) whose program is named; never both.
func (v *validator) containerProgram(rc rawContainer, c *Container) bool {
	ok := true
	if s, good := v.String(rc.builtin, rc.path+".builtin"); good {
		switch s {
		case BuiltinWebServer, BuiltinEchoServer, BuiltinClient, BuiltinDNS:
			c.Builtin = s
		default:
			v.Addf(rc.builtin, rc.path+".builtin", "unknown builtin %q (use %s, %s, %s or %s)", s, BuiltinWebServer, BuiltinEchoServer, BuiltinClient, BuiltinDNS)
			ok = false
		}
	}
	c.Command = v.stringList(rc.command, rc.path+".command")
	c.Args = v.stringList(rc.args, rc.path+".args")
	switch {
	case c.Builtin != "" && (rc.command != nil || rc.args != nil):
		at := rc.command
		if at == nil {
			at = rc.args
		}
		v.Addf(at, rc.path+".command", "a builtin container runs inside labctl and takes no command or args")
		ok = false
	case c.Builtin == "" && rc.builtin == nil && len(c.Command) == 0 && rc.command == nil:
		v.Addf(rc.at, rc.path+".command", "a container needs a command (or builtin: %s, %s or %s)", BuiltinWebServer, BuiltinEchoServer, BuiltinClient)
		ok = false
	case len(c.Command) > 0 && c.Command[0] == "":
		v.Addf(rc.command, rc.path+".command[0]", "the program to run must not be empty")
		ok = false
	}
	return ok
}

// containerEnv reads environment variables; one the kernel cannot pass is
// reported and left out.
func (v *validator) containerEnv(n *yaml.Node, path string) []EnvVar {
	var env []EnvVar
	v.List(n, path, func(i int, item *yaml.Node, path string) {
		var e EnvVar
		var name, value *yaml.Node
		v.Mapping(item, path, yamldoc.Keys{
			"name":  func(n *yaml.Node) { name = n },
			"value": func(n *yaml.Node) { value = n },
		})
		if s, good := v.String(name, path+".name"); good && envNameRE().MatchString(s) {
			e.Name = s
		} else if name == nil || good {
			v.Addf(item, path+".name", "an environment variable needs a name of letters, digits and '_'")
			return
		}
		if value != nil {
			var good bool
			if e.Value, good = v.String(value, path+".value"); good && !v.execString(value, path+".value", "the value of "+e.Name, e.Value) {
				return
			}
		}
		env = append(env, e)
	})
	return env
}

// absPath checks an absolute path the kernel takes; what names it in
// messages. A path that is omitted, or not a single value (reported as
// such), does not make the container bad.
func (v *validator) absPath(n *yaml.Node, path, absolute, what string) (string, bool) {
	s, good := v.String(n, path)
	if !good {
		return "", true
	}
	if !filepath.IsAbs(s) {
		v.Addf(n, path, "%q must be an absolute path%s", s, absolute)
		return s, false
	}
	return s, v.pathString(n, path, what, s)
}

// containerPorts reads the ports a container serves; a bad one is reported
// and left out.
func (v *validator) containerPorts(n *yaml.Node, path string) []Port {
	var ports []Port
	v.List(n, path, func(i int, item *yaml.Node, path string) {
		var p Port
		var name, port, proto *yaml.Node
		v.Mapping(item, path, yamldoc.Keys{
			"name":          func(n *yaml.Node) { name = n },
			"containerPort": func(n *yaml.Node) { port = n },
			"protocol":      func(n *yaml.Node) { proto = n },
		})
		p.Name, _ = v.String(name, path+".name")
		if port == nil {
			v.Addf(item, path+".containerPort", "a port needs containerPort")
			return
		}
		n, good := v.integer(port, path+".containerPort")
		if !good {
			return
		}
		if n < 1 || n > 65535 {
			v.Addf(port, path+".containerPort", "port %d is out of range (1 to 65535)", n)
			return
		}
		p.ContainerPort = n
		p.Protocol = "TCP"
		if s, good := v.String(proto, path+".protocol"); good {
			if s != "TCP" && s != "UDP" {
				v.Addf(proto, path+".protocol", "protocol %q must be TCP or UDP", s)
				return
			}
			p.Protocol = s
		}
		ports = append(ports, p)
	})
	return ports
}

// resources reads requests and limits of cpu and memory.
func (v *validator) resources(n *yaml.Node, path string) Resources {
	var r Resources
	var req, lim *yaml.Node
	v.Mapping(n, path, yamldoc.Keys{
		"requests": func(x *yaml.Node) { req = x },
		"limits":   func(x *yaml.Node) { lim = x },
	}, yamldoc.OrEmpty())
	read := func(n *yaml.Node, path, what string, cpu, mem *int64) {
		if n == nil {
			return
		}
		v.Mapping(n, path, yamldoc.Keys{
			"cpu": func(x *yaml.Node) {
				if s, good := v.String(x, path+".cpu"); good {
					q, err := quantity.ParseCPU(s)
					switch {
					case err != nil:
						v.Addf(x, path+".cpu", "%v", err)
					case q > MaxCPUMilli && what == "limit":
						v.Addf(x, path+".cpu", "a cpu limit of %s is more than the kernel's CFS quota can hold: at most %s", s, maxCPU())
					case q > MaxCPUMilli:
						// Kubernetes keeps requests within limits; no limit
						// can pass the CFS bound, so no request can either.
						v.Addf(x, path+".cpu", "a cpu request of %s is more than any cpu limit can be: the kernel's CFS quota holds at most %s", s, maxCPU())
					default:
						*cpu = q
					}
				}
			},
			"memory": func(x *yaml.Node) {
				if s, good := v.String(x, path+".memory"); good {
					q, err := quantity.ParseMemory(s)
					switch {
					case err != nil:
						v.Addf(x, path+".memory", "%v", err)
					case what == "limit" && q < MinMemoryLimit:
						v.Addf(x, path+".memory", "a memory limit of %s is too small for a container to start: at least %s (labctl's container init and builtins need about 3.5 MiB)",
							s, quantity.FormatMemory(MinMemoryLimit))
					default:
						*mem = q
					}
				}
			},
		}, yamldoc.OrEmpty())
	}
	read(req, path+".requests", "request", &r.CPURequestMilli, &r.MemoryRequest)
	read(lim, path+".limits", "limit", &r.CPULimitMilli, &r.MemoryLimit)
	if r.CPULimitMilli > 0 && r.CPURequestMilli > r.CPULimitMilli {
		v.Addf(req, path+".requests.cpu", "the cpu request %s exceeds the limit %s", quantity.FormatCPU(r.CPURequestMilli), quantity.FormatCPU(r.CPULimitMilli))
	}
	if r.MemoryLimit > 0 && r.MemoryRequest > r.MemoryLimit {
		v.Addf(req, path+".requests.memory", "the memory request %s exceeds the limit %s", quantity.FormatMemory(r.MemoryRequest), quantity.FormatMemory(r.MemoryLimit))
	}
	return r
}

// stringList reads a list of strings. A single string is refused rather
// than split, as Kubernetes does: "sh -c 'x y'" has no one right split.
func (v *validator) stringList(n *yaml.Node, path string) []string {
	if n == nil || yamldoc.IsNull(n) || v.Aliased(n, path) {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		v.Addf(n, path, "must be a list of strings, like [sh, -c, \"echo hi\"]")
		return nil
	}
	var out []string
	v.List(n, path, func(i int, item *yaml.Node, p string) {
		if s, good := v.String(item, p); good && v.execString(item, p, fmt.Sprintf("%q", abbrev(s)), s) {
			out = append(out, s)
		}
	})
	return out
}

// abbrev shortens a long value for a message.
func abbrev(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}
