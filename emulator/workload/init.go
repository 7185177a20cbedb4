package workload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/applet"
	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/cgroups"
	"github.com/labctl/labctl/emulator/helper"
)

// Container init is the labctl binary in the container's first moments: it
// joins the container's cgroups (before anything is allocated that should
// count), enters its root filesystem, changes to the working directory and
// executes the command, or runs the builtin in place. It reports failure on
// its ready pipe (helper.Ready); the pipe is close-on-exec, so a successful
// exec reports success by closing it, and a builtin reports ready once it
// serves.

// initConfig is what container init needs, passed by the supervisor.
type initConfig struct {
	Lab, Pod, Name string
	Builtin        builtin.Name
	Argv           []string
	Env            []string
	WorkingDir     string
	RootFS         string
	Cgroups        []string // to join; empty when it was born in them
	Port           int
	PodIP          string
	// EtcFiles are the pod's files mounted in its namespace (/etc/hosts,
	// /etc/resolv.conf), and PodShm says /dev/shm is the pod's: a root
	// filesystem gets them too.
	EtcFiles []string `json:",omitempty"`
	PodShm   bool     `json:",omitempty"`
	// AppletBinary is the labctl binary (statically linked) that a root
	// filesystem gets at RootFSAppletDir with its applets; "" for none.
	AppletBinary string `json:",omitempty"`
}

func runInit(_ context.Context, cfg initConfig) int {
	if err := cgroups.Move(os.Getpid(), cfg.Cgroups...); err != nil {
		return initFailed(err)
	}
	if cfg.RootFS != "" {
		if err := enterRootFS(cfg.RootFS, cfg.EtcFiles, cfg.PodShm, cfg.AppletBinary); err != nil {
			return initFailed(fmt.Errorf("root filesystem %s: %w", cfg.RootFS, err))
		}
	}
	wd := cfg.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := os.Chdir(wd); err != nil {
		return initFailed(fmt.Errorf("working directory: %w", err))
	}
	if cfg.Builtin != "" {
		os.Clearenv()
		for _, kv := range cfg.Env {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		return runBuiltin(&cfg)
	}
	path, err := lookPath(cfg.Argv[0], envValue(cfg.Env, "PATH"), "/")
	if err != nil {
		return initFailed(err)
	}
	err = unix.Exec(path, cfg.Argv, cfg.Env)
	return initFailed(fmt.Errorf("exec %s: %w", cfg.Argv[0], err))
}

// runBuiltin runs the container's builtin in this process; it stops on
// SIGTERM (or SIGINT) and then exits 0.
func runBuiltin(cfg *initConfig) int {
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	served := false
	err := builtin.Run(ctx, cfg.Builtin, builtin.Config{Pod: cfg.Pod, Container: cfg.Name, Port: cfg.Port, PodIP: cfg.PodIP}, func() {
		helper.Ready(nil)
		served = true
	})
	if err != nil {
		if !served {
			// Before serving, an error is a failure to start (a port in
			// use, say), which `labctl up` reports.
			return initFailed(fmt.Errorf("%s: %w", cfg.Builtin, err))
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.Builtin, err)
		return 1
	}
	return 0
}

func initFailed(err error) int {
	fmt.Fprintf(os.Stderr, "labctl: %v\n", err)
	helper.Ready(err)
	return 127
}

func envValue(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds file in path the way execvp does, inside root (a directory
// on this host that a process will chroot to, or "/"), and returns the path
// as seen from inside root.
func lookPath(file, path, root string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(filepath.Join(root, file)); err != nil {
			return "", fmt.Errorf("exec %s: %w", file, err)
		}
		return file, nil
	}
	if path == "" {
		path = defaultPath
	}
	var firstErr error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := executable(filepath.Join(root, p))
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, fs.ErrNotExist) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", fmt.Errorf("exec %s: %w", file, firstErr)
	}
	return "", fmt.Errorf("exec %q: %w in $PATH (%s)", file, ErrCommandNotFound, path)
}

// ErrCommandNotFound says a command is nowhere in the PATH (exit code 127,
// as shells report it).
var ErrCommandNotFound = errors.New("executable file not found")

