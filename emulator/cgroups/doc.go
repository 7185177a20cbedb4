// Package cgroups places labctl's processes in cgroups and limits them the
// way the kubelet does: it detects which cgroup interface the host offers
// (v2 with the cpu and memory controllers, else v1, mounting its
// hierarchies if nobody has, else none), maps Kubernetes requests and
// limits onto cgroup files, creates a pod's cgroups, forks processes
// straight into their cgroups, and kills and removes cgroups with
// everything in them.
//
// Every pod gets <hierarchy>/labctl/<lab>/<pod>/ with one child per
// container (and one for its supervisor, emulator/workload's "_shim").
// Limits go on the container cgroups; the pod cgroup gets the sums the
// kubelet gives it. Nothing outside labctl/ is created or changed, except
// enabling the cpu and memory controllers for children of the cgroup v2
// root when they are not yet enabled.
//
//	d, err := cgroups.Detect(cgroups.Auto)        // d.String(): the one line the CLI shows
//	pod, err := d.CreatePod(lab, name)            // pod.Dirs(): one directory per hierarchy
//	dirs, wrote, err := pod.Container("web", r)   // a container's cgroups and the settings written
//	sp := cgroups.NewSpawner(home)                // cgroup v1: fork children born in their cgroups
//	left := cgroups.Kill(dir, time.Second)        // SIGKILL everything inside, wait until gone
//	err = cgroups.RemovePod(dir)                  // and remove the directories
//
// Kill, Remove and RemovePod act only on cgroups labctl made (Owned), and
// signal through pidfds, so a directory or PID from a damaged record never
// reaches someone else's processes.
package cgroups
