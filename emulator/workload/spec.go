package workload

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/quantity"
)

// RestartPolicy says whether a container that exited is started again, as a
// Kubernetes pod's restartPolicy does.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"    // always (the Kubernetes default)
	RestartOnFailure RestartPolicy = "OnFailure" // only after a non-zero exit or a kill
	RestartNever     RestartPolicy = "Never"     // never
)

// DefaultGracePeriod is how long a stopping container gets between SIGTERM
// and SIGKILL when the pod does not say. Kubernetes waits 30s; lab workloads
// either exit at once on SIGTERM or never will, so waiting long only slows
// `labctl down`.
const DefaultGracePeriod = 2 * time.Second

// PodSpec is everything StartPod needs to run a pod's containers.
type PodSpec struct {
	Lab       string // lab name: part of cgroup paths and process titles
	Pod       string // pod name
	Namespace string // path of the pod's network namespace, e.g. /run/netns/two-node-pod1a
	Hostname  string // the pod's hostname; default: Pod
	PodIP     string // the pod's IP: POD_IP in every container and the web server's answer
	// ClusterDNS is the address of the cluster's DNS service (kube-dns,
	// the tenth address of the service CIDR): the pod's /etc/resolv.conf
	// is the kubelet's for dnsPolicy ClusterFirst, naming it. Empty: the
	// pod sees the host's resolv.conf, as a kubelet without a cluster DNS
	// gives pods the node's.
	ClusterDNS string
	// External says this is an external host (a machine outside the
	// cluster that runs containers), not a pod: it gets the sandbox's
	// namespaces but none of the kubelet's files; its /etc/hosts and
	// /etc/resolv.conf are the host's.
	External bool
	// StateDir holds this pod's files: _pod.json (this spec), _status.json,
	// <container>.log, _shim.log and, unless Options.AppletDir says
	// otherwise, bin/ (applet links). One per pod; created if missing.
	StateDir   string
	Containers []Container
	// RestartPolicy applies to containers that set none; default Always.
	RestartPolicy RestartPolicy
	// GracePeriod between SIGTERM and SIGKILL when the pod stops and StopPod
	// is not given one; default DefaultGracePeriod.
	GracePeriod time.Duration
}

// Container is one process (tree) in the pod's namespaces.
type Container struct {
	Name string // DNS label, unique in the pod
	// Builtin selects a workload inside the labctl binary; then Command and
	// Args must be empty and the server listens on Ports[0] or its default.
	Builtin builtin.Name
	Command []string // the program and its first arguments (Kubernetes "command")
	Args    []string // appended to Command (Kubernetes "args")
	// Env is added to the defaults (PATH, HOME, HOSTNAME, POD_NAME, POD_IP);
	// later entries win and $(NAME) refers to an earlier variable, as in
	// Kubernetes.
	Env        []EnvVar
	WorkingDir string // default "/"
	Ports      []Port
	// RootFS, when set, is a directory (an extracted Alpine minirootfs, say)
	// that becomes the container's root in a mount namespace of its own, with
	// fresh /proc, /dev and /sys, and labctl's applets at RootFSAppletDir.
	// By default the container sees the host's files.
	RootFS        string
	RestartPolicy RestartPolicy // overrides the pod's when set
	// Resources are requests and limits, mapped onto the container's
	// cgroups as the kubelet maps them.
	Resources cgroups.Resources
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Port is a port the container serves; like Kubernetes' containerPort it is
// informational, except that builtin servers listen on the first one.
type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"` // TCP (default) or UDP
}

// isDNSLabel accepts Kubernetes container names: lowercase letters, digits
// and '-', starting and ending with a letter or digit, at most 63 bytes.
// (Hand-written rather than a regexp compiled at init: every supervisor and
// container init pays for package initialisation.)
func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// isEnvName accepts what Kubernetes accepts as an environment variable name.
func isEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return false
		}
	}
	return s[0] != '.' && s[0] != '-'
}

// validName accepts names that are safe as one path element of a cgroup or
// state directory.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 253 && !strings.ContainsAny(s, "/\x00")
}

