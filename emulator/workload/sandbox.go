package workload

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/clusterdns"
	"github.com/labctl/labctl/emulator/statedir"
)

// The pod sandbox. The containers of a Kubernetes pod share the network,
// UTS and IPC namespaces of its sandbox (the pause container), and with
// shareProcessNamespace its PID namespace too, whose PID 1 is pause; the
// kubelet gives every container the pod's /etc/hosts and /etc/resolv.conf,
// bind mounts of files it wrote for the pod. labctl's supervisor is that
// sandbox: StartPod starts it in the pod's network namespace (the plan made
// it) and in new UTS, IPC, PID and mount namespaces, so it is PID 1 of the
// pod and every container it starts is born in all of them. Before the
// first container starts, the supervisor prepares the pod's mount
// namespace (setupSandbox):
//
//   - every mount becomes a slave of the host's: what the host unmounts (a
//     lab's namespaces going away) leaves the pod too, and nothing mounted
//     in the pod ever reaches the host;
//   - /proc is mounted anew, for the pod's PID namespace: ps in a container
//     lists the pod's processes, and /proc/1 is the supervisor;
//   - /dev/shm is a tmpfs of the pod's own: POSIX shared memory lives in a
//     file system, which the IPC namespace does not separate;
//   - /etc/hosts and /etc/resolv.conf are bind mounts of etc-hosts and
//     resolv.conf in the pod's state directory, which the supervisor writes
//     as the kubelet writes its files (clusterdns renders them).
//
// Containers with a root filesystem get the same files and /dev/shm inside
// their root (enterRootFS). The host's own /etc/hosts and /etc/resolv.conf
// are never written: the bind mounts exist only in the pod's namespace.
//
// Where Kubernetes differs: each container there has a mount namespace of
// its own (its image's root) and, without shareProcessNamespace, a PID
// namespace of its own too. Here containers without a root filesystem
// share the pod's mount namespace and see the host's files, and every pod
// shares one PID namespace, so the textbook's `ls -l /proc/1/ns` shows the
// pause container's namespaces.

// sandboxCloneflags are the namespaces a supervisor is born in besides the
// pod's network namespace.
const sandboxCloneflags = unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID | unix.CLONE_NEWNS

// The pod's files in its state directory; etc-hosts is the kubelet's name.
const (
	hostsFile  = "etc-hosts"
	resolvFile = "resolv.conf"
)

// shmOptions are those of the kubelet's (and Docker's) default /dev/shm.
const shmOptions = "mode=1777,size=65536k"

// etcFiles renders the pod's /etc/hosts and /etc/resolv.conf as the kubelet
// writes them; resolv is empty when the pod has no cluster DNS.
func (p *PodSpec) etcFiles() (hosts, resolv string) {
	h := clusterdns.HostsFile{Hostname: p.hostname()}
	if ip, err := netip.ParseAddr(p.PodIP); err == nil {
		h.PodIPs = []netip.Addr{ip}
	}
	hosts = clusterdns.Hosts(h)
	if ip, err := netip.ParseAddr(p.ClusterDNS); err == nil {
		resolv = clusterdns.ResolvConf("", ip, "")
	}
	return hosts, resolv
}

// etcFile is one of the pod's files and where containers see it.
type etcFile struct {
	name   string // in the pod's state directory
	target string // in a container
	data   string
}

// sandboxFiles are the pod's files, in the order they are mounted; an
// external host has none.
func (p *PodSpec) sandboxFiles() []etcFile {
	if p.External {
		return nil
	}
	hosts, resolv := p.etcFiles()
	files := []etcFile{{hostsFile, "/etc/hosts", hosts}}
	if resolv != "" {
		files = append(files, etcFile{resolvFile, "/etc/resolv.conf", resolv})
	}
	return files
}

// sandbox is what setupSandbox prepared.
type sandbox struct {
	// hostProc is a descriptor of the host's /proc, opened before the
	// pod's covered it (hostPID reads it).
	hostProc int
	// etc lists the pod's files mounted in its namespace (/etc/hosts,
	// /etc/resolv.conf); containers with a root filesystem get them too.
	etc []string
	// shm says /dev/shm is the pod's own tmpfs.
	shm bool
	// notes say what the pod lacks because the host lacks it.
	notes []string
}

// setupSandbox prepares the pod's mount namespace (see the top of this
// file). It runs in the supervisor, which was born in that namespace. A
// host without /etc/hosts or /etc/resolv.conf (or with a dangling link
// there) gives the pod none either, which a note says.
func setupSandbox(dir *statedir.Dir, spec *PodSpec) (sb sandbox, err error) {
	// Slaves first, before anything is mounted.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return sb, fmt.Errorf("make mounts slaves of the host's: %w", err)
	}
	sb.hostProc, err = unix.Open("/proc", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return sb, fmt.Errorf("open the host's /proc: %w", err)
	}
	defer func() {
		if err != nil {
			unix.Close(sb.hostProc)
		}
	}()
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return sb, fmt.Errorf("mount the pod's /proc: %w", err)
	}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if err := unix.Mount("shm", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, shmOptions); err != nil {
			return sb, fmt.Errorf("mount the pod's /dev/shm: %w", err)
		}
		sb.shm = true
	}
	for _, f := range spec.sandboxFiles() {
		// Written in place, not renamed over: a bind mount holds the
		// file itself, and a later run of the pod rewrites the same one.
		w, err := dir.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return sb, err
		}
		_, err = w.WriteString(f.data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return sb, fmt.Errorf("write %s: %w", f.name, err)
		}
		switch err := bindFile(dir, f.name, f.target); {
		case errors.Is(err, unix.ENOENT):
			sb.notes = append(sb.notes, fmt.Sprintf("the host has no %s, so the pod has none either", f.target))
		case err != nil:
			return sb, err
		default:
			sb.etc = append(sb.etc, f.target)
		}
	}
	return sb, nil
}

// bindFile bind-mounts the state directory's file name onto target, which
// is resolved in this mount namespace (a link is followed, the mount lands
// on the file it names). The file is opened through statedir, so no link
// in the state directory is followed, and mounted by its descriptor.
func bindFile(dir *statedir.Dir, name, target string) error {
	f, err := dir.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	src := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", name, target, err)
	}
	return nil
}

// hostPID returns the PID that the process with pid in the pod's PID
// namespace has on the host, which is what the status records: StopPod,
// exec and `labctl status` work from the host. A pidfd's fdinfo names its
// process in the PID namespace of the /proc it is read through, here the
// host's.
func hostPID(hostProc, pid int) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	info, err := unix.Openat(hostProc, "self/fdinfo/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("read the host's view of process %d: %w", pid, err)
	}
	f := os.NewFile(uintptr(info), "fdinfo")
	defer f.Close()
	b := make([]byte, 1024)
	n, _ := f.Read(b)
	for line := range strings.SplitSeq(string(b[:n]), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && p > 0 {
				return p, nil
			}
		}
	}
	return 0, fmt.Errorf("process %d has no PID on the host", pid)
}
