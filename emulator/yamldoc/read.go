package yamldoc

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ReadFile reads a document file: one open, an fstat of what was opened,
// then at most the format's MaxSize+1 bytes, so what is checked is what is read. What
// cannot be a document (a FIFO, a device, a directory, a socket, a file too
// large) is an *InvalidError naming the file, like any other problem of
// the document; a file that cannot be read at all (missing, not permitted)
// is the operating system's error, which callers wrap with their own.
func ReadFile(path string, f Format) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer forever. It changes nothing for regular files.
	file, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		// A socket cannot be opened at all (ENXIO); say what it is.
		// Nothing is read after this look, so it races with nothing.
		if errors.Is(err, syscall.ENXIO) {
			if st, serr := os.Stat(path); serr == nil && st.Mode()&os.ModeSocket != 0 {
				return nil, fileError(path, "is a socket, not a regular file")
			}
		}
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if kind := notRegular(st.Mode()); kind != "" {
		return nil, fileError(path, "is "+kind+", not a regular file")
	}
	limit := f.maxSize()
	if st.Size() > limit {
		return nil, fileError(path, fmt.Sprintf("is %s; %s may be at most %s", sizeString(st.Size()), f.Noun, sizeString(limit)))
	}
	// The size can change between fstat and read (a file still being
	// written, or /proc files that report 0): the limit is what counts.
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fileError(path, fmt.Sprintf("is larger than %s, the most %s may be", sizeString(limit), f.Noun))
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

// fileError is a problem of the file as a whole: no position in it.
func fileError(path, msg string) error {
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