// check reports every problem of the spec at once, so a lab author fixes them
// in one round.
func (p *PodSpec) check() error {
	var errs []error
	if !validName(p.Lab) {
		errs = append(errs, fmt.Errorf("lab name %q is not usable in a path", p.Lab))
	}
	if !validName(p.Pod) {
		errs = append(errs, fmt.Errorf("pod name %q is not usable in a path", p.Pod))
	}
	if p.Namespace == "" {
		errs = append(errs, errors.New("no network namespace given"))
	}
	if !filepath.IsAbs(p.StateDir) {
		errs = append(errs, fmt.Errorf("state directory %q is not an absolute path", p.StateDir))
	}
	if len(p.Hostname) > 64 {
		errs = append(errs, fmt.Errorf("hostname %q is longer than 64 bytes", p.Hostname))
	}
	if p.PodIP != "" {
		if _, err := netip.ParseAddr(p.PodIP); err != nil {
			errs = append(errs, fmt.Errorf("pod IP %q is not an IP address", p.PodIP))
		}
	}
	if p.ClusterDNS != "" {
		if _, err := netip.ParseAddr(p.ClusterDNS); err != nil {
			errs = append(errs, fmt.Errorf("cluster DNS %q is not an IP address", p.ClusterDNS))
		}
	}
	if err := p.RestartPolicy.check(); err != nil {
		errs = append(errs, err)
	}
	if p.GracePeriod < 0 {
		errs = append(errs, fmt.Errorf("grace period %v is negative", p.GracePeriod))
	}
	if len(p.Containers) == 0 {
		errs = append(errs, errors.New("no containers"))
	}
	seen := map[string]bool{}
	for i := range p.Containers {
		c := &p.Containers[i]
		if seen[c.Name] {
			errs = append(errs, fmt.Errorf("container %q: name used twice", c.Name))
		}
		seen[c.Name] = true
		for _, err := range c.check() {
			errs = append(errs, fmt.Errorf("container %q: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (rp RestartPolicy) check() error {
	switch rp {
	case "", RestartAlways, RestartOnFailure, RestartNever:
		return nil
	}
	return fmt.Errorf("restart policy %q is not Always, OnFailure or Never", string(rp))
}

func (c *Container) check() []error {
	var errs []error
	if !isDNSLabel(c.Name) {
		errs = append(errs, errors.New("name must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit"))
	}
	switch {
	case c.Builtin == "":
		if len(c.Command) == 0 {
			if len(c.Args) > 0 {
				errs = append(errs, errors.New("args without a command: there is no image entrypoint to pass them to"))
			} else {
				errs = append(errs, errors.New("no command and no builtin"))
			}
		} else if c.Command[0] == "" {
			errs = append(errs, errors.New("command is empty"))
		}
	case c.Builtin.Known():
		if len(c.Command) > 0 || len(c.Args) > 0 {
			errs = append(errs, fmt.Errorf("builtin %q takes no command or args (its port is ports[0].containerPort)", c.Builtin))
		}
	default:
		var known []string
		for _, n := range builtin.Names() {
			known = append(known, string(n))
		}
		errs = append(errs, fmt.Errorf("unknown builtin %q (known: %s)", c.Builtin, strings.Join(known, ", ")))
	}
	for _, e := range c.Env {
		if !isEnvName(e.Name) {
			errs = append(errs, fmt.Errorf("env name %q is not a valid variable name", e.Name))
		}
	}
	if c.WorkingDir != "" && !filepath.IsAbs(c.WorkingDir) {
		errs = append(errs, fmt.Errorf("working directory %q is not an absolute path", c.WorkingDir))
	}
	if c.RootFS != "" && !filepath.IsAbs(c.RootFS) {
		errs = append(errs, fmt.Errorf("root filesystem %q is not an absolute path", c.RootFS))
	}
	for _, p := range c.Ports {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			errs = append(errs, fmt.Errorf("port %d is not between 1 and 65535", p.ContainerPort))
		}
		switch p.Protocol {
		case "", "TCP", "UDP":
		default:
			errs = append(errs, fmt.Errorf("port %d: protocol %q is not TCP or UDP", p.ContainerPort, p.Protocol))
		}
	}
	if err := c.RestartPolicy.check(); err != nil {
		errs = append(errs, err)
	}
	r := c.Resources
	if r.CPURequestMilli < 0 || r.CPULimitMilli < 0 || r.MemoryRequest < 0 || r.MemoryLimit < 0 {
		errs = append(errs, errors.New("resources must not be negative"))
	}
	if r.CPULimitMilli > 0 && r.CPURequestMilli > r.CPULimitMilli {
		errs = append(errs, fmt.Errorf("cpu request %s is above the limit %s", quantity.FormatCPU(r.CPURequestMilli), quantity.FormatCPU(r.CPULimitMilli)))
	}
	if r.MemoryLimit > 0 && r.MemoryRequest > r.MemoryLimit {
		errs = append(errs, fmt.Errorf("memory request %s is above the limit %s", quantity.FormatMemory(r.MemoryRequest), quantity.FormatMemory(r.MemoryLimit)))
	}
	return errs
}

// port is the port a builtin server listens on.
func (c *Container) port() int {
	if len(c.Ports) > 0 {
		return c.Ports[0].ContainerPort
	}
	if p := c.Builtin.DefaultPort(); p != 0 {
		return p
	}
	return builtin.DefaultWebPort
}

// defaultPath is the PATH of a container that sets none, as in container
// images. A directory of labctl's applets follows it, in builtins too: the
// host's curl and ping (or the image's, in a root filesystem) win where
// installed, as they are the real ones a student expects; labctl's serve
// where not. Without a root filesystem that directory is the pod's applet
// links (Options.AppletDir), with one RootFSAppletDir.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environ builds a container's environment: defaults first (PATH with
// appletDir last, unless it is ""), then the container's variables with
// $(NAME) expanded against what came before.
func (p *PodSpec) environ(c *Container, appletDir string) []string {
	path := defaultPath
	if appletDir != "" {
		path += ":" + appletDir
	}
	vars := []EnvVar{
		{"PATH", path},
		{"HOME", "/root"},
		{"HOSTNAME", p.hostname()},
		{"POD_NAME", p.Pod},
	}
	if p.PodIP != "" {
		vars = append(vars, EnvVar{"POD_IP", p.PodIP})
	}
	if c.Builtin.DefaultPort() != 0 { // a builtin server
		vars = append(vars, EnvVar{"CONTAINER_PORT", fmt.Sprint(c.port())})
	}
	index := map[string]int{}
	for i, v := range vars {
		index[v.Name] = i
	}
	lookup := func(name string) (string, bool) {
		if i, ok := index[name]; ok {
			return vars[i].Value, true
		}
		return "", false
	}
	for _, e := range c.Env {
		v := EnvVar{e.Name, expandEnv(e.Value, lookup)}
		if i, ok := index[e.Name]; ok {
			vars[i] = v
		} else {
			index[e.Name] = len(vars)
			vars = append(vars, v)
		}
	}
	env := make([]string, len(vars))
	for i, v := range vars {
		env[i] = v.Name + "=" + v.Value
	}
	return env
}

// SearchPath is the PATH in which the container's command is looked up,
// as StartPod sets it but without the directory of labctl's applets, and
// whether that directory is on it: it is last on the default PATH, and a
// PATH of the container's own has it where it says $(PATH) (or, with a root
// filesystem, RootFSAppletDir). What the lab checks before `up` uses it to
// agree with what the container will find. $(POD_NAME), $(POD_IP) and
// $(HOSTNAME) in a PATH expand to nothing here.
func (c *Container) SearchPath() (path string, applets bool) {
	// Stands for the applet directory: no PATH can name it, as
	// environment values hold no NUL byte.
	const mark = "\x00applets"
	var dirs []string
	for _, d := range filepath.SplitList(envValue((&PodSpec{}).environ(c, mark), "PATH")) {
		if d == mark || c.RootFS != "" && filepath.Clean(d) == RootFSAppletDir {
			applets = true
			continue
		}
		dirs = append(dirs, d)
	}
	if len(dirs) == 0 && !applets {
		return defaultPath, false // as lookPath reads an empty PATH
	}
	return strings.Join(dirs, string(filepath.ListSeparator)), applets
}

func (p *PodSpec) hostname() string {
	if p.Hostname != "" {
		return p.Hostname
	}
	return p.Pod
}

// expandEnv replaces $(NAME) by NAME's value the way Kubernetes does: an
// unknown name stays as written and $$ escapes a dollar.
func expandEnv(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				name := s[i+2 : i+2+end]
				if v, ok := lookup(name); ok {
					b.WriteString(v)
				} else {
					b.WriteString(s[i : i+3+end])
				}
				i += 2 + end
				continue
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}
