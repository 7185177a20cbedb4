// Command labbench measures how fast labctl brings labs up and down, against
// the bash script `labctl up --dry-run` prints for the same lab (the same
// kernel objects, made by one iproute2 process per command). It is what
// `make bench` runs. It needs root, like labctl itself.
//
// Every lab it creates is named bench<pid>-NODESxPODS, so parallel runs never
// collide, and on any failure or interrupt it removes exactly the namespaces
// whose names carry its own prefix, nothing else. It changes nothing on the
// host outside /run/netns and its temporary directory: no sysctl, no link,
// no route.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/labctl/labctl/emulator/lab"
)

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	var (
		labctl   = flag.String("labctl", "", "labctl binary to measure (default: go build ./cmd/labctl into a temporary directory)")
		runs     = flag.Int("runs", 0, "repetitions per size (default: 5, and 3 for labs over 100 pods)")
		sizes    = flag.String("sizes", "2x3,10x100,50x1000", "lab sizes as NODESxPODS, comma separated")
		timeout  = flag.Duration("timeout", 10*time.Minute, "limit for any one command")
		settle   = flag.Duration("settle", 100*time.Millisecond, "pause between up and down, so teardown meets a lab at rest")
		tput     = flag.Duration("throughput", 5*time.Second, "length of each pod-to-pod TCP stream; 0 skips the throughput table")
		noUp     = flag.Bool("no-updown", false, "skip the up/down table")
		ctrs     = flag.Int("containers", 100, "built-in web-server containers to start, one per pod; 0 skips the container table")
		onlyPlan = flag.Bool("plan-only", false, "measure only validating and planning 100, 1000 and 4000 nodes (needs no root)")
		noPlan   = flag.Bool("no-plan", false, "skip the plan table")
		capt     = flag.Duration("capture", 3*time.Second, "traffic per capture measurement; 0 skips the capture table")
		onlyCap  = flag.Bool("only-capture", false, "run only the capture table")
		scen     = flag.String("scenario", "scenarios/two-node-basics.yaml", "scenario to time run and grade with, and a class of; \"\" skips the scenario table")
		class    = flag.Int("class", 30, "copies of the scenario's lab brought up and graded at once")
		onlyScen = flag.Bool("scenario-only", false, "measure only the scenario table")
		traces   = flag.Int("trace", 10, "traces per backend in the trace latency table; 0 skips it")
		onlyTr   = flag.Bool("only-trace", false, "run only the trace latency table")
		svcs     = flag.Int("services", 1000, "services (of 3 endpoints) in the services table; 0 skips it")
		onlySvc  = flag.Bool("only-services", false, "run only the services table")
		tuiTime  = flag.Duration("tui", 10*time.Second, "time per row of the TUI CPU table (labctl tui showing 10k packets/s); 0 skips it")
		onlyTUI  = flag.Bool("only-tui", false, "run only the TUI CPU table")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: labbench [flags]\n\n"+
			"Times labctl up and down against the bash script of its own --dry-run output,\n"+
			"the start and memory of built-in web-server containers, pod-to-pod\n"+
			"throughput per backend, packet capture under load (-only-capture runs that\n"+
			"alone), labctl trace's latency per backend (-only-trace), the time and memory\n"+
			"of validating and planning large labs, and the scenario runner: run and grade\n"+
			"of one lab and a class of labs at once, labctl tui's CPU use while it shows\n"+
			"10k packets/s (-only-tui), and services (-only-services): a ClusterIP against\n"+
			"a pod IP, programming kube-proxy's rules, up with and without them; with the\n"+
			"targets of issues 2, 3, 4, 8, 11, 12 and 13. Needs root, except for -plan-only.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if *onlyScen {
		*noPlan, *noUp, *ctrs, *tput, *capt, *traces, *svcs, *tuiTime = true, true, 0, 0, 0, 0, 0, 0
	}
	list, err := parseSizes(*sizes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labbench:", err)
		return 2
	}
	if *onlyCap {
		*noUp, *ctrs, *tput, *noPlan, *scen, *traces, *svcs, *tuiTime = true, 0, 0, true, "", 0, 0, 0
		if *capt <= 0 {
			*capt = 3 * time.Second
		}
	}
	if *onlyTr {
		*noUp, *ctrs, *tput, *noPlan, *capt, *scen, *svcs, *tuiTime = true, 0, 0, true, 0, "", 0, 0
		if *traces <= 0 {
			*traces = 10
		}
	}
	if *onlySvc {
		*noUp, *ctrs, *tput, *noPlan, *capt, *scen, *traces, *tuiTime = true, 0, 0, true, 0, "", 0, 0
		if *svcs <= 0 {
			*svcs = 1000
		}
	}
	if *onlyTUI {
		*noUp, *ctrs, *tput, *noPlan, *capt, *scen, *traces, *svcs = true, 0, 0, true, 0, "", 0, 0
		if *tuiTime <= 0 {
			*tuiTime = 10 * time.Second
		}
	}
	if !*noPlan || *onlyPlan {
		reportPlan(os.Stdout, planBench())
		if *onlyPlan {
			return 0
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "labbench: needs root (it creates network namespaces): run it with sudo")
		return 6
	}

	// Cancel on Ctrl-C or termination; the children get the terminal's
	// signal too, and whatever they leave behind is swept below.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	b := &bench{pid: os.Getpid(), timeout: *timeout, settle: *settle}
	code := 0
	func() {
		defer func() {
			// Clean up even when something panicked, then let it
			// continue to crash.
			r := recover()
			b.cleanup()
			if r != nil {
				panic(r)
			}
		}()
		if err := b.setup(ctx, *labctl); err != nil {
			fmt.Fprintln(os.Stderr, "labbench:", err)
			code = 1
			return
		}
		var results []*result
		var err error
		if !*noUp {
			results, err = b.runAll(ctx, list, *runs)
			if len(results) > 0 {
				report(os.Stdout, b, results)
			}
		}
		if err == nil && *ctrs > 0 {
			n := *runs
			if n <= 0 {
				n = 5
			}
			results := []*ctrResult{b.containers(ctx, *ctrs, n, b.stateDir)}
			// Where labctl's state directory is on disk, the same on
			// tmpfs shows what that costs.
			if fsType(b.stateDir) != "tmpfs" && ctx.Err() == nil {
				if dir, err := os.MkdirTemp("/dev/shm", fmt.Sprintf("labbench-%d-", b.pid)); err == nil {
					if fsType(dir) == "tmpfs" {
						results = append(results, b.containers(ctx, *ctrs, n, dir))
					}
					// Whatever is left there is ours alone (a private
					// directory): processes, namespaces and records.
					_, _ = exec.Command(b.labctl, "--state-dir", dir, "down", "--all").CombinedOutput()
					_ = os.RemoveAll(dir)
				}
			}
			reportContainers(os.Stdout, b, results)
			err = ctx.Err()
		}
		if err == nil && *tput > 0 {
			reportThroughput(os.Stdout, b.throughput(ctx, *tput), *tput)
			err = ctx.Err()
		}
		if err == nil && *capt > 0 {
			reportCapture(os.Stdout, b.capture(ctx, *capt), *capt)
			err = ctx.Err()
		}
		if err == nil && *scen != "" {
			n := *runs
			if n <= 0 {
				n = 5
			}
			r := b.scenarios(ctx, *scen, *class, n)
			reportScenario(os.Stdout, r)
			if err = ctx.Err(); err == nil {
				err = r.err
			}
		}
		if err == nil && *traces > 0 {
			reportTrace(os.Stdout, b.trace(ctx, *traces), *traces)
			err = ctx.Err()
		}
		if err == nil && *svcs > 0 {
			n := *runs
			if n <= 0 {
				n = 5
			}
			r := b.servicesBench(ctx, *svcs, 2000, n)
			reportServices(os.Stdout, r)
			if err = ctx.Err(); err == nil {
				err = r.err
			}
		}
		if err == nil && *tuiTime > 0 {
			cases, rss, terr := b.tui(ctx, *tuiTime)
			reportTUI(os.Stdout, cases, rss, terr, *tuiTime)
			err = ctx.Err()
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, "labbench: interrupted; cleaning up")
				code = 130
				return
			}
			fmt.Fprintln(os.Stderr, "labbench:", err)
			code = 1
		}
	}()
	return code
}

