package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/spec"
)

// HostError is something this host cannot give a valid lab: a file the
// topology names that is not there, a kernel module or cgroup controller
// it lacks, more memory than it has. Path is the YAML path it concerns
// ("" for the lab as a whole).
type HostError struct {
	Path string
	Msg  string
}

func (e *HostError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// HostCheck reports everything about this host that would make `up` of a
// valid topology fail, before anything is created: what validation cannot
// know. It only reads /proc, /sys, /lib/modules and the paths the topology
// names; it changes nothing.
func HostCheck(t *spec.Topology) []error {
	return host{root: "/"}.check(t)
}

// Features are the kernel features labctl uses, as this host has them.
type Features struct {
	// Kernel is the kernel's release.
	Kernel string `json:"kernel"`
	// IPIP says what serves IPIP devices by default (datapath auto):
	// "kernel" (the ipip module), "userspace" (labctl's datapath over a
	// TUN device) or "none" (neither the module nor /dev/net/tun).
	IPIP string `json:"ipip"`
	// VXLAN says whether the vxlan module is there or can be loaded.
	VXLAN bool `json:"vxlan"`
	// NSGetID says whether namespace cookies are read through NS_GET_ID
	// (Linux 6.18) or from a socket made inside each namespace.
	NSGetID bool `json:"nsGetID"`
}

// HostFeatures reads which of the kernel features labctl uses this host
// has. It only reads /proc, /sys and /lib/modules; it needs no root.
func HostFeatures() Features {
	h := host{root: "/"}
	f := Features{VXLAN: h.module("vxlan"), NSGetID: netns.HasNSGetID(), IPIP: "none"}
	if rel, err := h.read("/proc/sys/kernel/osrelease"); err == nil {
		f.Kernel = strings.TrimSpace(string(rel))
	}
	switch {
	case h.module("ipip"):
		f.IPIP = spec.DatapathKernel
	case h.exists("/dev/net/tun"):
		f.IPIP = spec.DatapathUserspace
	}
	return f
}

// host reads the kernel's files under root ("/" but in tests).
type host struct {
	root string
	// labctlStatic says why the labctl binary cannot run inside a root
	// filesystem (nil: it can); nil asks applet.StaticallyLinked of
	// this program, which `up` runs containers from.
	labctlStatic func() error
}

// appletsInRoots returns nil when labctl's applets serve in containers
// with a root filesystem, or why not.
func (h host) appletsInRoots() error {
	if h.labctlStatic != nil {
		return h.labctlStatic()
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return applet.StaticallyLinked(exe)
}

func (h host) path(p string) string { return filepath.Join(h.root, p) }

func (h host) read(p string) ([]byte, error) { return os.ReadFile(h.path(p)) }

func (h host) exists(p string) bool {
	_, err := os.Stat(h.path(p))
	return err == nil
}

func (h host) check(t *spec.Topology) []error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, &HostError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	h.checkModules(t, add)
	h.checkContainers(t, add)
	h.checkCapacity(t, add)
	h.checkServices(t, add) // services.go
	return errs
}

// module reports whether the kernel has a module loaded or built in, or can
// load it from /lib/modules. It is asked only of modules with parameters
// (vxlan, ipip), which have a /sys/module directory even when built in, so
// a kernel without module support still answers right.
func (h host) module(name string) bool {
	if h.exists("/sys/module/" + name) {
		return true
	}
	if mods, err := h.read("/proc/modules"); err == nil {
		for line := range strings.Lines(string(mods)) {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				return true
			}
		}
	}
	rel, err := h.read("/proc/sys/kernel/osrelease")
	if err != nil {
		return false
	}
	dir := "/lib/modules/" + strings.TrimSpace(string(rel))
	for _, list := range []string{"modules.builtin", "modules.dep"} {
		data, err := h.read(dir + "/" + list)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			file, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			base := filepath.Base(file)
			if i := strings.Index(base, ".ko"); i > 0 && strings.ReplaceAll(base[:i], "-", "_") == name {
				return true
			}
		}
	}
	return false
}

// checkModules: VXLAN needs its module;
// IPIP needs the ipip module when the kernel datapath is insisted on, and a
// TUN device otherwise, which cannot be called tunl0 once ipip is loaded.
func (h host) checkModules(t *spec.Topology, add func(string, string, ...any)) {
	backends := t.Backends()
	if slices.Contains(backends, spec.BackendVXLAN) && !h.module("vxlan") {
		add("network.backend", "the vxlan backend needs the kernel's vxlan module, which this host neither has loaded nor can load")
	}
	if !slices.Contains(backends, spec.BackendIPIP) {
		return
	}
	ipip := t.Network.IPIP
	switch {
	case ipip.Datapath == spec.DatapathKernel && !h.module("ipip"):
		add("network.ipip.datapath", "datapath kernel needs the kernel's ipip module, which this host neither has loaded nor can load (auto or userspace use labctl's datapath instead)")
	case ipip.Datapath == spec.DatapathUserspace && ipip.Device == "tunl0" && h.exists("/sys/module/ipip"):
		add("network.ipip.device", "the ipip module is loaded, so every namespace already has its own tunl0 and the userspace datapath cannot create a TUN device of that name (choose another device name, or datapath auto)")
	}
	kernelIPIP := ipip.Datapath != spec.DatapathUserspace && h.module("ipip")
	if !kernelIPIP && !h.exists("/dev/net/tun") {
		add("network.ipip.datapath", "labctl's userspace IPIP datapath needs /dev/net/tun, which this host does not have (the tun module)")
	}
}

