package workload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
)

// Cgroups: every pod gets <hierarchy>/labctl/<lab>/<pod>/ with one child per
// container plus "_shim" for its supervisor (container names are DNS labels,
// so they never clash with it). Limits go on the container cgroups, mapped
// the way Kubernetes maps requests and limits. Nothing outside labctl/ is
// created or changed, except enabling the cpu and memory controllers for
// children of the cgroup v2 root when they are not yet enabled.

// CgroupRoot is the directory labctl owns in each cgroup hierarchy, like
// Docker's "docker". It is never removed: other labs may be starting in it.
const CgroupRoot = "labctl"

// shimCgroup is the supervisor's leaf: on cgroup v2 a cgroup whose children
// have controllers may not hold processes itself.
const shimCgroup = "_shim"

// Driver names, for Options.Cgroups and CgroupDriver.Name.
const (
	CgroupAuto = "auto" // v2 when it has the cpu and memory controllers, else v1, else none
	CgroupV2   = "v2"
	CgroupV1   = "v1"
	CgroupNone = "none" // no limits; processes are tracked by PID only
)

// CgroupDriver says which cgroup interface pods use and where it is mounted.
type CgroupDriver struct {
	Name    string `json:"name"`              // v2, v1 or none
	Unified string `json:"unified,omitempty"` // v2: the cgroup2 mount
	CPU     string `json:"cpu,omitempty"`     // v1: mount of the hierarchy with the cpu controller
	Memory  string `json:"memory,omitempty"`  // v1: mount of the hierarchy with the memory controller
	// Note explains a fallback (why not v2, why none) or a mount labctl made.
	Note string `json:"note,omitempty"`
}

// String is the one line the CLI shows, e.g.
// "cgroup v1 (cpu: /sys/fs/cgroup/cpu, memory: /sys/fs/cgroup/memory)".
func (d CgroupDriver) String() string {
	var s string
	switch d.Name {
	case CgroupV2:
		s = "cgroup v2 (" + d.Unified + ")"
	case CgroupV1:
		s = "cgroup v1 (cpu: " + d.CPU + ", memory: " + d.Memory + ")"
	default:
		s = "no cgroups: resource limits are not enforced"
	}
	if d.Note != "" {
		s += "; " + d.Note
	}
	return s
}

// hierarchies are the mount points to create pod cgroups in (one for v2, one
// or two for v1).
func (d CgroupDriver) hierarchies() []string {
	switch d.Name {
	case CgroupV2:
		return []string{d.Unified}
	case CgroupV1:
		if d.CPU == d.Memory {
			return []string{d.CPU}
		}
		return []string{d.CPU, d.Memory}
	}
	return nil
}

// V1MountDir is where labctl mounts cgroup v1 hierarchies for cpu and memory
// when the system has not mounted them anywhere.
const V1MountDir = "/run/labctl/cgroup"

var detectOnce sync.Map // mode -> *detected

type detected struct {
	once sync.Once
	d    CgroupDriver
	err  error
}

// DetectCgroups chooses the cgroup driver for mode (CgroupAuto, CgroupV2,
// CgroupV1 or CgroupNone) and remembers the answer for the process. On
// cgroup v1 it mounts the cpu and memory hierarchies under V1MountDir if
// they are not mounted anywhere; it never unmounts anything.
func DetectCgroups(mode string) (CgroupDriver, error) {
	if mode == "" {
		mode = CgroupAuto
	}
	v, _ := detectOnce.LoadOrStore(mode, &detected{})
	det := v.(*detected)
	det.once.Do(func() { det.d, det.err = detect(mode) })
	return det.d, det.err
}

type mountInfo struct {
	point, root, fstype string
	opts                []string // super options: the v1 controllers
}

func readMountInfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountInfo(f)
}

