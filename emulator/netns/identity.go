package netns

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A namespace's name under /run/netns and its inode number prove nothing
// about who made it: anyone may delete a name and make a new namespace
// there, and the kernel reuses inode numbers of freed namespaces within
// seconds. labctl proves its namespaces by two things the kernel keeps for
// the namespace's whole life:
//
//   - the cookie (SO_NETNS_COOKIE): a 64-bit number the kernel gives every
//     network namespace and never gives another while the machine runs. It
//     is recorded in the ownership record when the namespace is created.
//   - a marker: the alias of the namespace's loopback device, written when
//     the namespace is created ("labctl lab=two-node id=… state=…"). It lets
//     `labctl down` find a lab's namespaces from the kernel's own state when
//     the records under the state directory are lost. It names the state
//     directory (a hash of its path), so one state directory never claims
//     another's labs. `ip link show lo` shows it.
//
// Both are read through a socket made inside the namespace, on a thread
// that joined it (the cookie also straight from the namespace file where
// the kernel allows it); reading changes nothing. Writing the marker is the
// plan applier's job (package kernel), as the namespace is created.

// Marker is what labctl writes into every namespace it creates.
type Marker struct {
	Lab   string // the lab's name
	LabID string // the random id of the up that created it
	State string // StateTag of the state directory that records the lab
}

const markerPrefix = "labctl "

// String is the marker as written to lo's alias.
func (m Marker) String() string {
	return fmt.Sprintf("%slab=%s id=%s state=%s", markerPrefix, m.Lab, m.LabID, m.State)
}

// ParseMarker reads a marker back; ok is false for any other alias.
func ParseMarker(s string) (m Marker, ok bool) {
	rest, found := strings.CutPrefix(s, markerPrefix)
	if !found {
		return Marker{}, false
	}
	for _, field := range strings.Fields(rest) {
		k, v, _ := strings.Cut(field, "=")
		switch k {
		case "lab":
			m.Lab = v
		case "id":
			m.LabID = v
		case "state":
			m.State = v
		}
	}
	return m, m.Lab != "" && m.LabID != "" && m.State != ""
}

// Identity is what a namespace says about itself.
type Identity struct {
	Cookie uint64
	Marker Marker
	Marked bool // the namespace carries a labctl marker
}

// ErrNotNamespace says a path is not a mounted network namespace.
var ErrNotNamespace = errors.New("not a network namespace")

// Open opens a named namespace without following symlinks and checks
// that it is a namespace (nsfs), not a plain file at that name.
func Open(path string) (Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return none(), err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return none(), err
	}
	if fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return none(), fmt.Errorf("%s: %w", path, ErrNotNamespace)
	}
	return Handle(fd), nil
}

// NetlinkHandle opens a route-netlink handle whose socket is made inside
// the namespace behind h, on a thread of DoHandle, and can then be used
// from any goroutine. netlink.NewHandleAt would switch namespaces itself
// and hand its thread back to the runtime even when it failed to return
// home; this never does. Only route-netlink requests go through the
// handle: a request of another family would open a socket wherever the
// calling thread is.
func NetlinkHandle(h Handle) (*netlink.Handle, error) {
	var nh *netlink.Handle
	err := DoHandle(h, func() (err error) {
		nh, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	return nh, nil
}

// Identify reads the identity of the namespace behind h.
func Identify(h Handle) (Identity, error) {
	cookie, err := Cookie(h)
	if err != nil {
		return Identity{}, err
	}
	nh, err := NetlinkHandle(h)
	if err != nil {
		return Identity{}, err
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return Identity{}, fmt.Errorf("read lo: %w", err)
	}
	id := Identity{Cookie: cookie}
	id.Marker, id.Marked = ParseMarker(lo.Attrs().Alias)
	return id, nil
}

// nsGetID is nsfs's NS_GET_ID ioctl, _IOR(0xb7, 13, __u64) (Linux 6.18):
// a namespace's unique id, for a network namespace its cookie, read from
// the namespace file without entering the namespace.
const nsGetID = 2<<30 | 8<<16 | 0xb7<<8 | 13

// Cookie returns the cookie of the namespace behind h: through NS_GET_ID
// where the kernel has it, else from a socket made inside the namespace.
func Cookie(h Handle) (uint64, error) {
	var id uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(h), nsGetID, uintptr(unsafe.Pointer(&id)))
	if errno == 0 && id != 0 {
		return id, nil
	}
	var cookie uint64
	err := DoHandle(h, func() error {
		// Any socket tells its namespace's cookie; a netlink one
		// needs no address family the namespace might lack.
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink socket: %w", err)
		}
		defer unix.Close(fd)
		cookie, err = SocketCookie(fd)
		return err
	})
	return cookie, err
}

// HasNSGetID reports whether this kernel answers NS_GET_ID, so cookies
// are read without entering namespaces (labctl version says so).
func HasNSGetID() bool {
	f, err := os.Open("/proc/self/ns/net")
	if err != nil {
		return false
	}
	defer f.Close()
	var id uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nsGetID, uintptr(unsafe.Pointer(&id)))
	return errno == 0 && id != 0
}

// SocketCookie is the kernel's never-reused number for the namespace the
// socket fd was made in.
func SocketCookie(fd int) (uint64, error) {
	v, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("read namespace cookie: %w", os.NewSyscallError("getsockopt SO_NETNS_COOKIE", err))
	}
	return v, nil
}

// IdentifyPath opens a named namespace and reads its identity.
func IdentifyPath(path string) (Identity, error) {
	h, err := Open(path)
	if err != nil {
		return Identity{}, err
	}
	defer h.Close()
	return Identify(h)
}

// RetryDump repeats a netlink dump the kernel interrupted because the
// table changed under it (netlink.ErrDumpInterrupted), a few times.
func RetryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}
