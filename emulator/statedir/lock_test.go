package statedir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A child process of the lock tests: the test binary again, with
// envLockChild saying what to do in the state directory envLockDir.
const (
	envLockChild = "STATEDIR_TEST_LOCK"
	envLockDir   = "STATEDIR_TEST_DIR"
)

func lockChild() int {
	d, err := Open(os.Getenv(envLockDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	switch mode := os.Getenv(envLockChild); {
	case mode == "hold":
		// Hold the lock until stdin closes.
		release, err := d.Lock("locks/lab.lock")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("held")
		_, _ = io.Copy(io.Discard, os.Stdin)
		release()
		return 0
	case strings.HasPrefix(mode, "stress "):
		// Take and release the lock n times; inside, create a marker
		// that must not exist: two holders at once would collide on it.
		n, _ := strconv.Atoi(strings.TrimPrefix(mode, "stress "))
		for i := 0; i < n; {
			release, err := d.Lock("locks/lab.lock")
			if errors.Is(err, ErrLocked) {
				continue
			}
			if err != nil {
				fmt.Println(err)
				return 1
			}
			f, err := d.OpenFile("inside", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				fmt.Println("two holders at once:", err)
				return 1
			}
			f.Close()
			must := d.Remove("inside")
			release()
			if must != nil {
				fmt.Println(must)
				return 1
			}
			i++
		}
		return 0
	}
	return 2
}

func TestLockExcludes(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("locks", 0o755))
	release, err := d.Lock("locks/a.lock")
	must(t, err)
	if _, err := d.Lock("locks/a.lock"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), d.Join("locks/a.lock")) {
		t.Errorf("second Lock: %v; want ErrLocked naming the lock file", err)
	}
	other, err := d.Lock("locks/b.lock")
	must(t, err)
	release()
	release() // twice is harmless
	if _, err := d.Lstat("locks/a.lock"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file after release: %v; want it removed", err)
	}
	again, err := d.Lock("locks/a.lock")
	must(t, err)
	must(t, d.Close()) // release works after the directory is closed
	again()
	other()
}

func TestLockExcludesAnotherProcess(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("locks", 0o755))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envLockChild+"=hold", envLockDir+"="+d.Path())
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "held\n" {
		t.Fatalf("child: %q", line)
	}
	if _, err := d.Lock("locks/lab.lock"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while another process holds it: %v; want ErrLocked", err)
	}
	stdin.Close()
	must(t, cmd.Wait())
	release, err := d.Lock("locks/lab.lock")
	must(t, err)
	release()
}

// A locker opened the lock file just before its holder released (and
// removed) it, and a third process then took the lock on a new file: the
// late locker's flock on the removed file succeeds, and only the inode
// check keeps it from believing it holds the lock too.
func TestLockFileRemovedUnderALocker(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("locks", 0o755))
	first, err := d.Lock("locks/lab.lock")
	must(t, err)
	var third func()
	testHookLockOpened = func() {
		testHookLockOpened = nil // once: the third locker takes the lock undisturbed
		first()                  // removes the file the late locker has open
		var err error
		if third, err = d.Lock("locks/lab.lock"); err != nil {
			t.Errorf("third locker: %v", err)
		}
	}
	defer func() { testHookLockOpened = nil }()
	late, err := d.Lock("locks/lab.lock")
	if err == nil {
		late()
		t.Fatal("the late locker got the lock while the third holds it")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("late locker: %v; want ErrLocked", err)
	}
	if third != nil {
		third()
	}
}

// Processes take and release one lock in a tight loop; releasing removes
// the lock file each time. A marker created exclusively inside the lock
// proves no two ever hold it at once.
func TestLockStressAcrossProcesses(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("locks", 0o755))
	const procs, rounds = 4, 300
	var wg sync.WaitGroup
	start := time.Now()
	for range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envLockChild+"=stress "+strconv.Itoa(rounds), envLockDir+"="+d.Path())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("locker: %v: %s", err, out)
			}
		})
	}
	wg.Wait()
	t.Logf("%d processes took the lock %d times each in %v", procs, rounds, time.Since(start))
	if left := leftovers(t, d, "locks"); len(left) > 0 {
		t.Errorf("lock files left: %v", left)
	}
}

// A lock file another user owns, or one others may write, is refused like
// any other file of the state directory.
func TestLockRefusesFileOthersControl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	d := openTemp(t)
	must(t, d.MkdirAll("locks", 0o755))
	for name, setup := range map[string]func(string) error{
		"owned by nobody":    func(p string) error { return os.Chown(p, 65534, 65534) },
		"writable by others": func(p string) error { return os.Chmod(p, 0o666) },
	} {
		t.Run(name, func(t *testing.T) {
			file := d.Join("locks/" + strings.ReplaceAll(name, " ", "-") + ".lock")
			must(t, os.WriteFile(file, nil, 0o600))
			must(t, os.Chmod(file, 0o600))
			must(t, setup(file))
			if release, err := d.Lock("locks/" + filepath.Base(file)); !errors.Is(err, ErrUnsafe) {
				if err == nil {
					release()
				}
				t.Errorf("Lock of a lock file %s: %v; want ErrUnsafe", name, err)
			}
		})
	}
}
