package netns

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ProcessesIn lists the processes that live in any of the given network
// namespaces: every process whose /proc/PID/ns/net is one of them, found
// from the kernel's own state, whoever started it (a pod's supervisor, the
// IPIP datapath, or a shell from `labctl exec`). Such a process keeps its
// namespace alive after the name is gone, so `down` must end them.
//
// The handles pin the namespaces while the scan runs, so their inode
// numbers cannot be reused by another namespace meanwhile. This process is
// never listed.
func ProcessesIn(handles []Handle) ([]int, error) {
	type key struct{ dev, ino uint64 }
	want := map[key]bool{}
	for _, h := range handles {
		var st unix.Stat_t
		if err := unix.Fstat(int(h), &st); err != nil {
			return nil, err
		}
		want[key{st.Dev, st.Ino}] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+n+"/ns/net", &st) != nil {
			continue // gone, or a kernel thread
		}
		if want[key{st.Dev, st.Ino}] {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
