package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
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
// Both can only be read from inside the namespace, on a thread that joined
// it; reading changes nothing.

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

// OpenNamespace opens a named namespace without following symlinks and
// checks that it is a namespace (nsfs), not a plain file at that name.
func OpenNamespace(path string) (netns.NsHandle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return netns.None(), err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return netns.None(), err
	}
	if fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s: %w", path, ErrNotNamespace)
	}
	return netns.NsHandle(fd), nil
}

// Identify reads the identity of the namespace behind h.
func Identify(h netns.NsHandle) (Identity, error) {
	var c *rtnl
	err := DoHandle(h, func() error {
		var err error
		c, err = openRTNL()
		return err
	})
	if err != nil {
		return Identity{}, err
	}
	// The socket belongs to the namespace it was made in: the rest can
	// happen on any thread.
	defer c.Close()
	return c.identity()
}

// nsGetID is nsfs's NS_GET_ID ioctl, _IOR(0xb7, 13, __u64) (Linux 6.18):
// a namespace's unique id, for a network namespace its cookie, read from
// the namespace file without entering the namespace.
const nsGetID = 2<<30 | 8<<16 | 0xb7<<8 | 13

// Cookie returns the cookie of the namespace behind h: through NS_GET_ID
// where the kernel has it, else from a socket made inside the namespace.
func Cookie(h netns.NsHandle) (uint64, error) {
	var id uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(h), nsGetID, uintptr(unsafe.Pointer(&id)))
	if errno == 0 && id != 0 {
		return id, nil
	}
	var c *rtnl
	if err := DoHandle(h, func() (err error) { c, err = openRTNL(); return err }); err != nil {
		return 0, err
	}
	defer c.Close()
	return c.cookie()
}

// IdentifyPath opens a named namespace and reads its identity.
func IdentifyPath(path string) (Identity, error) {
	h, err := OpenNamespace(path)
	if err != nil {
		return Identity{}, err
	}
	defer h.Close()
	return Identify(h)
}

// identity reads the cookie and marker of this socket's namespace.
func (c *rtnl) identity() (Identity, error) {
	var id Identity
	cookie, err := c.cookie()
	if err != nil {
		return id, err
	}
	id.Cookie = cookie
	alias, err := c.loAlias()
	if err != nil {
		return id, err
	}
	id.Marker, id.Marked = ParseMarker(alias)
	return id, nil
}

// cookie is the kernel's never-reused number for this socket's namespace.
func (c *rtnl) cookie() (uint64, error) {
	v, err := unix.GetsockoptUint64(c.sock.Socket.GetFd(), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("read namespace cookie: %w", os.NewSyscallError("getsockopt SO_NETNS_COOKIE", err))
	}
	return v, nil
}

// loAlias returns the alias of lo ("" when it has none).
func (c *rtnl) loAlias() (string, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: c.sock}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("lo")))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return "", fmt.Errorf("read lo: %w", err)
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
		if err != nil {
			return "", fmt.Errorf("read lo: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_IFALIAS {
				return strings.TrimRight(string(a.Value), "\x00"), nil
			}
		}
	}
	return "", nil
}

// setMarker writes the marker as lo's alias.
func (c *rtnl) setMarker(m Marker) error {
	req := c.request(unix.RTM_NEWLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated("lo")))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFALIAS, []byte(m.String())))
	if err := c.exec(req); err != nil {
		return fmt.Errorf("mark namespace (lo alias): %w", err)
	}
	return nil
}