// bench holds what every measurement shares.
type bench struct {
	pid      int
	timeout  time.Duration
	settle   time.Duration
	tmp      string
	stateDir string
	labctl   string
	built    bool // labctl was built here
	watcher  *goneWatcher
	noGone   string // why "gone" cannot be measured, if it cannot
	facts    machineFacts
}

func (b *bench) setup(ctx context.Context, labctl string) error {
	tmp, err := os.MkdirTemp("", fmt.Sprintf("labbench-%d-", b.pid))
	if err != nil {
		return err
	}
	b.tmp = tmp
	// A private state directory: the benchmark never sees or changes the
	// labs a user has up, and `down --all` in cleanup only finds ours. It
	// sits next to labctl's default (/run/labctl) so that labctl writes its
	// records to the file system users get (tmpfs on most hosts), not to
	// wherever TMPDIR happens to be.
	if d, err := os.MkdirTemp(filepath.Dir(lab.DefaultStateDir), fmt.Sprintf("labbench-%d-", b.pid)); err == nil {
		b.stateDir = d
	} else {
		b.stateDir = filepath.Join(tmp, "state")
	}
	if labctl == "" {
		b.labctl = filepath.Join(tmp, "labctl")
		b.built = true
		// Static, as the Makefile and the README build it.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.labctl, "github.com/labctl/labctl/cmd/labctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build labctl (run labbench inside the labctl module, or pass -labctl): %w", err)
		}
	} else if b.labctl, err = filepath.Abs(labctl); err != nil {
		return err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the script baseline needs iproute2's ip on PATH")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("the script baseline needs nftables' nft on PATH: it loads each node's masquerade table")
	}
	if w, err := openGoneWatcher(); err != nil {
		b.noGone = err.Error()
	} else {
		b.watcher = w
	}
	b.facts = collectFacts()
	return nil
}

