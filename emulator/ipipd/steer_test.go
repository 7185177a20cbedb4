package ipipd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

// TestSteerProgram runs the steering program on frames (BPF_PROG_TEST_RUN,
// which reports the verdict but redirects nothing) and checks that only
// IPIP for this host is steered, that everything else continues untouched,
// and that both are counted. (A test run wants whole IPv4 headers, so the
// path for headers outside the linear part is not run here.)
func TestSteerProgram(t *testing.T) {
	nstest.NeedRoot(t)
	ns := netns.Path(nstest.AddNamespace(t, nstest.Unique(nsPrefix)+"-steer"))
	const target = 7                 // any ifindex: a test run does not redirect
	host := []byte{0, 0, 0, 0, 0, 0} // the test run's device is lo, whose address is zero
	other := []byte{2, 0, 0, 0, 0, 1}
	ipv4 := func(dst []byte, proto byte, size int) []byte {
		f := make([]byte, size)
		copy(f, dst)
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
		if size > ipProtoOff {
			f[14] = 0x45
			f[ipProtoOff] = proto
		}
		return f
	}
	frame := func(dst []byte, ethType uint16, size int) []byte {
		f := make([]byte, size)
		copy(f, dst)
		binary.BigEndian.PutUint16(f[12:], ethType)
		return f
	}
	tests := []struct {
		name  string
		frame []byte
		steer bool
	}{
		{"ipip", ipv4(host, unix.IPPROTO_IPIP, 14+20+20+40), true},
		{"ipip, bare header", ipv4(host, unix.IPPROTO_IPIP, 14+20), true},
		{"tcp", ipv4(host, unix.IPPROTO_TCP, 1514), false},
		{"udp (vxlan)", ipv4(host, unix.IPPROTO_UDP, 1514), false},
		{"icmp", ipv4(host, unix.IPPROTO_ICMP, 98), false},
		{"ipip for another host's MAC", ipv4(other, unix.IPPROTO_IPIP, 100), false},
		{"ipip broadcast", ipv4([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, unix.IPPROTO_IPIP, 100), false},
		{"arp", frame(host, unix.ETH_P_ARP, 42), false},
		{"ipv6 next header 4", func() []byte {
			f := frame(host, unix.ETH_P_IPV6, 100)
			f[ipProtoOff] = unix.IPPROTO_IPIP
			return f
		}(), false},
	}
	err := netns.Do(ns, func() error {
		cpus, err := possibleCPUs()
		if err != nil {
			return err
		}
		counters, err := newPerCPUArray("ipipd_test", steerValue, steerSlots)
		if err != nil {
			return err
		}
		defer unix.Close(counters)
		prog, err := steerProgram(counters, target)
		if err != nil {
			return err
		}
		fd, err := loadProgram("ipipd_test", unix.BPF_PROG_TYPE_SCHED_CLS, unix.BPF_TCX_INGRESS, prog)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var want steerCounts
		for _, tt := range tests {
			ret, out, err := testRun(fd, tt.frame)
			if err != nil {
				return fmt.Errorf("%s: test run: %w", tt.name, err)
			}
			verdict := int32(tcxNext)
			if tt.steer {
				verdict = 7 // TC_ACT_REDIRECT, as bpf_redirect returns it
				want.steeredPackets++
				want.steeredBytes += uint64(len(tt.frame))
			} else {
				want.passedPackets++
				want.passedBytes += uint64(len(tt.frame))
			}
			if int32(ret) != verdict {
				t.Errorf("%s: verdict %d, want %d", tt.name, int32(ret), verdict)
			}
			if !reflect.DeepEqual(out, tt.frame) {
				t.Errorf("%s: the program changed the frame", tt.name)
			}
		}
		got, err := readSteerCounts(counters, cpus)
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("counted %+v, want %+v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testRun runs a tc program once on frame and returns its verdict and
// the frame as the program left it.
func testRun(prog int, frame []byte) (uint32, []byte, error) {
	in := append([]byte(nil), frame...)
	out := make([]byte, len(frame)+256)
	attr := struct {
		progFd, retval, dataSizeIn, dataSizeOut uint32
		dataIn, dataOut                         uint64
		repeat, duration                        uint32
		_                                       [40]byte
	}{
		progFd:      uint32(prog),
		dataSizeIn:  uint32(len(in)),
		dataSizeOut: uint32(len(out)),
		dataIn:      uint64(uintptr(unsafe.Pointer(&in[0]))),
		dataOut:     uint64(uintptr(unsafe.Pointer(&out[0]))),
		repeat:      1,
	}
	_, err := bpf(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(in)
	runtime.KeepAlive(out)
	if err != nil {
		return 0, nil, err
	}
	return attr.retval, out[:attr.dataSizeOut], nil
}

// TestDropsTotal makes sure a new drop reason is not left out of Total.
func TestDropsTotal(t *testing.T) {
	var d Drops
	v := reflect.ValueOf(&d).Elem()
	for i := range v.NumField() {
		v.Field(i).SetUint(1)
	}
	if got := d.Total(); got != uint64(v.NumField()) {
		t.Errorf("Total of %d reasons at 1 each = %d", v.NumField(), got)
	}
}

// TestStatsFile writes and reads the stats file and checks that writing
// leaves no temporary file and that a symlink is not followed.
func TestStatsFile(t *testing.T) {
	dir := t.TempDir()
	path := StatsFileFor(filepath.Join(dir, "node1-ipip.log"))
	if filepath.Base(path) != "node1-ipip.stats.json" {
		t.Errorf("StatsFileFor: %s", path)
	}
	want := Stats{Time: time.Now().Round(0), Device: "tunl0", DecapPackets: 7,
		Steering: &Steering{Device: "eth0", Target: "tunl0-gro", SteeredPackets: 7, PassedPackets: 3},
		Drops:    Drops{UnknownPeer: 1}}
	for range 2 {
		if err := WriteStatsFile(path, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadStatsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(want.Time) || got.Steering == nil || *got.Steering != *want.Steering || got.Drops != want.Drops || got.DecapPackets != 7 {
		t.Errorf("read %+v, wrote %+v", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d files, want the stats file alone", len(entries))
	}
	if _, err := ReadStatsFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStatsFile(link); err == nil {
		t.Error("a symlink was followed")
	}
}
