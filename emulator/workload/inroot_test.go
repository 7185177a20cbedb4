package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/clusterdns"
	"github.com/labctl/labctl/internal/nstest"
)

// An image's /proc, /dev, /sys and /etc, and the links on the way to them,
// lead nowhere outside its root filesystem. A link to a host path
// (absolute, or climbing out with ..) is followed inside the root, as the
// container itself follows it: what labctl mounts there, and creates to
// mount on, lands in the root, the container sees it where its links
// lead, and the host's directories the links name stay as they were,
// whether they exist or not. A link inside the root works as it would
// under runc. What cannot be mounted on is an error naming the path in
// the image.
func TestRootFSLinks(t *testing.T) {
	n := newNet(t, 1)
	// The host's directories the images' links name: existing and empty
	// (mounting over them would hide them only from the container), and
	// missing (creating them would write on the host).
	all := []string{"proc", "dev", "sys", "etc"}
	host := t.TempDir()
	for _, d := range all {
		if err := os.MkdirAll(filepath.Join(host, "there", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hostBefore := nstest.Tree(t, host)
	// From /etc in an image up past the host's / (the image lies deeper).
	climb := strings.Repeat("../", strings.Count(host, "/")+8)
	// hostLinks makes the directories names of an image links into base.
	hostLinks := func(base string, names ...string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			for _, d := range names {
				replaceWithLink(t, root, d, base+"/"+d)
			}
		}
	}
	// hostMounts says where the mounts land when names lead into dir.
	hostMounts := func(dir string, names ...string) map[string]string {
		at := map[string]string{"/proc": "/proc", "/dev": "/dev", "/sys": "/sys", "/etc": "/etc"}
		for _, d := range names {
			at["/"+d] = dir + "/" + d
		}
		at["/etc/hosts"], at["/etc/resolv.conf"] = at["/etc"]+"/hosts", at["/etc"]+"/resolv.conf"
		return at
	}

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		// at maps each mount point to where it lands inside the root, for
		// a container that starts; want is the error of one that does not.
		at   map[string]string
		want string
	}{
		{"proc, dev and sys link to existing host directories", hostLinks(host+"/there", "proc", "dev", "sys"),
			hostMounts(host+"/there", "proc", "dev", "sys"), ""},
		{"absolute links to existing host directories", hostLinks(host+"/there", all...), hostMounts(host+"/there", all...), ""},
		{"absolute links to missing host directories", hostLinks(host+"/missing", all...), hostMounts(host+"/missing", all...), ""},
		{"relative links climbing out", hostLinks(climb+strings.TrimPrefix(host, "/")+"/there", all...), hostMounts(host+"/there", all...), ""},
		{"links inside the root", func(t *testing.T, root string) {
			writeFile(t, root, "usr/etc/hosts", "127.0.0.1 the image's\n")
			replaceWithLink(t, root, "etc", "usr/etc")
			replaceWithLink(t, root, "proc", "/usr/proc")
			replaceWithLink(t, root, "dev", "./usr/lib/../dev")
			replaceWithLink(t, root, "sys", "usr/sys")
			// As systemd images have it, dangling.
			replaceWithLink(t, root, "usr/etc/resolv.conf", "../../run/systemd/resolve/stub-resolv.conf")
		}, map[string]string{"/proc": "/usr/proc", "/dev": "/usr/dev", "/sys": "/usr/sys",
			"/etc/hosts": "/usr/etc/hosts", "/etc/resolv.conf": "/run/systemd/resolve/stub-resolv.conf"}, ""},

		{"proc is a file", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "proc"))
			writeFile(t, root, "proc", "")
		}, nil, "mount point /proc: not a directory"},
		{"dev leads to a file", func(t *testing.T, root string) {
			replaceWithLink(t, root, "dev", "/wltest")
		}, nil, "mount point /dev: not a directory"},
		{"sys is a loop", func(t *testing.T, root string) {
			replaceWithLink(t, root, "sys", "sys")
		}, nil, "mount point /sys: too many levels of symbolic links"},
		{"proc leads to the root", func(t *testing.T, root string) {
			replaceWithLink(t, root, "proc", climb)
		}, nil, "mount point /proc: is the root filesystem itself"},
		{"etc hosts is a directory", func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, "etc/hosts"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, nil, "mount point /etc/hosts: is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeRootFS(t)
			tc.setup(t, root)
			c := Container{Name: "c", Command: []string{"/wltest"}, RootFS: root,
				Env: []EnvVar{{"WLTEST_ROLE", "nsreport"}, {"WLTEST_SLEEP", "1"}}}
			spec := PodSpec{Lab: n.lab, Pod: "pod-links", Namespace: n.path(0), PodIP: n.ips[0], ClusterDNS: "10.96.0.10",
				StateDir: filepath.Join(t.TempDir(), "pod"), Containers: []Container{c}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			shim, err := StartPod(ctx, spec, testOptions())
			if err == nil {
				t.Cleanup(func() { stopAndCheck(t, shim, n.path(0)) })
			}
			defer func() {
				if now := nstest.Tree(t, host); now != hostBefore {
					t.Errorf("the host's directories changed:\nbefore:\n%s\nafter:\n%s", hostBefore, now)
				}
			}()
			if tc.want != "" {
				if err == nil {
					t.Fatalf("StartPod succeeded, want %q", tc.want)
				}
				if want := `container "c": root filesystem ` + root + ": " + tc.want; !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartPod: %v", err)
			}
			checkLinkedMounts(t, spec, root, tc.at)
		})
	}
}

