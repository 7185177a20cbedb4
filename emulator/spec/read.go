package spec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// MaxFileSize caps what Load reads. The largest lab one host can hold
// (MaxNodes nodes, MaxNamespaces namespaces, their containers) written out
// in full is well under 2 MiB; 4 MiB leaves room for comments and long
// commands while a stray /dev/zero or a 200 MB log file is refused before
// it is read, let alone parsed.
const MaxFileSize = 4 << 20

// readFile reads a topology file: one open, an fstat of what was opened,
// then at most MaxFileSize+1 bytes, so what is checked is what is read.
// What cannot be a topology (a FIFO, a device, a directory, a socket, a
// file too large) is a problem of the file, reported like any other.
func readFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer forever. It changes nothing for regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		// A socket cannot be opened at all (ENXIO); say what it is.
		// Nothing is read after this look, so it races with nothing.
		if errors.Is(err, syscall.ENXIO) {
			if st, serr := os.Stat(path); serr == nil && st.Mode()&os.ModeSocket != 0 {
				return nil, fileProblem(path, "is a socket, not a regular file")
			}
		}
		return nil, fmt.Errorf("read topology: %w: %w", ErrUnreadable, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read topology: %w: %w", ErrUnreadable, err)
	}
	if kind := notRegular(st.Mode()); kind != "" {
		return nil, fileProblem(path, "is "+kind+", not a regular file")
	}
	if st.Size() > MaxFileSize {
		return nil, fileProblem(path, fmt.Sprintf("is %s; a topology may be at most %s", sizeString(st.Size()), sizeString(MaxFileSize)))
	}
	// The size can change between fstat and read (a file still being
	// written, or /proc files that report 0): the limit is what counts.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read topology: %w: %w", ErrUnreadable, err)
	}
	if len(data) > MaxFileSize {
		return nil, fileProblem(path, fmt.Sprintf("is larger than %s, the most a topology may be", sizeString(MaxFileSize)))
	}
	return data, nil
}

// notRegular names the kind of a file that is not a regular file, or "".
func notRegular(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return ""
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "a special file (" + m.Type().String() + ")"
}

// fileProblem is a problem of the file as a whole: no position in it.
func fileProblem(path, msg string) error {
	return &InvalidError{Problems: []Problem{{File: path, Msg: msg}}}
}

// sizeString writes a byte count the way people read file sizes.
func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