// containerPaths yields each container of the lab with its YAML path.
func containerPaths(t *spec.Topology) func(yield func(string, spec.Container) bool) {
	deployments := map[string]int{}
	for i, d := range t.Deployments {
		deployments[d.Name] = i
	}
	return func(yield func(string, spec.Container) bool) {
		seen := map[string]bool{}
		for i, n := range t.Nodes {
			for j, p := range n.Pods {
				prefix := fmt.Sprintf("nodes[%d].pods[%d]", i, j)
				if p.Deployment != "" {
					// A deployment's pods share its template: check it once.
					if seen[p.Deployment] {
						continue
					}
					seen[p.Deployment] = true
					prefix = fmt.Sprintf("deployments[%d].template", deployments[p.Deployment])
				}
				for k, c := range p.Containers {
					if !yield(fmt.Sprintf("%s.containers[%d]", prefix, k), c) {
						return
					}
				}
			}
		}
		externalPaths(t, yield)
	}
}

// checkContainers: the root file system, working directory and program each
// container names must be there, and the cgroup controllers its resources
// need.
func (h host) checkContainers(t *spec.Topology, add func(string, string, ...any)) {
	controllers := h.cgroupControllers()
	for path, c := range containerPaths(t) {
		root := "/"
		if c.RootFS != "" {
			if st, err := os.Stat(c.RootFS); err != nil {
				add(path+".rootfs", "root file system %s: %v", c.RootFS, errText(err))
				continue
			} else if !st.IsDir() {
				add(path+".rootfs", "root file system %s is not a directory", c.RootFS)
				continue
			}
			root = c.RootFS
		}
		if c.WorkingDir != "" {
			dir := filepath.Join(root, c.WorkingDir)
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				add(path+".workingDir", "working directory %s does not exist%s", c.WorkingDir, inRoot(c.RootFS))
			}
		}
		if c.Builtin == "" && len(c.Command) > 0 {
			if msg := h.findProgram(c, root); msg != "" {
				add(path+".command", "%s", msg)
			}
		}
		r := c.Resources
		for _, need := range []struct {
			ctrl string
			set  bool
			what string
		}{
			{"cpu", r.CPURequestMilli > 0 || r.CPULimitMilli > 0, "cpu"},
			{"memory", r.MemoryRequest > 0 || r.MemoryLimit > 0, "memory"},
		} {
			if need.set && controllers != nil && !controllers[need.ctrl] {
				add(path+".resources", "this host's kernel has no %s cgroup controller (/proc/cgroups), so the %s request or limit cannot be enforced", need.ctrl, need.what)
			}
		}
	}
}

