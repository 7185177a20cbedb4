package nstest

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// Tree lists every entry under root (root itself included) with its type,
// permissions, size, modification time and link target, one a line: two
// listings differ when anything in the tree was created, removed, written
// or replaced in between, e.g. by a container given it as its root
// filesystem.
func Tree(t testing.TB, root string) string {
	t.Helper()
	var b []byte
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		target, _ := os.Readlink(p)
		b = fmt.Appendf(b, "%s %v %d %d %s\n", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), target)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
