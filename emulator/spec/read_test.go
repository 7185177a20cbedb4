package spec

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoadRefusesWhatIsNotATopologyFile: whatever path is given, Load
// neither blocks nor reads without bound, and says what the path is.
func TestLoadRefusesWhatIsNotATopologyFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.yaml")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: the size is what is refused, before anything is read.
	if err := f.Truncate(200 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	justOver := filepath.Join(dir, "just-over.yaml")
	if err := os.WriteFile(justOver, []byte("name: x\n"+strings.Repeat("#", MaxFileSize)), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path, want string
	}{
		{fifo, fifo + ": is a named pipe (FIFO), not a regular file"},
		{"/dev/zero", "/dev/zero: is a character device, not a regular file"},
		{dir, dir + ": is a directory, not a regular file"},
		{sock, sock + ": is a socket, not a regular file"},
		{big, big + ": is 200 MiB; a topology may be at most 4 MiB"},
		{justOver, justOver + ": is 4.0 MiB (4194312 bytes); a topology may be at most 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(tt.path)
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Load blocked")
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Load = %v, want an *InvalidError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("Load = %q\nwant   %q", err, tt.want)
			}
		})
	}
}

func TestParseRefusesOversizedData(t *testing.T) {
	_, err := Parse("big.yaml", make([]byte, MaxFileSize+1))
	var inv *InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "at most 4 MiB") {
		t.Errorf("Parse = %v, want the size cap", err)
	}
}