// executable resolves symlinks that point outside root only as far as the
// host allows; inside a root filesystem that is good enough to tell a
// missing program from a present one.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, fs.ErrPermission)
	}
	return nil
}

// enterRootFS makes root the root of this process's mount namespace (a new
// one: the supervisor forked us with CLONE_NEWNS) with fresh /proc, /dev and
// /sys, the way runc prepares a container's root, and the pod's files
// (etc: /etc/hosts, /etc/resolv.conf) and /dev/shm (shm) bind-mounted into
// it, as the kubelet asks the runtime to, and with labctl's ping and curl
// from the binary at applets unless that is "" (mountApplets). Every
// mount made here is private to the namespace, so nothing propagates back
// to the host. Every mount point is resolved inside root (inRoot), so an
// image's links cannot lead a mount, or a directory or file created for
// one, out of it.
func enterRootFS(root string, etc []string, shm bool, applets string) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	r, err := bindRoot(root)
	if err != nil {
		return err
	}
	defer unix.Close(r.fd)
	mounts := []struct {
		target, fstype string
		attrs          int
		opts           []string // key=value
	}{
		{"/proc", "proc", unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC, nil},
		{"/dev", "tmpfs", unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_STRICTATIME, []string{"mode=755", "size=64k"}},
		{"/sys", "sysfs", unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC | unix.MOUNT_ATTR_RDONLY, nil},
	}
	dev := -1
	defer func() {
		if dev >= 0 {
			unix.Close(dev)
		}
	}()
	for _, m := range mounts {
		at, err := r.mountPoint(m.target, true)
		if err != nil {
			return err
		}
		fd, err := mountNew(m.fstype, m.attrs, m.opts, at)
		unix.Close(at)
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
		if m.target == "/dev" {
			dev = fd
		} else {
			unix.Close(fd)
		}
	}
	// The fresh /dev, reached through its mount's descriptor: labctl's
	// own tmpfs, whatever the image's path to it.
	devDir := "/proc/self/fd/" + strconv.Itoa(dev)
	if err := populateDev(devDir); err != nil {
		return err
	}
	if shm {
		if err := unix.Mount("/dev/shm", filepath.Join(devDir, "shm"), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind the pod's /dev/shm: %w", err)
		}
	}
	if applets != "" {
		if err := mountApplets(filepath.Join(devDir, strings.TrimPrefix(RootFSAppletDir, "/dev/")), applets); err != nil {
			return fmt.Errorf("labctl's applets at %s: %w", RootFSAppletDir, err)
		}
	}
	for _, target := range etc {
		if err := bindIntoRoot(r, target); err != nil {
			return err
		}
	}
	if err := unix.Fchdir(r.fd); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is now stacked under the new one; detach it so the
	// container cannot reach the host's files.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's root: %w", err)
	}
	return os.Chdir("/")
}

// bindRoot bind-mounts root onto itself (pivot_root needs the new root to
// be a mount point) and returns the bind mount's top directory held open,
// where every mount point is then resolved: the bind, not what a path to
// root leads to later.
func bindRoot(root string) (inRoot, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return inRoot{}, err
	}
	defer unix.Close(dir)
	tree, err := unix.OpenTree(dir, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH|unix.AT_RECURSIVE)
	if errors.Is(err, unix.ENOSYS) {
		return inRoot{}, errors.New("mounting inside a root filesystem needs the mount API of Linux 5.2 (and openat2 of 5.6) or later")
	}
	if err != nil {
		return inRoot{}, fmt.Errorf("bind mount: %w", err)
	}
	if err := unix.MoveMount(tree, "", dir, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		unix.Close(tree)
		return inRoot{}, fmt.Errorf("bind mount: %w", err)
	}
	return inRoot{fd: tree}, nil
}

