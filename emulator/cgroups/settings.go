package cgroups

import (
	"fmt"
	"strconv"
)

// Resources are a container's requests and limits in Kubernetes' units;
// zero means unset. emulator/quantity parses quantities such as "100m" and
// "200Mi". As Kubernetes defaults it, a limit without a request requests
// the limit.
type Resources struct {
	CPURequestMilli int64 `json:"cpuRequestMilli,omitempty"`
	CPULimitMilli   int64 `json:"cpuLimitMilli,omitempty"`
	MemoryRequest   int64 `json:"memoryRequest,omitempty"` // bytes
	MemoryLimit     int64 `json:"memoryLimit,omitempty"`   // bytes
}

// IsZero reports whether no request or limit is set.
func (r Resources) IsZero() bool { return r == Resources{} }

// effective applies Kubernetes' defaulting: a request left out equals the
// limit.
func (r Resources) effective() Resources {
	if r.CPURequestMilli == 0 {
		r.CPURequestMilli = r.CPULimitMilli
	}
	if r.MemoryRequest == 0 {
		r.MemoryRequest = r.MemoryLimit
	}
	return r
}

// Kubernetes' conversions (pkg/kubelet/cm/helpers_linux.go).
const (
	cfsPeriod = 100000 // µs
	minShares = 2
	maxShares = 262144
	minQuota  = 1000 // µs
)

// cpuShares converts a CPU request to cgroup v1 cpu.shares.
func cpuShares(milli int64) int64 {
	if milli == 0 {
		return minShares
	}
	s := milli * 1024 / 1000
	return max(minShares, min(s, maxShares))
}

// cpuWeight converts cpu.shares to cgroup v2 cpu.weight ([2, 262144] onto
// [1, 10000]), the formula the kubelet and runc use.
func cpuWeight(shares int64) int64 { return 1 + (shares-2)*9999/262142 }

// cpuQuota converts a CPU limit to a CFS quota per cfsPeriod.
func cpuQuota(milli int64) int64 { return max(milli*cfsPeriod/1000, minQuota) }

// Setting is one value written to a cgroup file, shown in the status
// so a student can compare it with the table of the textbook.
type Setting struct {
	File  string `json:"file"`
	Value string `json:"value"`
}

// settings are the files and values a container with r gets, in the order
// they must be written.
func (d Driver) settings(r Resources) []Setting {
	r = r.effective()
	var s []Setting
	add := func(file string, v int64) { s = append(s, Setting{file, strconv.FormatInt(v, 10)}) }
	switch d.Name {
	case V2:
		add("cpu.weight", cpuWeight(cpuShares(r.CPURequestMilli)))
		if r.CPULimitMilli > 0 {
			s = append(s, Setting{"cpu.max", fmt.Sprintf("%d %d", cpuQuota(r.CPULimitMilli), cfsPeriod)})
		}
		if r.MemoryRequest > 0 {
			add("memory.low", r.MemoryRequest)
		}
		if r.MemoryLimit > 0 {
			add("memory.max", r.MemoryLimit)
			add("memory.swap.max", 0) // a limit means OOM, not swapping, as with Kubernetes' default
		}
		add("memory.oom.group", 1) // an OOM kill takes the whole container, as the kubelet sets it
	case V1:
		add("cpu.shares", cpuShares(r.CPURequestMilli))
		if r.CPULimitMilli > 0 {
			add("cpu.cfs_period_us", cfsPeriod)
			add("cpu.cfs_quota_us", cpuQuota(r.CPULimitMilli))
		}
		if r.MemoryLimit > 0 {
			add("memory.limit_in_bytes", r.MemoryLimit)
			add("memory.memsw.limit_in_bytes", r.MemoryLimit) // no swap either
		}
		if r.MemoryRequest > 0 {
			add("memory.soft_limit_in_bytes", r.MemoryRequest)
		}
	}
	return s
}

// optionalSetting names files some kernels lack (no swap accounting, older
// kernels): writing them is best effort.
func optionalSetting(file string) bool {
	switch file {
	case "memory.swap.max", "memory.memsw.limit_in_bytes", "memory.oom.group":
		return true
	}
	return false
}