// checkLinkedMounts checks that the container of spec sees the pod's
// files and a /proc of the pod, and that each mount point (as at says) is
// a mount inside the root with the options runc gives it.
func checkLinkedMounts(t *testing.T, spec PodSpec, root string, at map[string]string) {
	t.Helper()
	waitStatus(t, spec.StateDir, 5*time.Second, "the report", func(PodStatus) bool {
		b, _ := os.ReadFile(LogPath(spec.StateDir, "c"))
		return bytes.Contains(b, []byte("}\n"))
	})
	var r nsReport
	if err := json.Unmarshal([]byte(readLog(t, spec.StateDir, "c")), &r); err != nil {
		t.Fatal(err)
	}
	hosts := clusterdns.Hosts(clusterdns.HostsFile{PodIPs: []netip.Addr{netip.MustParseAddr(spec.PodIP)}, Hostname: spec.Pod})
	resolv := clusterdns.ResolvConf("", netip.MustParseAddr(spec.ClusterDNS), "")
	if r.Hosts != hosts || r.ResolvConf != resolv {
		t.Errorf("the container's /etc/hosts:\n%s/etc/resolv.conf:\n%s", r.Hosts, r.ResolvConf)
	}
	if !strings.HasPrefix(r.Procs[1], "labctl-shim ") {
		t.Errorf("the container's /proc lists %v, not the pod's processes", r.Procs)
	}
	out, errOut, code := execIn(t, ExecOptions{StateDir: spec.StateDir, Container: "c", Argv: []string{"/wltest"},
		Env: []string{"WLTEST_ROLE=readfile", "WLTEST_FILE=/proc/self/mountinfo"}})
	if code != 0 {
		t.Fatalf("read the container's mountinfo: exit %d: %s", code, errOut)
	}
	mounts := map[string]string{} // mount point -> "fstype options"
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i := slices.Index(f, "-"); i > 5 && i+1 < len(f) {
			mounts[f[4]] = f[i+1] + " " + f[5]
		}
	}
	for _, m := range []struct{ point, fstype, opts string }{
		{"/proc", "proc", "rw,nosuid,nodev,noexec"},
		{"/dev", "tmpfs", "rw,nosuid"},
		{"/sys", "sysfs", "ro,nosuid,nodev,noexec"},
		{"/etc/hosts", "", ""},
		{"/etc/resolv.conf", "", ""},
	} {
		got, ok := mounts[at[m.point]]
		fstype, opts, _ := strings.Cut(got, " ")
		if !ok || m.fstype != "" && fstype != m.fstype || !hasOptions(opts, m.opts) {
			t.Errorf("%s: mount at %s is %q, want %s with %s; mounts:\n%s", m.point, at[m.point], got, m.fstype, m.opts, out)
		}
		if fi, err := os.Lstat(filepath.Join(root, at[m.point])); err != nil || fi.IsDir() != !strings.HasPrefix(m.point, "/etc/") {
			t.Errorf("%s: in the root filesystem on disk, %s is %v (%v)", m.point, at[m.point], fi, err)
		}
	}
}