// mountNew mounts a new filesystem of type fstype, with the mount
// attributes attrs (unix.MOUNT_ATTR_*) and the options opts (key=value),
// on the directory at, and returns a descriptor of its top directory.
func mountNew(fstype string, attrs int, opts []string, at int) (int, error) {
	fs, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fs)
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if err := unix.FsconfigSetString(fs, k, v); err != nil {
			return -1, fmt.Errorf("option %s: %w", o, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return -1, err
	}
	m, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return -1, fmt.Errorf("fsmount: %w", err)
	}
	if err := unix.MoveMount(m, "", at, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		unix.Close(m)
		return -1, err
	}
	return m, nil
}

// RootFSAppletDir is where a container with a root filesystem finds
// labctl's applets (links named curl and ping to the labctl binary), last
// on its PATH, so the image's own tools win. It lies in the container's
// /dev, a tmpfs enterRootFS mounts afresh, because the applets must not
// touch the image: a root filesystem is the user's directory on the host,
// not a copy, so a mount point made in it would stay there (runc and
// Docker's --init create theirs in the container's writable layer, which
// labctl does not have). Nothing of an image can clash with it either: the
// image's /dev is hidden under the tmpfs. A dot directory in /dev is where
// early-boot tools kept their state before /run existed (/dev/.udev).
const RootFSAppletDir = "/dev/.labctl"

// appletBinary is the name of the labctl binary in RootFSAppletDir, which
// the applets' links point at.
const appletBinary = "labctl"

// mountApplets makes dir (RootFSAppletDir inside a root about to be
// entered; its parent is the container's fresh /dev) a small tmpfs that
// holds the labctl binary at exe, bind-mounted, and the applet links to
// it. Both mounts end read-only: rm, cp or a shell redirection through a
// link can neither remove the applets nor write into the host's labctl
// binary, and the rest of /dev stays writable. The tmpfs is noexec (only
// the binary's own mount runs programs) and, as the binary's mount, nosuid
// and nodev. The binary must be statically linked: the image has none of
// the host's libraries (StartPod checks, applet.StaticallyLinked).
//
// exe is a path, not /proc/self/exe: that link leads to the supervisor's
// mount of the binary, which belongs to the pod's mount namespace, and
// the kernel binds only mounts of the caller's own (EINVAL). A binary
// that is gone (labctl uninstalled while the lab runs) leaves the
// container without applets and says so on its stderr, rather than
// keeping it from starting.
func mountApplets(dir, exe string) error {
	src, err := unix.Open(exe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		fmt.Fprintf(os.Stderr, "labctl: no ping or curl of labctl's in this container: %s is gone\n", exe)
		return nil
	}
	if err != nil {
		return fmt.Errorf("open the labctl binary: %w", err)
	}
	defer unix.Close(src)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "mode=755,size=4k"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	target := filepath.Join(dir, appletBinary)
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	f.Close()
	// Bound through the descriptor: the file opened above, whatever
	// happens to the path meanwhile.
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(src), target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the labctl binary %s: %w", exe, err)
	}
	if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make the labctl binary read-only: %w", err)
	}
	for _, name := range applet.Names() {
		if err := os.Symlink(appletBinary, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|flags, ""); err != nil {
		return fmt.Errorf("make it read-only: %w", err)
	}
	return nil
}

// populateDev creates the device nodes programs expect.
func populateDev(dev string) error {
	nodes := []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}}
	for _, n := range nodes {
		if err := unix.Mknod(filepath.Join(dev, n.name), unix.S_IFCHR|0o666, int(unix.Mkdev(n.major, n.minor))); err != nil {
			return fmt.Errorf("mknod /dev/%s: %w", n.name, err)
		}
		// mknod honours the umask; the nodes must be usable by everyone.
		_ = os.Chmod(filepath.Join(dev, n.name), 0o666)
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// bindIntoRoot bind-mounts target (a file of the pod's mount namespace,
// such as /etc/hosts) onto the same path inside the root, resolved as the
// container will see it (inRoot.mountPoint: a missing file is created
// empty to mount on, as container runtimes create their mount points, and
// so is a missing /etc).
func bindIntoRoot(r inRoot, target string) error {
	fd, err := r.mountPoint(target, false)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Mount(target, "/proc/self/fd/"+strconv.Itoa(fd), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the pod's %s: %w", target, err)
	}
	return nil
}
