package lab

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/labctl/labctl/emulator/kernel"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/emulator/workload"
)

// PodStateDir is where a pod's supervisor keeps its status and logs.
func (m Manager) PodStateDir(lab, pod string) string {
	return filepath.Join(m.dir(), "pods", lab, pod)
}

// startContainers starts the containers of every pod that has some, once
// networking is ready, and records each pod's supervisor.
func (m Manager) startContainers(ctx context.Context, rec *Record) error {
	exe, err := m.executable()
	if err != nil {
		return err
	}
	opts := workload.Options{Executable: exe, AppletDir: filepath.Join(m.dir(), "bin")}
	for _, pod := range rec.Topology.Pods() {
		if len(pod.Containers) == 0 {
			continue
		}
		ps := workload.PodSpec{
			Lab: rec.Name, Pod: pod.Name, Hostname: pod.Name, PodIP: pod.IP.String(),
			Namespace:     kernel.NamespacePath(plan.NamespaceName(rec.Name, pod.Name)),
			StateDir:      m.PodStateDir(rec.Name, pod.Name),
			RestartPolicy: workload.RestartPolicy(pod.RestartPolicy),
		}
		for _, c := range pod.Containers {
			ps.Containers = append(ps.Containers, toWorkload(c))
		}
		shim, err := workload.StartPod(ctx, ps, opts)
		if err != nil {
			return fmt.Errorf("pod %q: %w", pod.Name, err)
		}
		if rec.Pods == nil {
			rec.Pods = map[string]workload.Shim{}
		}
		rec.Pods[pod.Name] = shim
	}
	return nil
}

func toWorkload(c spec.Container) workload.Container {
	w := workload.Container{
		Name: c.Name, Builtin: workload.Builtin(c.Builtin), Command: c.Command, Args: c.Args,
		WorkingDir: c.WorkingDir, RootFS: c.RootFS, RestartPolicy: workload.RestartPolicy(c.RestartPolicy),
		Resources: workload.Resources{
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
