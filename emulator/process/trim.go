package process

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReleaseStartupPages lets go of this process's mappings of its own
// executable's read-only pages (code and read-only data), for a helper
// process that has finished starting.
//
// Every labctl helper (a pod's supervisor, a builtin server, the IPIP
// datapath) runs the whole labctl binary, CLI, capture and TUI included.
// Starting it runs every package's initialisation, scattered over the
// binary's code, and the kernel maps a window of pages around each page
// touched (fault-around, 64 KiB): most of a fresh helper's resident pages
// are binary pages it needed only to start. Those pages stay in the page
// cache, shared by every process that runs the binary; dropping this
// process's mappings of them (MADV_DONTNEED on a private file mapping that
// was never written only unmaps) costs nothing, and what the helper uses
// afterwards faults back in. Its resident size then reflects what it
// really uses, and the kernel can reclaim the binary's start-up pages when
// memory is short, as no process keeps them mapped.
//
// Writable mappings are never touched: there MADV_DONTNEED would discard
// the process's own data.
func ReleaseStartupPages() error {
	var exe unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &exe); err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || strings.ContainsRune(fl[1], 'w') || !sameFile(fl[3], fl[4], exe) {
			continue
		}
		span := strings.SplitN(fl[0], "-", 2)
		start, err1 := strconv.ParseUint(span[0], 16, 64)
		end, err2 := strconv.ParseUint(span[1], 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The raw call: the range is an address from /proc/self/maps,
		// not memory Go allocated.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("release %s: %w", fl[0], errno)
		}
	}
	return sc.Err()
}

// sameFile reports whether a maps line's device ("fd:01", major:minor in
// hex) and inode are the executable's.
func sameFile(dev, inode string, st unix.Stat_t) bool {
	ino, err := strconv.ParseUint(inode, 10, 64)
	if err != nil || ino != st.Ino {
		return false
	}
	maj, min, ok := strings.Cut(dev, ":")
	if !ok {
		return false
	}
	ma, err1 := strconv.ParseUint(maj, 16, 32)
	mi, err2 := strconv.ParseUint(min, 16, 32)
	return err1 == nil && err2 == nil && unix.Mkdev(uint32(ma), uint32(mi)) == st.Dev
}
