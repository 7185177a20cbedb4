package yamldoc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.yaml")
	if err := os.WriteFile(small, []byte("a: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(dir, "large.yaml")
	if err := os.WriteFile(large, []byte(strings.Repeat("#", 2048)), 0o644); err != nil {
		t.Fatal(err)
	}
	f := Format{Noun: "a drill", MaxSize: 1 << 10}

	if data, err := ReadFile(small, f); err != nil || string(data) != "a: 1\n" {
		t.Errorf("ReadFile(small) = %q, %v", data, err)
	}
	for path, want := range map[string]string{
		large: large + ": is 2.0 KiB (2048 bytes); a drill may be at most 1.0 KiB (1024 bytes)",
		dir:   dir + ": is a directory, not a regular file",
	} {
		_, err := ReadFile(path, f)
		var inv *InvalidError
		if !errors.As(err, &inv) || err.Error() != want {
			t.Errorf("ReadFile(%s) = %v, want the *InvalidError %q", path, err, want)
		}
	}
	// Missing is not a problem of the document: the caller says what it
	// was reading.
	_, err := ReadFile(filepath.Join(dir, "missing.yaml"), f)
	var inv *InvalidError
	if !errors.Is(err, fs.ErrNotExist) || errors.As(err, &inv) {
		t.Errorf("ReadFile(missing) = %v, want fs.ErrNotExist and no *InvalidError", err)
	}
}
