package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPodStart measures what one pod start costs in file operations,
// the way workload's StartPod and its supervisor do them, through os (as
// before statedir) and through statedir: open the pod's directory, check
// the two applet links, forget the last run's status and stop request,
// write pod.json, open the supervisor's log; the supervisor opens the
// directory again, reads pod.json, opens a container log and writes
// status.json. State on tmpfs (/dev/shm) when there is one, as /run is on
// most hosts.
//
//	go test ./emulator/statedir -run '^$' -bench PodStart
func BenchmarkPodStart(b *testing.B) {
	base := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "sdbench-")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			base = dir
		}
	}
	pod := filepath.Join(base, "pods", "lab", "pod")
	applets := filepath.Join(base, "bin")
	exe, _ := os.Executable()
	spec := make([]byte, 2000)
	status := make([]byte, 3000)

	b.Run("os", func(b *testing.B) {
		for b.Loop() {
			must := func(err error) {
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					b.Fatal(err)
				}
			}
			must(os.MkdirAll(pod, 0o755))
			for _, name := range []string{"curl", "ping"} {
				if t, err := os.Readlink(filepath.Join(applets, name)); err != nil || t != exe {
					must(os.MkdirAll(applets, 0o755))
					tmp := filepath.Join(applets, name+".tmp")
					must(os.Symlink(exe, tmp))
					must(os.Rename(tmp, filepath.Join(applets, name)))
				}
			}
			must(os.Remove(filepath.Join(pod, "_status.json")))
			must(os.Remove(filepath.Join(pod, "_stop")))
			must(os.WriteFile(filepath.Join(pod, "_pod.json"), spec, 0o644))
			f, err := os.OpenFile(filepath.Join(pod, "_shim.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			must(err)
			f.Close()
			// The supervisor.
			_, err = os.ReadFile(filepath.Join(pod, "_pod.json"))
			must(err)
			f, err = os.OpenFile(filepath.Join(pod, "web.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			must(err)
			f.Close()
			must(os.WriteFile(filepath.Join(pod, "_status.json.tmp"), status, 0o644))
			must(os.Rename(filepath.Join(pod, "_status.json.tmp"), filepath.Join(pod, "_status.json")))
		}
	})
	b.Run("statedir", func(b *testing.B) {
		for b.Loop() {
			must := func(err error) {
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					b.Fatal(err)
				}
			}
			d, err := Open(pod)
			must(err)
			a, err := Open(applets)
			must(err)
			for _, name := range []string{"curl", "ping"} {
				if t, err := a.Readlink(name); err != nil || t != exe {
					must(a.Symlink(exe, name))
				}
			}
			a.Close()
			must(d.Remove("_status.json"))
			must(d.Remove("_stop"))
			f, err := d.OpenFile("_pod.json", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			must(err)
			_, err = f.Write(spec)
			must(err)
			f.Close()
			f, err = d.OpenFile("_shim.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			must(err)
			f.Close()
			d.Close()
			// The supervisor.
			d, err = OpenExisting(pod)
			must(err)
			_, err = d.ReadFile("_pod.json", 4<<20)
			must(err)
			f, err = d.OpenFile("web.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			must(err)
			f.Close()
			must(d.WriteFile("_status.json", status, 0o644))
			d.Close()
		}
	})
}
