package statedir

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func openTemp(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// leftovers lists the names in dir that are not in keep: temp files a
// failed write left behind.
func leftovers(t *testing.T, d *Dir, rel string, keep ...string) []string {
	t.Helper()
	entries, err := d.ReadDir(rel)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.Contains(strings.Join(keep, "\x00")+"\x00", e.Name()+"\x00") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestWriteFileFailureLeavesNoTempFile(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("labs/x.json/busy", 0o755)) // a directory where the file should go
	must(t, d.WriteFile("labs/plain", []byte("x"), 0o644))
	tests := []struct {
		name, rel, want string
		perm            fs.FileMode
	}{
		{"target is a non-empty directory", "labs/x.json", "is a directory", 0o644},
		{"parent is a file", "labs/plain/y.json", "not a directory", 0o644},
		{"parent is missing", "labs/missing/y.json", "no such file or directory", 0o644},
		{"mode lets others write", "labs/y.json", "would let others write", 0o666},
		{"not a clean relative path", "labs/../y.json", "not a relative path", 0o644},
		{"absolute path", "/etc/y.json", "not a relative path", 0o644},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := d.WriteFile(tc.rel, []byte("{}"), tc.perm)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteFile(%s): %v; want an error with %q", tc.rel, err, tc.want)
			}
			if !strings.Contains(err.Error(), d.Join(tc.rel)) && !strings.HasPrefix(tc.rel, "/") {
				t.Errorf("error %q does not name %s", err, d.Join(tc.rel))
			}
			if left := leftovers(t, d, "labs", "x.json", "plain"); len(left) > 0 {
				t.Errorf("left behind in labs/: %v", left)
			}
			if left := leftovers(t, d, "labs/x.json", "busy"); len(left) > 0 {
				t.Errorf("left behind in labs/x.json/: %v", left)
			}
		})
	}
}

// Writers replace one file over and over while readers read it: every read
// sees one whole version.
func TestWriteFileConcurrentWritersNeverTear(t *testing.T) {
	d := openTemp(t)
	const size, writers, writes = 256 << 10, 6, 40
	must(t, d.WriteFile("status.json", bytes.Repeat([]byte{'a'}, size), 0o644))
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte('b' + w)}, size)
			for range writes {
				if err := d.WriteFile("status.json", data, 0o644); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := d.ReadFile("status.json", size)
				if err != nil {
					errs <- err
					return
				}
				if len(b) != size || bytes.Count(b, b[:1]) != size {
					errs <- errors.New("read a torn file")
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if left := leftovers(t, d, ".", "status.json"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// Of many processes claiming one name at once, exactly one succeeds, and
// its content is what is there.
func TestCreateFileClaimsOnce(t *testing.T) {
	d := openTemp(t)
	must(t, d.MkdirAll("netns", 0o755))
	const claimers = 16
	errs := make([]error, claimers)
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() { errs[i] = d.CreateFile("netns/lab-node", []byte{byte('a' + i)}, 0o644) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("claimers %d and %d both created the file", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), d.Join("netns/lab-node")):
			t.Errorf("claimer %d: %v; want fs.ErrExist naming the file", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("nobody created the file")
	}
	if b, err := d.ReadFile("netns/lab-node", 10); err != nil || string(b) != string(rune('a'+winner)) {
		t.Errorf("content %q, %v; want the winner's", b, err)
	}
	if left := leftovers(t, d, "netns", "lab-node"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestReadFile(t *testing.T) {
	d := openTemp(t)
	must(t, d.WriteFile("ok", []byte("12345"), 0o644))
	must(t, syscall.Mkfifo(d.Join("fifo"), 0o644))
	must(t, os.WriteFile(d.Join("shared"), []byte("x"), 0o644))
	must(t, os.Chmod(d.Join("shared"), 0o666))
	must(t, d.MkdirAll("dir", 0o755))
	tests := []struct {
		rel  string
		max  int64
		want string // error substring, or the content
		err  error
	}{
		{"ok", 5, "12345", nil},
		{"ok", 4, "5 bytes, more than 4", ErrTooLarge},
		{"fifo", 10, "is not a regular file (a named pipe)", ErrUnsafe},
		{"shared", 10, "is writable by group or others (mode 0666)", ErrUnsafe},
		{"dir", 10, "is not a regular file (a directory)", ErrUnsafe},
		{"missing", 10, "no such file or directory", fs.ErrNotExist},
	}
	for _, tc := range tests {
		b, err := d.ReadFile(tc.rel, tc.max)
		if err == nil {
			if string(b) != tc.want {
				t.Errorf("ReadFile(%s, %d) = %q; want %q", tc.rel, tc.max, b, tc.want)
			}
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("ReadFile(%s, %d): %v; want %q (%v)", tc.rel, tc.max, err, tc.want, tc.err)
		}
	}
}

func TestOpenFileAppendsAndTruncates(t *testing.T) {
	d := openTemp(t)
	for _, line := range []string{"one\n", "two\n"} {
		f, err := d.OpenFile("logs/x.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if errors.Is(err, fs.ErrNotExist) {
			must(t, d.MkdirAll("logs", 0o755))
			f, err = d.OpenFile("logs/x.log", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		}
		must(t, err)
		_, err = io.WriteString(f, line)
		must(t, err)
		must(t, f.Close())
	}
	if b, _ := d.ReadFile("logs/x.log", 100); string(b) != "one\ntwo\n" {
		t.Errorf("log: %q", b)
	}
	f, err := d.OpenFile("logs/x.log", os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	f.Close()
	if fi, err := d.Stat("logs/x.log"); err != nil || fi.Size() != 0 || fi.Name() != "x.log" || !fi.Mode().IsRegular() {
		t.Errorf("after O_TRUNC: %v, %v", fi, err)
	}
}

func TestSubAndRemoveAll(t *testing.T) {
	base := t.TempDir()
	d, err := Open(base)
	must(t, err)
	must(t, d.MkdirAll("pods/lab/p", 0o755))
	must(t, d.WriteFile("pods/lab/p/_pod.json", []byte("{}"), 0o644))
	p, err := d.Sub("pods/lab/p")
	must(t, err)
	must(t, d.Close()) // a Sub does not depend on its parent staying open
	if want := filepath.Join(base, "pods", "lab", "p"); p.Path() != want {
		t.Errorf("Sub path %s, want %s", p.Path(), want)
	}
	if b, err := p.ReadFile("_pod.json", 10); err != nil || string(b) != "{}" {
		t.Errorf("read through Sub: %q, %v", b, err)
	}
	must(t, p.Close())

	d, err = Open(base)
	must(t, err)
	defer d.Close()
	must(t, os.Chmod(d.Join("pods/lab"), 0o777))
	if _, err := d.Sub("pods/lab/p"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Sub through a directory others can write: %v; want refused", err)
	}
	must(t, d.RemoveAll("pods"))
	must(t, d.RemoveAll("pods")) // already gone: fine
	must(t, d.RemoveAll("pods/lab/p"))
	if entries, _ := d.ReadDir("."); len(entries) != 0 {
		t.Errorf("left after RemoveAll: %v", entries)
	}
}
