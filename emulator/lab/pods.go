package lab

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/clusterdns"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// PodStateDir is where a pod's supervisor keeps its status and logs.
func (m Manager) PodStateDir(lab, pod string) string {
	return filepath.Join(m.dir(), "pods", lab, pod)
}

// startContainers starts the containers of every pod (and external host)
// that has some, once
// networking is ready, and records each pod's supervisor. Pods start in
// parallel: a start is mostly waiting (fork, exec, the Go runtime of the
// supervisor and of each builtin coming up, the server binding its port),
// so a few per CPU keep the machine busy. The first failure stops the rest;
// every supervisor that did start is in rec.Pods for the rollback. With
// only set, just those pods start (a repair).
func (m Manager) startContainers(ctx context.Context, rec *Record, only map[string]bool) error {
	exe, err := m.executable()
	if err != nil {
		return err
	}
	opts := workload.Options{Executable: exe, AppletDir: filepath.Join(m.dir(), "bin")}
	// Pods resolve through the cluster DNS, kube-dns at the tenth address
	// of the service CIDR, as a kubeadm cluster's kubelet tells them.
	var clusterDNS string
	if ip, err := clusterdns.KubeDNSAddress(rec.Topology.Network.ServiceCIDR); err == nil {
		clusterDNS = ip.String()
	}
	var specs []workload.PodSpec
	for _, pod := range rec.Topology.Pods() {
		if len(pod.Containers) == 0 || (only != nil && !only[pod.Name]) {
			continue
		}
		ps := m.podSpec(rec.Name, pod.Name, pod.IP, pod.RestartPolicy, pod.Containers)
		ps.ClusterDNS = clusterDNS
		if err := m.provideDNSModel(rec, &ps); err != nil { // services.go
			return err
		}
		specs = append(specs, ps)
	}
	specs = append(specs, m.externalPodSpecs(rec, only)...)
	if len(specs) == 0 {
		return nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shims := make([]workload.Shim, len(specs))
	errs := make([]error, len(specs))
	startAll(len(specs), func(i int) {
		if ctx.Err() != nil {
			errs[i] = ctx.Err()
			return
		}
		shims[i], errs[i] = workload.StartPod(ctx, specs[i], opts)
		if errs[i] != nil {
			cancel()
		}
	})

	for i, s := range shims {
		if errs[i] != nil || s.PID == 0 {
			continue
		}
		if rec.Pods == nil {
			rec.Pods = map[string]workload.Shim{}
		}
		rec.Pods[specs[i].Pod] = s
		rec.Timing.Started += len(specs[i].Containers)
	}
	// Report the pods that failed by themselves, not the ones the first
	// failure cancelled; an interrupt is reported once.
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return errors.Join(failed...)
}

// startAll calls start(0) ... start(n-1), a few at once: starting a
// process is mostly waiting (fork, exec, the Go runtime of the new process
// coming up, its ready report), so four per CPU the Go runtime may use
// overlap the waits without thrashing.
func startAll(n int, start func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(4*runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				start(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// podSpec is the supervisor of a pod (or external host) name of lab.
func (m Manager) podSpec(lab, name string, ip netip.Addr, policy spec.RestartPolicy, cs []spec.Container) workload.PodSpec {
	ps := workload.PodSpec{
		Lab: lab, Pod: name, Hostname: name, PodIP: ip.String(),
		Namespace:     netns.Path(plan.NamespaceName(lab, name)),
		StateDir:      m.PodStateDir(lab, name),
		RestartPolicy: workload.RestartPolicy(policy),
	}
	for _, c := range cs {
		ps.Containers = append(ps.Containers, toWorkload(c))
	}
	return ps
}

func toWorkload(c spec.Container) workload.Container {
	w := workload.Container{
		Name: c.Name, Builtin: builtin.Name(c.Builtin), Command: c.Command, Args: c.Args,
		WorkingDir: c.WorkingDir, RootFS: c.RootFS, RestartPolicy: workload.RestartPolicy(c.RestartPolicy),
		Resources: cgroups.Resources{
			CPURequestMilli: c.Resources.CPURequestMilli, CPULimitMilli: c.Resources.CPULimitMilli,
			MemoryRequest: c.Resources.MemoryRequest, MemoryLimit: c.Resources.MemoryLimit,
		},
	}
	for _, e := range c.Env {
		w.Env = append(w.Env, workload.EnvVar{Name: e.Name, Value: e.Value})
	}
	for _, p := range c.Ports {
		w.Ports = append(w.Ports, workload.Port{Name: p.Name, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	return w
}

// stopContainers stops every pod's containers (TERM, then KILL after the
// grace period); a supervisor whose record is lost is found by its cgroups.
func (m Manager) stopContainers(rec *Record) error {
	var shims []workload.Shim
	for _, s := range rec.Pods {
		shims = append(shims, s)
	}
	err := workload.StopPods(shims, workload.DefaultGracePeriod)
	if serr := workload.SweepLab(rec.Name, ""); serr != nil && err == nil {
		err = serr
	}
	return err
}