func parseMountInfo(r io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountLine(sc.Text()); ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMountLine reads one line of /proc/self/mountinfo:
// id parent major:minor root mountpoint opts [optional...] - fstype source superopts
func parseMountLine(line string) (mountInfo, bool) {
	f := strings.Fields(line)
	sep := slices.Index(f, "-")
	if sep < 6 || sep+3 >= len(f) {
		return mountInfo{}, false
	}
	return mountInfo{
		root:   unescapeMount(f[3]),
		point:  unescapeMount(f[4]),
		fstype: f[sep+1],
		opts:   strings.Split(f[sep+3], ","),
	}, true
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func detect(mode string) (CgroupDriver, error) {
	switch mode {
	case CgroupAuto, CgroupV1, CgroupV2, CgroupNone:
	default:
		return CgroupDriver{}, fmt.Errorf("cgroup driver %q is not auto, v2, v1 or none", mode)
	}
	if mode == CgroupNone {
		return CgroupDriver{Name: CgroupNone, Note: "cgroups turned off"}, nil
	}
	mounts, err := readMountInfo()
	if err != nil {
		return CgroupDriver{}, fmt.Errorf("read mounts: %w", err)
	}
	var why []string
	if mode != CgroupV1 {
		d, reason := detectV2(mounts)
		if reason == "" {
			return d, nil
		}
		if mode == CgroupV2 {
			return CgroupDriver{}, fmt.Errorf("cgroup v2: %s", reason)
		}
		why = append(why, "v2: "+reason)
	}
	d, reason := detectV1(mounts)
	if reason == "" {
		if len(why) > 0 {
			d.Note = strings.Join(append(why, d.Note), "; ")
			d.Note = strings.TrimSuffix(d.Note, "; ")
		}
		return d, nil
	}
	if mode == CgroupV1 {
		return CgroupDriver{}, fmt.Errorf("cgroup v1: %s", reason)
	}
	why = append(why, "v1: "+reason)
	return CgroupDriver{Name: CgroupNone, Note: strings.Join(why, "; ")}, nil
}

// detectV2 accepts a cgroup2 mount of the whole hierarchy whose root offers
// the cpu and memory controllers.
func detectV2(mounts []mountInfo) (CgroupDriver, string) {
	var points []string
	for _, m := range mounts {
		if m.fstype == "cgroup2" && m.root == "/" {
			points = append(points, m.point)
		}
	}
	if len(points) == 0 {
		return CgroupDriver{}, "not mounted"
	}
	// The conventional place first.
	sort.SliceStable(points, func(i, j int) bool { return points[i] == "/sys/fs/cgroup" })
	b, err := os.ReadFile(filepath.Join(points[0], "cgroup.controllers"))
	if err != nil {
		return CgroupDriver{}, err.Error()
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return CgroupDriver{}, fmt.Sprintf("%s lacks the %s controller%s", points[0], strings.Join(missing, " and "), map[bool]string{true: "s"}[len(missing) > 1])
	}
	return CgroupDriver{Name: CgroupV2, Unified: points[0]}, ""
}

// detectV1 finds (or mounts) the v1 hierarchies of cpu and memory.
func detectV1(mounts []mountInfo) (CgroupDriver, string) {
	d := CgroupDriver{Name: CgroupV1}
	var mounted []string
	for _, c := range []string{"cpu", "memory"} {
		point := findV1(mounts, c)
		if point == "" {
			var err error
			point, err = mountV1(c)
			if err != nil {
				return CgroupDriver{}, fmt.Sprintf("mount %s hierarchy: %v", c, err)
			}
			mounted = append(mounted, point)
			if mounts, err = readMountInfo(); err != nil {
				return CgroupDriver{}, err.Error()
			}
		}
		if c == "cpu" {
			d.CPU = point
		} else {
			d.Memory = point
		}
	}
	if len(mounted) > 0 {
		d.Note = "labctl mounted " + strings.Join(mounted, " and ")
	}
	return d, ""
}

// findV1 returns the mount point of the v1 hierarchy with controller c,
// preferring a mount of its root and the conventional /sys/fs/cgroup.
func findV1(mounts []mountInfo, c string) string {
	best := ""
	for _, m := range mounts {
		if m.fstype != "cgroup" || !slices.Contains(m.opts, c) {
			continue
		}
		if m.root == "/" && (best == "" || strings.HasPrefix(m.point, "/sys/fs/cgroup/")) {
			best = m.point
		}
	}
	return best
}

// v1MountOptions says which controllers to mount together with c: a v1
// hierarchy can only be mounted again with exactly its set of controllers
// (cpu and cpuacct often share one). procCgroups is /proc/cgroups.
func v1MountOptions(procCgroups []byte, c string) ([]string, error) {
	type entry struct {
		name      string
		hierarchy int
		enabled   bool
	}
	var all []entry
	for _, line := range strings.Split(string(procCgroups), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		h, err1 := strconv.Atoi(f[1])
		en, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		all = append(all, entry{f[0], h, en == 1})
	}
	i := slices.IndexFunc(all, func(e entry) bool { return e.name == c })
	if i < 0 || !all[i].enabled {
		return nil, fmt.Errorf("the kernel has no %s controller", c)
	}
	if all[i].hierarchy == 0 {
		// Free, or bound to cgroup v2: a v1 mount of it alone works only in
		// the first case, and the mount call tells which.
		return []string{c}, nil
	}
	var opts []string
	for _, e := range all {
		if e.hierarchy == all[i].hierarchy && e.enabled {
			opts = append(opts, e.name)
		}
	}
	return opts, nil
}

// mountV1 mounts the hierarchy holding controller c under V1MountDir, once:
// under a lock, and only if no earlier labctl already mounted it there.
func mountV1(c string) (string, error) {
	pc, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		return "", err
	}
	opts, err := v1MountOptions(pc, c)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(V1MountDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(V1MountDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	point := filepath.Join(V1MountDir, strings.Join(opts, ","))
	mounts, err := readMountInfo()
	if err != nil {
		return "", err
	}
	for _, m := range mounts {
		if m.point == point && m.fstype == "cgroup" {
			return point, nil
		}
	}
	if err := os.MkdirAll(point, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("cgroup", point, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, strings.Join(opts, ",")); err != nil {
		return "", fmt.Errorf("mount -t cgroup -o %s cgroup %s: %w", strings.Join(opts, ","), point, err)
	}
	return point, nil
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

// CgroupSetting is one value written to a cgroup file, shown in the status
// so a student can compare it with the table of the textbook.
type CgroupSetting struct {
	File  string `json:"file"`
	Value string `json:"value"`
}

// settings are the files and values a container with r gets, in the order
// they must be written.
func (d CgroupDriver) settings(r Resources) []CgroupSetting {
	r = r.effective()
	var s []CgroupSetting
	add := func(file string, v int64) { s = append(s, CgroupSetting{file, strconv.FormatInt(v, 10)}) }
	switch d.Name {
	case CgroupV2:
		add("cpu.weight", cpuWeight(cpuShares(r.CPURequestMilli)))
		if r.CPULimitMilli > 0 {
			s = append(s, CgroupSetting{"cpu.max", fmt.Sprintf("%d %d", cpuQuota(r.CPULimitMilli), cfsPeriod)})
		}
		if r.MemoryRequest > 0 {
			add("memory.low", r.MemoryRequest)
		}
		if r.MemoryLimit > 0 {
			add("memory.max", r.MemoryLimit)
			add("memory.swap.max", 0) // a limit means OOM, not swapping, as with Kubernetes' default
		}
		add("memory.oom.group", 1) // an OOM kill takes the whole container, as the kubelet sets it
	case CgroupV1:
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

// podCgroups is a pod's directory in each hierarchy.
type podCgroups struct {
	driver CgroupDriver
	dirs   []string
}

// podCgroupDirs returns where a pod's cgroups live, whether or not they
// exist.
func (d CgroupDriver) podCgroupDirs(lab, pod string) []string {
	var dirs []string
	for _, h := range d.hierarchies() {
		dirs = append(dirs, filepath.Join(h, CgroupRoot, lab, pod))
	}
	return dirs
}

// createPod makes the pod's cgroups. Several shims of one lab may create
// the shared parents at once, and a StopPod of a sibling may remove the lab
// directory between two of our mkdirs: both are retried.
func (d CgroupDriver) createPod(lab, pod string) (*podCgroups, error) {
	pc := &podCgroups{driver: d}
	for _, h := range d.hierarchies() {
		var dir string
		var err error
		for range 5 {
			if dir, err = d.mkdirChain(h, []string{CgroupRoot, lab, pod}); !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		pc.dirs = append(pc.dirs, dir)
	}
	return pc, nil
}

// mkdirChain creates h/a/b/c..., enabling the controllers for the children
// of each level on cgroup v2 (the root's only if they are not yet on).
func (d CgroupDriver) mkdirChain(h string, parts []string) (string, error) {
	dir := h
	if d.Name == CgroupV2 {
		if err := enableControllers(dir); err != nil {
			return "", err
		}
	}
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if d.Name == CgroupV2 {
			if err := enableControllers(dir); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
}

func enableControllers(dir string) error {
	file := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	on := strings.Fields(string(b))
	if slices.Contains(on, "cpu") && slices.Contains(on, "memory") {
		return nil
	}
	if err := os.WriteFile(file, []byte("+cpu +memory"), 0o644); err != nil {
		return fmt.Errorf("enable cpu and memory controllers in %s: %w", dir, err)
	}
	return nil
}

// join moves process pid into the child cgroup name of every hierarchy.
func (pc *podCgroups) join(name string, pid int) error {
	for _, dir := range pc.dirs {
		if err := writeProcs(filepath.Join(dir, name), pid); err != nil {
			return err
		}
	}
	return nil
}

// bornInCgroups says whether spawnIn can place a new process in its
// cgroups as it is created. On cgroup v1 it can; on v2 the process joins
// after it started (clone3's CLONE_INTO_CGROUP would do it there).
func (d CgroupDriver) bornInCgroups() bool { return d.Name == CgroupV1 }

// Moving a whole process into a cgroup (writing its PID to cgroup.procs)
// takes a global lock for writing that stalls every fork and thread
// creation on the machine until an RCU grace period has passed; with a
// hundred pods starting at once that lock was the largest cost of a
// container start. A thread can move just itself (0 to a v1 hierarchy's
// tasks file) without that lock, and a child is born in the cgroups of the
// thread that forks it. So on cgroup v1 processes are forked from a thread
// that stepped into their cgroups first.

// joinThread moves the calling OS thread, and only it, into dirs.
func joinThread(dirs []string) error {
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "tasks"), []byte("0"), 0o644); err != nil {
			return fmt.Errorf("join cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// spawner forks a supervisor's containers, each into its own cgroups, from
// one OS thread kept for the supervisor's whole life: it steps into the
// container's cgroups, forks, and steps back into home. Containers use
// Pdeathsig, which fires when the thread that forked them ends; this one
// ends only with the supervisor.
type spawner struct {
	home []string
	reqs chan spawnRequest
}

type spawnRequest struct {
	dirs  []string
	spawn func() error
	done  chan error
}

func newSpawner(home []string) *spawner {
	sp := &spawner{home: home, reqs: make(chan spawnRequest)}
	// The thread must outlive every child: it serves the spawner forever.
	go netns.OnThrowawayThread(func() {
		for req := range sp.reqs {
			err := joinThread(req.dirs)
			if err == nil {
				err = req.spawn()
			}
			if herr := joinThread(sp.home); herr != nil {
				// Still in the container's cgroups: they could not be
				// removed. Report it with the fork's outcome.
				err = errors.Join(err, fmt.Errorf("back to the supervisor's cgroups: %w", herr))
			}
			req.done <- err
		}
	})
	return sp
}

// spawnIn runs spawn on the spawner's thread, inside dirs.
func (sp *spawner) spawnIn(dirs []string, spawn func() error) error {
	done := make(chan error, 1)
	sp.reqs <- spawnRequest{dirs: dirs, spawn: spawn, done: done}
	return <-done
}

func writeProcs(dir string, pid int) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return nil
}

// containerCgroup creates (or reuses, after a restart) a container's
// cgroups and writes its limits; it returns the directories and what it
// wrote.
func (pc *podCgroups) containerCgroup(name string, r Resources) ([]string, []CgroupSetting, error) {
	dirs, err := pc.child(name)
	if err != nil {
		return nil, nil, err
	}
	wrote, err := pc.write(dirs, pc.driver.settings(r))
	return dirs, wrote, err
}

// child creates the cgroup name below the pod in every hierarchy, without
// settings (the supervisor's own, for one: it must never be starved by a
// BestEffort cpu.shares of 2).
func (pc *podCgroups) child(name string) ([]string, error) {
	var dirs []string
	for _, pd := range pc.dirs {
		dir := filepath.Join(pd, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		dirs = append(dirs, dir)
	}
	return dirs, nil
}

// limitPod writes the pod-level values the kubelet gives a pod cgroup:
// cpu.shares (cpu.weight) from the sum of the containers' requests, so
// requests weigh against other pods and not only within the pod, and a CFS
// quota of the sum of the limits when every container has one. The pod's
// memory is not limited: the supervisor lives in the pod cgroup too, and an
// OOM kill at pod level would not be seen as the container's.
func (pc *podCgroups) limitPod(containers []Container) ([]CgroupSetting, error) {
	var sum Resources
	allLimited := true
	for _, c := range containers {
		r := c.Resources.effective()
		sum.CPURequestMilli += r.CPURequestMilli
		sum.CPULimitMilli += r.CPULimitMilli
		allLimited = allLimited && r.CPULimitMilli > 0
	}
	if !allLimited {
		sum.CPULimitMilli = 0
	}
	var settings []CgroupSetting
	for _, s := range pc.driver.settings(Resources{CPURequestMilli: sum.CPURequestMilli, CPULimitMilli: sum.CPULimitMilli}) {
		if strings.HasPrefix(s.File, "cpu.") {
			settings = append(settings, s)
		}
	}
	return pc.write(pc.dirs, settings)
}

func (pc *podCgroups) write(dirs []string, settings []CgroupSetting) ([]CgroupSetting, error) {
	var wrote []CgroupSetting
	for _, s := range settings {
		dir := pc.dirFor(dirs, s.File)
		err := os.WriteFile(filepath.Join(dir, s.File), []byte(s.Value), 0o644)
		if err != nil {
			if optionalSetting(s.File) {
				continue
			}
			return nil, fmt.Errorf("cgroup %s: write %s=%s: %w", dir, s.File, s.Value, err)
		}
		wrote = append(wrote, s)
	}
	return wrote, nil
}

// dirFor picks, among a container's directories, the hierarchy that has
// file's controller.
func (pc *podCgroups) dirFor(dirs []string, file string) string {
	if pc.driver.Name == CgroupV1 && strings.HasPrefix(file, "memory.") {
		return dirs[len(dirs)-1] // the memory hierarchy is listed last
	}
	return dirs[0]
}

// oomKills reads how many processes the kernel's OOM killer has killed in a
// container's cgroup so far.
func (d CgroupDriver) oomKills(dirs []string) uint64 {
	if len(dirs) == 0 {
		return 0
	}
	var file string
	switch d.Name {
	case CgroupV2:
		file = filepath.Join(dirs[0], "memory.events")
	case CgroupV1:
		file = filepath.Join(dirs[len(dirs)-1], "memory.oom_control")
	default:
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// ownedCgroup reports whether dir is a cgroup labctl made: on a cgroup
// filesystem, below a "labctl" directory. Directories from records (Shim
// cgroups) are checked before anything is killed or removed in them, so a
// damaged record cannot make labctl empty directories elsewhere.
func ownedCgroup(dir string) bool {
	if !filepath.IsAbs(dir) || !slices.Contains(strings.Split(filepath.Clean(dir), "/"), CgroupRoot) {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP_SUPER_MAGIC || st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroupProcs lists the processes in dir and every cgroup below it.
func cgroupProcs(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		pids = append(pids, readProcsFile(filepath.Join(path, "cgroup.procs"))...)
		return nil
	})
	return pids
}

func readProcsFile(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(f)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killCgroup SIGKILLs every process in dir and below and waits until they
// are gone or the timeout passes; it returns the PIDs still there.
//
// cgroup v2's cgroup.kill does it atomically. Otherwise each process is
// pinned with a pidfd and killed only if the cgroup still lists its PID
// after that, so a PID reused in the meantime by someone else's process is
// never hit (a new process can only appear in our cgroup by being forked from
// one of ours).
func killCgroup(dir string, timeout time.Duration) []int {
	if !ownedCgroup(dir) {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := writeExisting(filepath.Join(dir, "cgroup.kill"), "1"); err != nil {
			killListed(dir)
		}
		left := cgroupProcs(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeExisting writes a file that must exist: cgroup.kill is missing on
// cgroup v1 and before Linux 5.14, and must not be created then.
func writeExisting(file, value string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func killListed(dir string) {
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		procs := filepath.Join(path, "cgroup.procs")
		fds := map[int]int{}
		for _, pid := range readProcsFile(procs) {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				fds[pid] = fd
			}
		}
		for _, pid := range readProcsFile(procs) {
			if fd, ok := fds[pid]; ok {
				_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil
	})
}

// removeCgroup removes dir and the cgroups below it, deepest first. The
// kernel refuses while a process is inside; a process that just died may
// need a moment to leave, so busy directories are retried briefly.
func removeCgroup(dir string) error {
	if !ownedCgroup(dir) {
		return nil
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		var err error
		for try := 0; try < 200; try++ {
			if err = unix.Rmdir(dirs[i]); err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("remove cgroup %s: %w", dirs[i], err)
		}
	}
	return nil
}

// removeIfEmpty removes the lab's directory once its last pod is gone;
// failing because another pod is still there is the normal case.
func removeIfEmpty(dir string) {
	_ = unix.Rmdir(dir)
}
