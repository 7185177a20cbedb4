package ipipd

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Offload flags for TUNSETOFFLOAD (include/uapi/linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
)

// virtio_net_hdr (include/uapi/linux/virtio_net.h), the 10-byte header that
// precedes every packet on a TUN queue opened with IFF_VNET_HDR. Its fields
// are in host byte order for a legacy (non-VNET_LE/BE) header.
const (
	vnetHdrLen        = 10
	vnetFNeedsCsum    = 1
	vnetFDataValid    = 2
	vnetGSONone       = 0
	vnetGSOTCPv4      = 1
	vnetGSOECN        = 0x80
	maxPacket         = 65535
	tunDevicePath     = "/dev/net/tun"
	tunMaxQueues      = 256 // MAX_TAP_QUEUES
	tunAttachFlagsErr = "device %q is not a TUN device in tun mode without packet info (ip tuntap add dev %s mode tun)"
)

// tunDevice is an existing TUN device attached as one or more queues.
type tunDevice struct {
	name   string
	queues []*os.File
	fds    []int
	multi  bool // attached with IFF_MULTI_QUEUE
	vnet   bool // every read and write starts with a virtio_net_hdr
	tso    bool // TUNSETOFFLOAD took: reads may be TSO super-packets
}

// attachTUN attaches want queues to the existing TUN device name. It never
// creates a device: TUNSETIFF would happily create a fresh, non-persistent
// one with no addresses or routes, which would vanish with us and blackhole
// everything routed to the real one.
func attachTUN(name string, want int, offload bool) (*tunDevice, error) {
	if _, err := ifIndex(name); err != nil {
		return nil, err
	}
	if want < 1 {
		want = 1
	}
	want = min(want, tunMaxQueues)
	t := &tunDevice{name: name, multi: true, vnet: offload}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	fd, err := tunQueue(name, flags|unix.IFF_MULTI_QUEUE)
	if errors.Is(err, unix.EINVAL) {
		// tun_set_iff refuses to mix single- and multi-queue attaches; a
		// device made without multi_queue takes exactly one queue.
		t.multi = false
		fd, err = tunQueue(name, flags)
	}
	if err != nil {
		return nil, err
	}
	t.fds = append(t.fds, fd)
	if t.multi {
		for len(t.fds) < want {
			fd, err := tunQueue(name, flags|unix.IFF_MULTI_QUEUE)
			if err != nil {
				t.closeFDs()
				return nil, fmt.Errorf("attach queue %d: %w", len(t.fds), err)
			}
			t.fds = append(t.fds, fd)
		}
	}
	if offload {
		// Taking TSO super-packets (up to 64 KiB of one TCP flow per read)
		// instead of MTU-sized segments is what makes a userspace datapath
		// fast: one read replaces dozens, and the sender's stack skips
		// segmentation. The kernel marks them with a virtio_net_hdr.
		if err := unix.IoctlSetInt(t.fds[0], unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4); err == nil {
			t.tso = true
		}
		// Without TSO the queues still carry an (all-zero) virtio_net_hdr,
		// which the packet loops handle; writes can still hand coalesced
		// segments to the kernel, which does not depend on TUNSETOFFLOAD.
	}
	for i, fd := range t.fds {
		t.queues = append(t.queues, os.NewFile(uintptr(fd), fmt.Sprintf("%s-queue%d", name, i)))
	}
	return t, nil
}

func tunQueue(name string, flags uint16) (int, error) {
	fd, err := unix.Open(tunDevicePath, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", tunDevicePath, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("device name %q: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY):
			return -1, fmt.Errorf("attach to %q: device already attached by another process: %w", name, err)
		case errors.Is(err, unix.EINVAL) && flags&unix.IFF_MULTI_QUEUE == 0:
			return -1, fmt.Errorf(tunAttachFlagsErr+": %w", name, name, err)
		}
		return -1, fmt.Errorf("attach to %q: %w", name, err)
	}
	return fd, nil
}

// release undoes what attaching changed on the persistent device, then
// closes the queues. Offloads stay on a device after its last queue
// detaches; a later reader without IFF_VNET_HDR would get 64 KiB
// super-packets it cannot parse.
func (t *tunDevice) release() error {
	if t.tso && len(t.fds) > 0 {
		_ = unix.IoctlSetInt(t.fds[0], unix.TUNSETOFFLOAD, 0)
	}
	var first error
	for _, q := range t.queues {
		if err := q.Close(); err != nil && first == nil {
			first = err
		}
	}
	t.queues, t.fds = nil, nil
	return first
}

func (t *tunDevice) closeFDs() {
	for _, fd := range t.fds {
		unix.Close(fd)
	}
	t.fds = nil
}

// ifIndex looks a device up in the calling thread's namespace.
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("find device %q: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("device name %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return 0, fmt.Errorf("find device %q: no such device in this namespace (create it first: ip tuntap add dev %s mode tun multi_queue)", name, name)
		}
		return 0, fmt.Errorf("find device %q: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