func (b *bench) cleanup() {
	if b.watcher != nil {
		b.watcher.Close()
	}
	if b.tmp == "" {
		return
	}
	swept, err := sweep(b.labctl, b.stateDir, b.pid)
	if len(swept) > 0 {
		fmt.Fprintf(os.Stderr, "labbench: removed %d leftover namespaces: %s\n", len(swept), strings.Join(swept, " "))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labbench: cleanup:", err)
	}
	if left, _ := ownNamespaces(b.pid); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "labbench: could not remove %s; delete them with: ip netns del NAME\n", strings.Join(left, " "))
		return // keep the state directory for labctl down
	}
	_ = os.RemoveAll(b.stateDir)
	_ = os.RemoveAll(b.tmp)
}

// result holds every repetition's numbers for one size.
type result struct {
	size       labSize
	namespaces int
	runs       int

	labctlUp, labctlDown, labctlGone []time.Duration
	scriptUp, scriptDown, scriptGone []time.Duration
	labctlOwn, labctlUser, labctlSys []time.Duration // labctl's own "is up in", its CPU
	scriptUser, scriptSys            []time.Duration
	warnings                         map[string]int // labctl up's warning lines
	goneErr                          string
}

func (b *bench) runAll(ctx context.Context, sizes []labSize, runs int) ([]*result, error) {
	// One untimed round of the smallest lab first: it pages everything in
	// and proves the whole procedure (and the teardown watcher) works
	// before the long runs.
	warm := &result{size: labSize{2, 3}, warnings: map[string]int{}}
	fmt.Fprintln(os.Stderr, "labbench: warm-up round (2/3, not counted)")
	if err := b.measure(ctx, warm, "warmup", 1); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var results []*result
	for _, s := range sizes {
		n := runs
		if n <= 0 {
			n = 5
			if s.Pods > 100 {
				n = 3
			}
		}
		r := &result{size: s, warnings: map[string]int{}}
		results = append(results, r)
		if err := b.measure(ctx, r, "", n); err != nil {
			if r.runs == 0 {
				results = results[:len(results)-1]
			}
			return results, fmt.Errorf("%s: %w", s, err)
		}
	}
	return results, nil
}

