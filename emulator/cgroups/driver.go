package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Root is the directory labctl owns in each cgroup hierarchy, like
// Docker's "docker". It is never removed: other labs may be starting in it.
const Root = "labctl"

// Driver names: the modes Detect takes, and Driver.Name.
const (
	Auto = "auto" // v2 when it has the cpu and memory controllers, else v1, else none
	V2   = "v2"
	V1   = "v1"
	None = "none" // no limits; processes are tracked by PID only
)

// Driver says which cgroup interface is in use and where it is mounted.
type Driver struct {
	Name    string `json:"name"`              // v2, v1 or none
	Unified string `json:"unified,omitempty"` // v2: the cgroup2 mount
	CPU     string `json:"cpu,omitempty"`     // v1: mount of the hierarchy with the cpu controller
	Memory  string `json:"memory,omitempty"`  // v1: mount of the hierarchy with the memory controller
	// Note explains a fallback (why not v2, why none) or a mount labctl made.
	Note string `json:"note,omitempty"`
}

// String is the one line the CLI shows, e.g.
// "cgroup v1 (cpu: /sys/fs/cgroup/cpu, memory: /sys/fs/cgroup/memory)".
func (d Driver) String() string {
	var s string
	switch d.Name {
	case V2:
		s = "cgroup v2 (" + d.Unified + ")"
	case V1:
		s = "cgroup v1 (cpu: " + d.CPU + ", memory: " + d.Memory + ")"
	default:
		s = "no cgroups: resource limits are not enforced"
	}
	if d.Note != "" {
		s += "; " + d.Note
	}
	return s
}

// Hierarchies are the mount points cgroups are made in (one for v2, one or
// two for v1).
func (d Driver) Hierarchies() []string {
	switch d.Name {
	case V2:
		return []string{d.Unified}
	case V1:
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
	d    Driver
	err  error
}

// Detect chooses the cgroup driver for mode (Auto, V2, V1 or None; "" is
// Auto) and remembers the answer for the process. On cgroup v1 it mounts
// the cpu and memory hierarchies under V1MountDir if they are not mounted
// anywhere; it never unmounts anything.
func Detect(mode string) (Driver, error) {
	if mode == "" {
		mode = Auto
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

func detect(mode string) (Driver, error) {
	switch mode {
	case Auto, V1, V2, None:
	default:
		return Driver{}, fmt.Errorf("cgroup driver %q is not auto, v2, v1 or none", mode)
	}
	if mode == None {
		return Driver{Name: None, Note: "cgroups turned off"}, nil
	}
	mounts, err := readMountInfo()
	if err != nil {
		return Driver{}, fmt.Errorf("read mounts: %w", err)
	}
	var why []string
	if mode != V1 {
		d, reason := detectV2(mounts)
		if reason == "" {
			return d, nil
		}
		if mode == V2 {
			return Driver{}, fmt.Errorf("cgroup v2: %s", reason)
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
	if mode == V1 {
		return Driver{}, fmt.Errorf("cgroup v1: %s", reason)
	}
	why = append(why, "v1: "+reason)
	return Driver{Name: None, Note: strings.Join(why, "; ")}, nil
}

// detectV2 accepts a cgroup2 mount of the whole hierarchy whose root offers
// the cpu and memory controllers.
func detectV2(mounts []mountInfo) (Driver, string) {
	var points []string
	for _, m := range mounts {
		if m.fstype == "cgroup2" && m.root == "/" {
			points = append(points, m.point)
		}
	}
	if len(points) == 0 {
		return Driver{}, "not mounted"
	}
	// The conventional place first.
	sort.SliceStable(points, func(i, j int) bool { return points[i] == "/sys/fs/cgroup" })
	b, err := os.ReadFile(filepath.Join(points[0], "cgroup.controllers"))
	if err != nil {
		return Driver{}, err.Error()
	}
	have := strings.Fields(string(b))
	var missing []string
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(have, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return Driver{}, fmt.Sprintf("%s lacks the %s controller%s", points[0], strings.Join(missing, " and "), map[bool]string{true: "s"}[len(missing) > 1])
	}
	return Driver{Name: V2, Unified: points[0]}, ""
}

// detectV1 finds (or mounts) the v1 hierarchies of cpu and memory.
func detectV1(mounts []mountInfo) (Driver, string) {
	d := Driver{Name: V1}
	var mounted []string
	for _, c := range []string{"cpu", "memory"} {
		point := findV1(mounts, c)
		if point == "" {
			var err error
			point, err = mountV1(c)
			if err != nil {
				return Driver{}, fmt.Sprintf("mount %s hierarchy: %v", c, err)
			}
			mounted = append(mounted, point)
			if mounts, err = readMountInfo(); err != nil {
				return Driver{}, err.Error()
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