// findProgram explains why a container's program cannot be found, or
// returns "": a path must be an executable file, a name must be on the
// container's PATH (as workload sets it) or be one of labctl's applets
// where that PATH reaches them. In a root filesystem the applets serve
// only from a statically linked labctl (see workload.RootFSAppletDir).
func (h host) findProgram(c spec.Container, root string) string {
	prog := c.Command[0]
	if strings.Contains(prog, "/") {
		if !executable(filepath.Join(root, prog)) {
			return fmt.Sprintf("program %s is not an executable file%s", prog, inRoot(c.RootFS))
		}
		return ""
	}
	wc := toWorkload(c)
	path, applets := wc.SearchPath()
	for _, dir := range filepath.SplitList(path) {
		if dir != "" && executable(filepath.Join(root, dir, prog)) {
			return ""
		}
	}
	msg := fmt.Sprintf("program %q is not on the container's PATH (%s)%s", prog, path, inRoot(c.RootFS))
	if !applets || !slices.Contains(applet.Names(), prog) {
		return msg
	}
	if c.RootFS == "" {
		return ""
	}
	if err := h.appletsInRoots(); err != nil {
		return fmt.Sprintf("%s, and labctl's own %s cannot serve in a root filesystem: %v", msg, prog, err)
	}
	return ""
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func inRoot(rootfs string) string {
	if rootfs == "" {
		return " on this host"
	}
	return " in " + rootfs
}

func errText(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// cgroupControllers lists the enabled controllers from /proc/cgroups; nil
// when it cannot be read (then nothing is claimed about them).
func (h host) cgroupControllers() map[string]bool {
	data, err := h.read("/proc/cgroups")
	if err != nil {
		return nil
	}
	have := map[string]bool{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) == 4 && !strings.HasPrefix(f[0], "#") && f[3] == "1" {
			have[f[0]] = true
		}
	}
	return have
}

// Rough kernel and process memory per lab object, measured on Linux 6.18
// (MemAvailable before and after): a namespace with its loopback, veth
// pair, bridge and addresses; a route via a gateway; a permanent neighbour;
// a VXLAN FDB entry; a pod's supervisor and a container (a builtin or a
// small program), which share the labctl binary's pages.
const (
	costNamespace  = 400 << 10
	costRoute      = 2300
	costNeighbour  = 7400
	costFDB        = 1600
	costSupervisor = 4 << 20
	costContainer  = 4 << 20
)

// Capacity is what a lab asks of the kernel, roughly.
type Capacity struct {
	Namespaces, Links, Routes, Neighbours, FDB, Processes int
	Bytes                                                 int64
}

// EstimateCapacity counts a lab's kernel objects and processes, and the
// memory they need.
func EstimateCapacity(t *spec.Topology) Capacity {
	var c Capacity
	n := len(t.Nodes)
	c.Namespaces = 1 + n
	c.Links = n // underlay veths
	nw := t.Network
	bridged := nw.Backend == spec.BackendVXLAN && nw.VXLAN.Mode == spec.VXLANBridged
	vxlanPairs := 0
	for _, l := range t.Links {
		if l.Backend == spec.BackendVXLAN {
			vxlanPairs++
		}
	}
	pairs := n * (n - 1) / 2
	if nw.Backend == spec.BackendVXLAN && !bridged {
		vxlanPairs = pairs - (len(t.Links) - vxlanPairs)
	}
	switch {
	case bridged:
		c.Routes = n
		if nw.VXLAN.Flooding == spec.FloodUnicast {
			c.FDB = n * (n - 1)
		}
	default:
		c.Routes = 2 * pairs // one each way
		c.Neighbours = 2 * vxlanPairs
		c.FDB = 2 * vxlanPairs
	}
	for _, node := range t.Nodes {
		for _, p := range node.Pods {
			c.Namespaces++
			c.Links++
			c.Routes++ // the pod's default route
			if t.Calico() {
				c.Routes += 2 // and its route to 169.254.1.1, the node's route to it
			}
			if len(p.Containers) > 0 {
				c.Processes += 1 + len(p.Containers)
			}
		}
	}
	c.Bytes = int64(c.Namespaces)*costNamespace + int64(c.Routes)*costRoute + int64(c.Neighbours)*costNeighbour +
		int64(c.FDB)*costFDB
	addExternalCapacity(t, &c)
	for _, node := range t.Nodes {
		for _, p := range node.Pods {
			if len(p.Containers) > 0 {
				c.Bytes += costSupervisor + int64(len(p.Containers))*costContainer
			}
		}
	}
	return c
}

// checkCapacity compares the lab's estimate with what the host has: memory
// available, process IDs, network namespaces.
func (h host) checkCapacity(t *spec.Topology, add func(string, string, ...any)) {
	c := EstimateCapacity(t)
	if avail, ok := h.memAvailable(); ok && c.Bytes > avail {
		add("", "the lab needs about %s of memory (%d namespaces, %d routes, %d neighbour and %d FDB entries, %d processes) and this host has %s available",
			bytesText(c.Bytes), c.Namespaces, c.Routes, c.Neighbours, c.FDB, c.Processes, bytesText(avail))
	}
	if max, ok := h.number("/proc/sys/kernel/pid_max"); ok {
		used := int64(0)
		if data, err := h.read("/proc/loadavg"); err == nil {
			// "0.00 0.01 0.05 1/123 4567": tasks now in the fourth field.
			if f := strings.Fields(string(data)); len(f) >= 4 {
				if _, total, ok := strings.Cut(f[3], "/"); ok {
					used, _ = strconv.ParseInt(total, 10, 64)
				}
			}
		}
		if int64(c.Processes) > max-used {
			add("", "the lab starts %d processes and this host has room for %d more (kernel.pid_max %d, %d tasks running)", c.Processes, max-used, max, used)
		}
	}
	if max, ok := h.number("/proc/sys/user/max_net_namespaces"); ok && int64(c.Namespaces) > max {
		add("", "the lab has %d network namespaces and this host allows %d (user.max_net_namespaces)", c.Namespaces, max)
	}
}

func (h host) memAvailable() (int64, bool) {
	data, err := h.read("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func (h host) number(p string) (int64, bool) {
	data, err := h.read(p)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n, err == nil
}

func bytesText(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// KernelHasModule reports whether this kernel has a module loaded, built in
// or loadable (for ipip and vxlan: whether labctl will use the kernel's
// device or its userspace fallback).
func KernelHasModule(name string) bool { return host{root: "/"}.module(name) }
