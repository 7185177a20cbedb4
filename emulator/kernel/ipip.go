package kernel

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
)

// IPIPDatapath says what serves a node's IPIP device, and why.
type IPIPDatapath struct {
	Device string `json:"device"`
	Kind   string `json:"kind"` // spec.DatapathKernel or spec.DatapathUserspace
	Reason string `json:"reason"`
}

// addIPIPTunnel readies the IPIP device: the kernel's when it has one,
// otherwise (or when asked) a TUN device of the same name that a userspace
// datapath will serve.
func addIPIPTunnel(c *rtnl, o plan.AddIPIPTunnel) (IPIPDatapath, error) {
	dp := IPIPDatapath{Device: o.Name}
	if o.Datapath != spec.DatapathUserspace {
		err := c.addIPIP(o.Name, o.Local)
		switch {
		case err == nil, errors.Is(err, unix.EEXIST):
			// EEXIST: tunl0 appears in every namespace once the ipip
			// module is loaded; Calico simply configures it.
			dp.Kind, dp.Reason = spec.DatapathKernel, "the kernel has the ipip module"
			return dp, c.setMTUUp(o.Name, o.MTU)
		case o.Datapath == spec.DatapathKernel:
			return dp, fmt.Errorf("the kernel has no ipip device (%w) and network.ipip.datapath is kernel", err)
		case !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL):
			return dp, err
		}
		dp.Reason = "the kernel has no ipip module"
	} else {
		dp.Reason = "network.ipip.datapath is userspace"
	}
	dp.Kind = spec.DatapathUserspace
	if err := addTun(o.Name); err != nil {
		return dp, fmt.Errorf("create TUN device %q for the userspace datapath: %w", o.Name, err)
	}
	return dp, c.setMTUUp(o.Name, o.MTU)
}

// addTun creates a persistent multi-queue layer-3 TUN device in the current
// namespace, like `ip tuntap add dev NAME mode tun multi_queue`.
func addTun(name string) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var req struct {
		name  [unix.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("TUNSETIFF: %w", errno)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", err)
	}
	return nil
}
