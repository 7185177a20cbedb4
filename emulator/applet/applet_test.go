package applet

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/helper"
)

func TestMain(m *testing.M) {
	if code, ok := helper.Main(); ok {
		os.Exit(code)
	}
	if os.Getenv("APPLETTEST_CHILD") != "" {
		os.Exit(99) // a link that ran no applet: never the tests again
	}
	os.Exit(m.Run())
}

// A link named after each applet runs it: without arguments each says what
// is missing and exits as the real one does (curl 2, iputils ping 1).
func TestLinksRunApplets(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	codes := map[string]int{"curl": 2, "ping": 1}
	for _, name := range Names() {
		link := filepath.Join(dir, name)
		if err := os.Symlink(exe, link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link)
		cmd.Env = append(os.Environ(), "APPLETTEST_CHILD=1")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != codes[name] || !strings.Contains(strings.ToLower(string(out)), name) {
			t.Errorf("%s: %v: %s", name, err, out)
		}
	}
}

// Outside containers the host's program wins; an applet serves only where
// the host has none, and other names stay not found.
func TestProgram(t *testing.T) {
	exe := func() (string, error) { return "/labctl", nil }
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	if got, err := Program("ping", exe); err != nil || got != "/labctl" {
		t.Errorf("no host ping: Program = %q, %v; want the labctl executable", got, err)
	}
	if _, err := Program("tcpdump", exe); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("no host tcpdump: %v, want exec.ErrNotFound", err)
	}
	if _, err := Program("/usr/bin/nosuch/ping", exe); err == nil {
		t.Error("a path that does not exist was resolved")
	}
	host := filepath.Join(t.TempDir(), "ping")
	if err := os.WriteFile(host, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", filepath.Dir(host)+":"+empty)
	if got, err := Program("ping", exe); err != nil || got != host {
		t.Errorf("host ping: Program = %q, %v; want %s", got, err, host)
	}
}

// StaticallyLinked tells binaries that run in any root filesystem from
// those that need the host's loader, by the ELF program headers alone.
func TestStaticallyLinked(t *testing.T) {
	const loader = "/lib64/ld-linux-x86-64.so.2"
	tests := []struct {
		name  string
		data  []byte
		wants string // "" for nil
	}{
		{"static (CGO_ENABLED=0)", elfWith(elf.PT_LOAD), ""},
		{"static PIE: dynamic section, no interpreter", elfWith(elf.PT_LOAD, elf.PT_DYNAMIC), ""},
		{"dynamically linked", elfWith(elf.PT_LOAD, elf.PT_INTERP, elf.PT_DYNAMIC), "is dynamically linked: it needs the host's loader " + loader + " and shared libraries"},
		{"a script", []byte("#!/bin/sh\necho\n"), "is not an ELF executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "labctl")
			if err := os.WriteFile(exe, tt.data, 0o755); err != nil {
				t.Fatal(err)
			}
			err := StaticallyLinked(exe)
			switch {
			case tt.wants == "" && err != nil:
				t.Errorf("StaticallyLinked: %v, want nil", err)
			case tt.wants != "" && (err == nil || !strings.Contains(err.Error(), tt.wants)):
				t.Errorf("StaticallyLinked: %v, want an error with %q", err, tt.wants)
			}
		})
	}
	if err := StaticallyLinked(filepath.Join(t.TempDir(), "nowhere")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing binary: %v, want a not-exist error", err)
	}
}

// elfWith is a minimal 64-bit little-endian ELF executable with one
// program header of each type given (no sections); PT_INTERP's contents
// name the x86-64 loader.
func elfWith(types ...elf.ProgType) []byte {
	const loader = "/lib64/ld-linux-x86-64.so.2\x00"
	hdrSize, phSize := binary.Size(elf.Header64{}), binary.Size(elf.Prog64{})
	dataOff := uint64(hdrSize + len(types)*phSize)
	h := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: uint64(hdrSize), Ehsize: uint16(hdrSize), Phentsize: uint16(phSize), Phnum: uint16(len(types)),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	for _, typ := range types {
		p := elf.Prog64{Type: uint32(typ), Flags: uint32(elf.PF_R)}
		if typ == elf.PT_INTERP {
			p.Off, p.Filesz, p.Memsz = dataOff, uint64(len(loader)), uint64(len(loader))
		}
		_ = binary.Write(&b, binary.LittleEndian, p)
	}
	b.WriteString(loader)
	return b.Bytes()
}