// hasOptions reports whether the mount options opts include each of want
// (comma-separated).
func hasOptions(opts, want string) bool {
	for _, o := range strings.Split(want, ",") {
		if o != "" && !strings.Contains(","+opts+",", ","+o+",") {
			return false
		}
	}
	return true
}

// replaceWithLink makes path (in root) a link to target, in place of what
// was there.
func replaceWithLink(t *testing.T, root, path, target string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, root, path, data string) {
	t.Helper()
	p := filepath.Join(root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// inRoot.mountPoint resolves a path as the container will, inside the
// root, and creates what is missing along the image's links: the
// descriptor it returns names the object in the root that the container
// will see at that path, and nothing outside the root changes.
func TestMountPoint(t *testing.T) {
	host := t.TempDir() // what the links name on the host; stays empty
	climb := strings.Repeat("../", strings.Count(host, "/")+8)
	for _, tc := range []struct {
		name  string
		links map[string]string // path in the image -> link target
		dirs  []string          // directories in the image
		path  string
		dir   bool
		want  string // where path leads in the root, or the error
	}{
		{"missing", nil, nil, "/proc", true, "/proc"},
		{"missing file and directory", nil, nil, "/etc/hosts", false, "/etc/hosts"},
		{"present", nil, []string{"proc"}, "/proc", true, "/proc"},
		{"relative link", map[string]string{"etc": "usr/etc"}, []string{"usr/etc"}, "/etc/hosts", false, "/usr/etc/hosts"},
		{"absolute link, missing target", map[string]string{"etc": "/usr/etc"}, nil, "/etc/hosts", false, "/usr/etc/hosts"},
		{"absolute link to the host", map[string]string{"etc": host + "/etc"}, nil, "/etc/hosts", false, host + "/etc/hosts"},
		{"climbing out", map[string]string{"etc": climb + "x/etc"}, nil, "/etc/hosts", false, "/x/etc/hosts"},
		{"climbing out from below", map[string]string{"usr/lib/etc": "../../../../.." + host}, []string{"usr/lib"}, "/usr/lib/etc/hosts", false, host + "/hosts"},
		{"dangling file link in a linked directory", map[string]string{"etc": "usr/etc", "usr/etc/resolv.conf": "../../run/resolv.conf"}, nil,
			"/etc/resolv.conf", false, "/run/resolv.conf"},
		{".. after a link is the target's parent", map[string]string{"proc": "a/b/../c", "a/b": "/d/e"}, []string{"d/e"}, "/proc", true, "/d/c"},
		{"a chain of links", map[string]string{"sys": "s1", "s1": "/s2", "s2": "./s3/"}, nil, "/sys", true, "/s3"},

		{"a file", nil, nil, "/wltest/x", true, "mount point /wltest/x: not a directory"},
		{"a link to a file", map[string]string{"dev": "wltest"}, nil, "/dev", true, "mount point /dev: not a directory"},
		{"a directory for a file", nil, []string{"etc/hosts"}, "/etc/hosts", false, "mount point /etc/hosts: is a directory"},
		{"a loop", map[string]string{"sys": "a", "a": "/sys"}, nil, "/sys", true, "mount point /sys: too many levels of symbolic links"},
		{"the root", map[string]string{"proc": climb}, nil, "/proc", true, "mount point /proc: is the root filesystem itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, root, "wltest", "")
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for p, target := range tc.links {
				replaceWithLink(t, root, p, target)
			}
			hostBefore := nstest.Tree(t, host)
			fd, err := openRoot(t, root).mountPoint(tc.path, tc.dir)
			if now := nstest.Tree(t, host); now != hostBefore {
				t.Errorf("the host's directory changed:\nbefore:\n%s\nafter:\n%s", hostBefore, now)
			}
			if !strings.HasPrefix(tc.want, "/") {
				if err == nil || err.Error() != tc.want {
					t.Errorf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			got, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			if got != root+tc.want {
				t.Errorf("%s leads to %s, want %s", tc.path, got, root+tc.want)
			}
		})
	}
}

func openRoot(t *testing.T, root string) inRoot {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return inRoot{fd: fd}
}
