package ipipd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The few bpf(2) commands receive offload needs (steer.go), without a BPF
// library: one array map, one program of a dozen instructions, one link.
// Every attribute struct below is a prefix of union bpf_attr; the kernel
// zero-checks the rest, so each is padded with zeros up to the size given.
// The kernel opens every BPF file descriptor close-on-exec.

// insn is one eBPF instruction (struct bpf_insn).
type insn struct {
	code     uint8
	dst, src uint8 // registers 0-10
	off      int16
	imm      int32
}

// The encodings used here (include/uapi/linux/bpf.h, bpf_common.h).
const (
	opLdxW    = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W
	opLdxB    = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_B
	opLdxDW   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_DW
	opStxDW   = unix.BPF_STX | unix.BPF_MEM | unix.BPF_DW
	opStxW    = unix.BPF_STX | unix.BPF_MEM | unix.BPF_W
	opMovK    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
	opMovX    = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
	opAddK    = unix.BPF_ALU64 | unix.BPF_ADD | unix.BPF_K
	opAddX    = unix.BPF_ALU64 | unix.BPF_ADD | unix.BPF_X
	opJeqK    = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJneK    = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
	opJgtX    = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_X
	opJa      = unix.BPF_JMP | unix.BPF_JA
	opCall    = unix.BPF_JMP | unix.BPF_CALL
	opExit    = unix.BPF_JMP | unix.BPF_EXIT
	opLdImm64 = unix.BPF_LD | unix.BPF_IMM | unix.BPF_DW

	// Helper function ids (enum bpf_func_id).
	fnMapLookupElem = 1
	fnRedirect      = 23
	fnSkbLoadBytes  = 26
)

// encode lays the instructions out as the kernel reads them.
func encode(prog []insn) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, i := range prog {
		b = append(b, i.code, i.dst&0x0f|i.src<<4)
		b = binary.NativeEndian.AppendUint16(b, uint16(i.off))
		b = binary.NativeEndian.AppendUint32(b, uint32(i.imm))
	}
	return b
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD {
			continue // the verifier may be interrupted, or starved of memory for a moment
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// newPerCPUArray creates a BPF_MAP_TYPE_PERCPU_ARRAY of n values of size
// bytes each (a multiple of 8), keyed 0..n-1.
func newPerCPUArray(name string, size, n uint32) (int, error) {
	attr := struct {
		mapType, keySize, valueSize, maxEntries, mapFlags, innerMapFd, numaNode uint32
		mapName                                                                 [unix.BPF_OBJ_NAME_LEN]byte
		_                                                                       [40]byte
	}{mapType: unix.BPF_MAP_TYPE_PERCPU_ARRAY, keySize: 4, valueSize: size, maxEntries: n}
	copy(attr.mapName[:unix.BPF_OBJ_NAME_LEN-1], name)
	fd, err := bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("create BPF map: %w", err)
	}
	return fd, nil
}

// lookupPerCPU reads the value at key of a per-CPU array: one value of
// size bytes per possible CPU, each padded to 8 bytes.
func lookupPerCPU(fd int, key, size uint32, cpus int) ([]byte, error) {
	stride := (size + 7) &^ 7
	out := make([]byte, int(stride)*cpus)
	k := key
	attr := struct {
		mapFd uint32
		_     uint32
		key   uint64
		value uint64
		flags uint64
	}{
		mapFd: uint32(fd),
		key:   uint64(uintptr(unsafe.Pointer(&k))),
		value: uint64(uintptr(unsafe.Pointer(&out[0]))),
	}
	_, err := bpf(unix.BPF_MAP_LOOKUP_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&k)
	runtime.KeepAlive(out)
	return out, err
}

// loadProgram loads a program of type typ for attachType and returns its
// file descriptor; when the verifier refuses it, the error carries the
// verifier's last words. Instructions and license are read through plain
// addresses, so they are kept alive across the call.
func loadProgram(name string, typ, attachType uint32, prog []insn) (int, error) {
	code := encode(prog)
	license := []byte("GPL\x00")
	log := make([]byte, 1<<16)
	attr := struct {
		progType, insnCnt  uint32
		insns, license     uint64
		logLevel, logSize  uint32
		logBuf             uint64
		kernVersion        uint32
		progFlags          uint32
		progName           [unix.BPF_OBJ_NAME_LEN]byte
		progIfindex        uint32
		expectedAttachType uint32
		_                  [64]byte
	}{
		progType:           typ,
		insnCnt:            uint32(len(prog)),
		insns:              uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		expectedAttachType: attachType,
	}
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL) {
		// Load again with the verifier's log, to say why.
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		if _, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err2 != nil {
			if msg := verifierTail(log); msg != "" {
				err = fmt.Errorf("%w: %s", err, msg)
			}
		}
	}
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(log)
	if err != nil {
		return -1, fmt.Errorf("load BPF program %q: %w", name, err)
	}
	return fd, nil
}

// verifierTail is the last few lines of a verifier log: where it stopped.
func verifierTail(log []byte) string {
	if i := strings.IndexByte(string(log), 0); i >= 0 {
		log = log[:i]
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], "; ")
}

// attachLink attaches prog to the device ifindex of the calling thread's
// namespace through a BPF link. A link, unlike a netlink or tc filter
// attachment, never replaces another program and goes away with its file
// descriptor, so a datapath that dies leaves nothing attached.
func attachLink(prog, ifindex int, attachType, flags uint32) (int, error) {
	attr := struct {
		progFd, targetIfindex, attachType, flags uint32
		_                                        [48]byte // the rest of link_create, zero
	}{progFd: uint32(prog), targetIfindex: uint32(ifindex), attachType: attachType, flags: flags}
	fd, err := bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, fmt.Errorf("attach BPF program: %w", err)
	}
	return fd, nil
}

// possibleCPUs is how many values a per-CPU map holds per key: one per
// CPU that may ever come online (/sys/devices/system/cpu/possible, "0-3").
func possibleCPUs() (int, error) {
	data, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range strings.Split(strings.TrimSpace(string(data)), ",") {
		lo, hi, found := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("parse possible CPUs %q: %w", data, err)
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("parse possible CPUs %q: %w", data, err)
			}
		}
		n += b - a + 1
	}
	if n == 0 {
		return 0, fmt.Errorf("no possible CPUs in %q", data)
	}
	return n, nil
}
