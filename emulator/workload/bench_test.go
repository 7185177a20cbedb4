package workload

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/process"
	"github.com/labctl/labctl/internal/nstest"
)

// BenchmarkStartWebServers starts 100 builtin web servers, as 100 pods of
// one (each pod also costs a supervisor) and as 50 pods of two (the
// textbook's pods have two containers), every pod in a namespace of its
// own. It reports the wall time per container start (StartPod returns once
// the servers listen), the CPU time per pod from start to stop (independent
// of other load on the machine), the resident memory of each web server
// (RSS, and PSS, which shares the binary's pages among the hundred copies),
// the supervisors' memory, and the stop time.
//
//	sudo go test ./emulator/workload -run '^$' -bench StartWebServers -benchtime 1x
//
// State directories go on tmpfs (/dev/shm), as /run is on most machines;
// WLBENCH_DIR=/some/dir measures another filesystem. WLBENCH_EXE runs
// another binary whose main calls Main (a labctl build) instead of the test
// binary; WLBENCH_CGROUPS=none|v1|v2 picks the cgroup driver.
func BenchmarkStartWebServers(b *testing.B) {
	nstest.NeedRoot(b)
	for _, shape := range []struct{ pods, perPod int }{{100, 1}, {50, 2}} {
		b.Run(fmt.Sprintf("pods=%d,servers-per-pod=%d", shape.pods, shape.perPod), func(b *testing.B) {
			for range b.N {
				benchStart(b, shape.pods, shape.perPod)
			}
		})
	}
}

func benchStart(b *testing.B, pods, perPod int) {
	b.StopTimer()
	defer b.StartTimer()
	exe := os.Getenv("WLBENCH_EXE")
	if exe == "" {
		exe = testBinary()
	}
	workers := 4 * runtime.GOMAXPROCS(0)
	containers := pods * perPod
	lab := uniqueName()
	var names []string
	defer func() {
		for _, name := range names {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}()
	for i := range pods {
		name := fmt.Sprintf("%s-%d", lab, i)
		run(b, "ip", "netns", "add", name)
		names = append(names, name)
	}
	dir := benchStateDir(b)
	opts := Options{Executable: exe, Cgroups: os.Getenv("WLBENCH_CGROUPS"), AppletDir: filepath.Join(dir, "bin")}
	var ctrs []Container
	for j := range perPod {
		ctrs = append(ctrs, Container{Name: fmt.Sprintf("web-%d", j), Builtin: builtin.WebServer, Ports: []Port{{ContainerPort: 80 + j}}})
	}
	shims := make([]Shim, pods)
	errs := make([]error, pods)
	next := make(chan int)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	b.StartTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for i := range next {
				shims[i], errs[i] = StartPod(context.Background(), PodSpec{
					Lab: lab, Pod: fmt.Sprintf("pod%d", i), Namespace: "/run/netns/" + names[i],
					PodIP:      fmt.Sprintf("10.126.%d.%d", i/250, i%250+2),
					StateDir:   filepath.Join(dir, fmt.Sprint(i)),
					Containers: ctrs,
				}, opts)
			}
		})
	}
	for i := range pods {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()

	var started []Shim
	for i, err := range errs {
		if err != nil {
			b.Errorf("pod %d: %v", i, err)
		} else {
			started = append(started, shims[i])
		}
	}
	var web, sup []process.MemoryUsage
	for _, s := range started {
		st, err := ReadStatus(s.StateDir)
		if err != nil {
			b.Error(err)
			continue
		}
		for _, c := range st.Containers {
			if m, err := process.Memory(c.PID); err == nil {
				web = append(web, m)
			}
		}
		if m, err := process.Memory(s.PID); err == nil {
			sup = append(sup, m)
		}
	}
	stopStart := time.Now()
	if err := StopPods(started, time.Second); err != nil {
		b.Error(err)
	}
	stopped := time.Since(stopStart)
	// Every process of the benchmark was reaped by now (the supervisors by
	// StopPods, the containers by their supervisors), so the children's CPU
	// time is the whole cost, whatever else runs on the machine.
	cpu := cpuTime() - cpu0
	if err := SweepLab(lab, opts.Cgroups); err != nil {
		b.Error(err)
	}

	perStart := float64(elapsed.Microseconds()) / 1000 / float64(containers)
	b.ReportMetric(perStart, "ms/start")
	b.ReportMetric(float64(stopped.Microseconds())/1000/float64(pods), "ms/pod-stop")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(pods), "cpu-ms/pod")
	rss, pss, rssMax := summarize(web)
	b.ReportMetric(rss, "MB-RSS/web")
	b.ReportMetric(rssMax, "MB-RSSmax/web")
	b.ReportMetric(pss, "MB-PSS/web")
	srss, spss, _ := summarize(sup)
	b.ReportMetric(srss, "MB-RSS/shim")
	b.ReportMetric(spss, "MB-PSS/shim")
	b.Logf("%d web servers in %d pods on %d CPUs, %d parallel starts, state in %s: %.2f ms per container start, "+
		"%.2f ms per pod stop, %.2f ms of CPU per pod (start to stop); web server RSS %.1f MB (max %.1f), PSS %.1f MB; "+
		"supervisor RSS %.1f MB, PSS %.1f MB (%s)",
		containers, pods, runtime.NumCPU(), workers, filepath.Dir(dir), perStart,
		float64(stopped.Microseconds())/1000/float64(pods), float64(cpu.Microseconds())/1000/float64(pods),
		rss, rssMax, pss, srss, spss, exe)
}

// cpuTime is the user and system time of this process and its reaped
// descendants.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if unix.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func benchStateDir(b *testing.B) string {
	parent := os.Getenv("WLBENCH_DIR")
	if parent == "" {
		var st unix.Statfs_t
		if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC {
			parent = "/dev/shm"
		}
	}
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "wlbench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// summarize returns the mean RSS, mean PSS and largest RSS in MB.
func summarize(ms []process.MemoryUsage) (rss, pss, rssMax float64) {
	if len(ms) == 0 {
		return 0, 0, 0
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].RSS < ms[j].RSS })
	for _, m := range ms {
		rss += float64(m.RSS)
		pss += float64(m.PSS)
	}
	n := float64(len(ms))
	return rss / n / 1e6, pss / n / 1e6, float64(ms[len(ms)-1].RSS) / 1e6
}
