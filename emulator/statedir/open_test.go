package statedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/labctl/labctl/internal/nstest"
)

// nobody is the unprivileged user of these tests: owner of directories
// root must refuse, and the attacker that plants links.
const nobody = 65534

func TestMain(m *testing.M) {
	if os.Getenv(envLockChild) != "" {
		os.Exit(lockChild())
	}
	nstest.Main(m, nstest.Prefix("sd"))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// mkdir makes a directory with the raw mode (0o1777 is sticky, as
// chmod(1) reads it) and owner.
func mkdir(t *testing.T, path string, mode uint32, uid int) string {
	t.Helper()
	must(t, os.Mkdir(path, 0o700))
	must(t, syscall.Chmod(path, mode))
	must(t, os.Lchown(path, uid, uid))
	return path
}

func symlink(t *testing.T, target, path string, uid int) string {
	t.Helper()
	must(t, os.Symlink(target, path))
	must(t, os.Lchown(path, uid, uid))
	return path
}

func TestOpen(t *testing.T) {
	nstest.NeedRoot(t)
	tests := []struct {
		name string
		// setup prepares base and returns the path to open and the
		// directory Open should arrive at ("" for the path itself).
		setup func(t *testing.T, base string) (path, want string)
		// refused: a substring of the error; "" means accepted.
		refused string
		unsafe  bool
		exists  bool // OpenExisting instead of Open
	}{
		{name: "missing directory is created", setup: func(t *testing.T, base string) (string, string) {
			return filepath.Join(base, "a", "state"), ""
		}},
		{name: "root's directory", setup: func(t *testing.T, base string) (string, string) {
			return mkdir(t, filepath.Join(base, "state"), 0o755, 0), ""
		}},
		{name: "owned by uid 65534", setup: func(t *testing.T, base string) (string, string) {
			return mkdir(t, filepath.Join(base, "state"), 0o755, nobody), ""
		}, refused: `/state" is owned by uid 65534, not root`, unsafe: true},
		{name: "mode 0777", setup: func(t *testing.T, base string) (string, string) {
			return mkdir(t, filepath.Join(base, "state"), 0o777, 0), ""
		}, refused: `/state" is writable by group or others (mode 0777); run ` + "`chmod go-w", unsafe: true},
		{name: "group writable", setup: func(t *testing.T, base string) (string, string) {
			return mkdir(t, filepath.Join(base, "state"), 0o775, 0), ""
		}, refused: "(mode 0775)", unsafe: true},
		{name: "sticky is not enough for the state directory itself", setup: func(t *testing.T, base string) (string, string) {
			return mkdir(t, filepath.Join(base, "state"), 0o1777, 0), ""
		}, refused: "(mode 1777)", unsafe: true},
		{name: "parent owned by uid 65534", setup: func(t *testing.T, base string) (string, string) {
			p := mkdir(t, filepath.Join(base, "p"), 0o755, nobody)
			return mkdir(t, filepath.Join(p, "state"), 0o755, 0), ""
		}, refused: `/p" is owned by uid 65534`, unsafe: true},
		{name: "parent 0777 without sticky bit", setup: func(t *testing.T, base string) (string, string) {
			p := mkdir(t, filepath.Join(base, "p"), 0o777, 0)
			return mkdir(t, filepath.Join(p, "state"), 0o755, 0), ""
		}, refused: `/p" is writable by group or others (mode 0777)`, unsafe: true},
		{name: "sticky parent like /tmp", setup: func(t *testing.T, base string) (string, string) {
			p := mkdir(t, filepath.Join(base, "tmp"), 0o1777, 0)
			return mkdir(t, filepath.Join(p, "state"), 0o755, 0), ""
		}},
		{name: "created in a sticky parent", setup: func(t *testing.T, base string) (string, string) {
			p := mkdir(t, filepath.Join(base, "tmp"), 0o1777, 0)
			return filepath.Join(p, "state"), ""
		}},
		{name: "relative path is made absolute", setup: func(t *testing.T, base string) (string, string) {
			t.Chdir(base)
			return "rel/state", filepath.Join(base, "rel", "state")
		}},
		{name: "root's link to root's directory is followed", setup: func(t *testing.T, base string) (string, string) {
			real := mkdir(t, filepath.Join(base, "real"), 0o755, 0)
			return symlink(t, "real", filepath.Join(base, "link"), 0), real
		}},
		{name: "root's link as an ancestor, like /var/run", setup: func(t *testing.T, base string) (string, string) {
			real := mkdir(t, filepath.Join(base, "run"), 0o755, 0)
			mkdir(t, filepath.Join(base, "var"), 0o755, 0)
			symlink(t, "../run", filepath.Join(base, "var", "run"), 0)
			return filepath.Join(base, "var", "run", "labctl"), filepath.Join(real, "labctl")
		}},
		{name: "link owned by uid 65534 in a sticky directory", setup: func(t *testing.T, base string) (string, string) {
			p := mkdir(t, filepath.Join(base, "tmp"), 0o1777, 0)
			real := mkdir(t, filepath.Join(base, "real"), 0o755, 0)
			return symlink(t, real, filepath.Join(p, "state"), nobody), ""
		}, refused: `/tmp/state" is a symbolic link owned by uid 65534`, unsafe: true},
		{name: "root's link to a directory of uid 65534", setup: func(t *testing.T, base string) (string, string) {
			mkdir(t, filepath.Join(base, "theirs"), 0o755, nobody)
			return symlink(t, "theirs", filepath.Join(base, "state"), 0), ""
		}, refused: `/theirs" is owned by uid 65534`, unsafe: true},
		{name: "a file, not a directory", setup: func(t *testing.T, base string) (string, string) {
			p := filepath.Join(base, "state")
			must(t, os.WriteFile(p, nil, 0o644))
			return p, ""
		}, refused: `/state" is not a directory`},
		{name: "missing, opened as existing", setup: func(t *testing.T, base string) (string, string) {
			return filepath.Join(base, "state"), ""
		}, exists: true, refused: "no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			path, want := tc.setup(t, base)
			if want == "" {
				want = path
			}
			open := Open
			if tc.exists {
				open = OpenExisting
			}
			d, err := open(path)
			if tc.refused != "" {
				if err == nil {
					d.Close()
					t.Fatalf("Open(%q) accepted it; want refused with %q", path, tc.refused)
				}
				if !strings.Contains(err.Error(), tc.refused) {
					t.Errorf("error %q; want it to contain %q", err, tc.refused)
				}
				if errors.Is(err, ErrUnsafe) != tc.unsafe {
					t.Errorf("errors.Is(%v, ErrUnsafe) = %v, want %v", err, !tc.unsafe, tc.unsafe)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", path, err)
			}
			defer d.Close()
			if d.Path() != want {
				t.Errorf("Path() = %q, want %q", d.Path(), want)
			}
			fi, err := os.Lstat(want)
			if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
				t.Errorf("state directory %s: %v, %v; want a directory only root can write", want, fi, err)
			}
			// It is usable: a file written through it is where Path says.
			must(t, d.WriteFile("probe", []byte("x"), 0o644))
			if b, err := os.ReadFile(filepath.Join(want, "probe")); err != nil || string(b) != "x" {
				t.Errorf("probe through %s: %q, %v", want, b, err)
			}
		})
	}
}

func TestOpenExistingMissingIsNotExist(t *testing.T) {
	_, err := OpenExisting(filepath.Join(t.TempDir(), "gone"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenExisting of a missing directory: %v; want fs.ErrNotExist", err)
	}
	if _, err := Open(""); err == nil {
		t.Fatal("Open(\"\") accepted the empty path (the working directory)")
	}
}