// measure runs n repetitions of: labctl up, labctl down (and wait until
// the namespaces are freed), bash script, script teardown (and wait).
func (b *bench) measure(ctx context.Context, r *result, nameOverride string, n int) error {
	name := labName(b.pid, r.size)
	if nameOverride != "" {
		name = namePrefix(b.pid) + nameOverride
	}
	dir := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, name+".yaml")
	data := topologyYAML(name, r.size)
	if err := os.WriteFile(file, data, 0o644); err != nil {
		return err
	}
	names, err := compileLab(file, data)
	if err != nil {
		return fmt.Errorf("generated topology: %w", err)
	}
	r.namespaces = len(names)
	if taken := present(names); len(taken) > 0 {
		return fmt.Errorf("namespace names already in use: %s", strings.Join(taken, " "))
	}

	script := filepath.Join(dir, "up.sh")
	out, err := b.command(ctx, nil, b.labctl, "up", "--dry-run", file)
	if err != nil {
		return fmt.Errorf("labctl up --dry-run: %w", err)
	}
	if err := os.WriteFile(script, out.stdout, 0o755); err != nil {
		return err
	}
	// The script's teardown, done the fastest reasonable way: one ip
	// process reading a batch of `netns del` lines, instead of one fork
	// and exec per namespace.
	var del strings.Builder
	for _, ns := range names {
		fmt.Fprintf(&del, "netns del %s\n", ns)
	}
	teardown := filepath.Join(dir, "down.batch")
	if err := os.WriteFile(teardown, []byte(del.String()), 0o644); err != nil {
		return err
	}

	upOwn := regexp.MustCompile(`is up in (\S+):`)
	for i := 1; i <= n; i++ {
		// labctl
		up, err := b.command(ctx, nil, b.labctl, "--state-dir", b.stateDir, "up", file)
		if err != nil {
			return fmt.Errorf("labctl up: %w", err)
		}
		r.labctlUp = append(r.labctlUp, up.wall)
		r.labctlUser = append(r.labctlUser, up.user)
		r.labctlSys = append(r.labctlSys, up.sys)
		if m := upOwn.FindSubmatch(up.stdout); m != nil {
			if d, err := time.ParseDuration(string(m[1])); err == nil {
				r.labctlOwn = append(r.labctlOwn, d)
			}
		}
		for _, line := range strings.Split(string(up.stderr), "\n") {
			if strings.HasPrefix(line, "warning:") {
				r.warnings[line]++
			}
		}
		down, gone, err := b.teardown(ctx, r, names, b.labctl, "--state-dir", b.stateDir, "down", name)
		if err != nil {
			return fmt.Errorf("labctl down: %w", err)
		}
		r.labctlDown = append(r.labctlDown, down)
		if gone > 0 {
			r.labctlGone = append(r.labctlGone, gone)
		}

		// the script
		sup, err := b.command(ctx, nil, "bash", script)
		if err != nil {
			_ = deleteNamespaces(present(names))
			return fmt.Errorf("bash %s: %w", script, err)
		}
		r.scriptUp = append(r.scriptUp, sup.wall)
		r.scriptUser = append(r.scriptUser, sup.user)
		r.scriptSys = append(r.scriptSys, sup.sys)
		sdown, sgone, err := b.teardown(ctx, r, names, "ip", "-batch", teardown)
		if err != nil {
			return fmt.Errorf("script teardown: %w", err)
		}
		r.scriptDown = append(r.scriptDown, sdown)
		if sgone > 0 {
			r.scriptGone = append(r.scriptGone, sgone)
		}
		r.runs = i
		if nameOverride == "" {
			fmt.Fprintf(os.Stderr, "labbench: %-8s run %d/%d: labctl up %s down %s gone %s | script up %s down %s gone %s\n",
				r.size, i, n, fmtDur(up.wall), fmtDur(down), fmtDurOr(gone), fmtDur(sup.wall), fmtDur(sdown), fmtDurOr(sgone))
		}
	}
	return nil
}

// teardown runs a command that deletes the lab's namespaces and returns
// its wall time and the time from its start until the kernel had freed
// them all (0 when that cannot be measured).
func (b *bench) teardown(ctx context.Context, r *result, names []string, name string, args ...string) (time.Duration, time.Duration, error) {
	// Right after up the lab is not at rest: sockets labctl or ip opened
	// in its namespaces keep them referenced until an RCU grace period has
	// passed, and IPv6 duplicate address detection is still running. A lab
	// people take down has been up for a while; without the pause those
	// leftovers would be charged to the teardown.
	select {
	case <-time.After(b.settle):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	var tr *tracking
	if b.watcher != nil && r.goneErr == "" {
		var err error
		if tr, err = b.watcher.track(names); err != nil {
			r.goneErr = err.Error()
			tr = nil
		}
	}
	start := monoNow()
	out, err := b.command(ctx, nil, name, args...)
	if err != nil {
		return 0, 0, err
	}
	if left := present(names); len(left) > 0 {
		return 0, 0, fmt.Errorf("%d namespaces still named after the teardown, e.g. %s", len(left), left[0])
	}
	var gone time.Duration
	if tr != nil {
		at, err := b.watcher.wait(ctx, tr, b.timeout)
		if err != nil {
			if ctx.Err() != nil {
				return 0, 0, ctx.Err()
			}
			r.goneErr = err.Error()
		} else {
			gone = time.Duration(at - start)
		}
	}
	return out.wall, gone, nil
}

type cmdResult struct {
	wall, user, sys time.Duration
	stdout, stderr  []byte
}

// command runs a program and measures it from just before the fork to
// just after it was reaped.
func (b *bench) command(ctx context.Context, stdin []byte, name string, args ...string) (*cmdResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// labctl rolls back on SIGTERM; kill only what ignores it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Minute
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	start := monoNow()
	err := cmd.Run()
	wall := time.Duration(monoNow() - start)
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			return nil, context.Canceled
		}
		msg := strings.TrimSpace(stderr.String())
		if lines := strings.Split(msg, "\n"); len(lines) > 10 {
			msg = strings.Join(lines[len(lines)-10:], "\n")
		}
		return nil, fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, msg)
	}
	res := &cmdResult{wall: wall, stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		// wait4's usage includes the children the process reaped, so
		// the script's count covers every ip it ran.
		res.user = time.Duration(ru.Utime.Nano())
		res.sys = time.Duration(ru.Stime.Nano())
	}
	return res, nil
}
