package ping

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labctl/labctl/emulator/applet/internal/applettest"
	"github.com/labctl/labctl/internal/nstest"
)

// What differs between two runs of the same ping: round-trip times, the
// run's duration and -D's clock. Everything else must match iputils.
var pingNoise = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`time=[0-9.]+ ms`), "time=T ms"},
	{regexp.MustCompile(`time [0-9]+ms`), "time Nms"},
	{regexp.MustCompile(`(rtt min/avg/max/mdev =|ipg/ewma) [0-9./]+ ms`), "$1 T ms"},
	// A reply that came after the next echo left (on a loaded machine)
	// makes iputils report its "pipe" of echoes in flight.
	{regexp.MustCompile(`, pipe [0-9]+`), ""},
	{regexp.MustCompile(`\[[0-9]+\.[0-9]{6}\] `), "[S.U] "},
}

func normalizePing(s string) string {
	for _, n := range pingNoise {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// comparePing fails t unless the applet's run printed what iputils' did
// and exited as it did, noise aside. Messages start with the name ping was
// called by, a path here: real's and applet's.
func comparePing(t *testing.T, args []string, real, applet string, got, want applettest.Result) {
	t.Helper()
	want.Stderr = strings.ReplaceAll(want.Stderr, real+": ", "ping: ")
	got.Stderr = strings.ReplaceAll(got.Stderr, applet+": ", "ping: ")
	want.Stdout, got.Stdout = normalizePing(want.Stdout), normalizePing(got.Stdout)
	if got != want {
		t.Errorf("ping %s\napplet (exit %d):\n%s%s\niputils (exit %d):\n%s%s",
			strings.Join(args, " "), got.Code, got.Stdout, got.Stderr, want.Code, want.Stdout, want.Stderr)
	}
}

// The applet prints what iputils prints and exits as it does, for the
// same command against the same network: run each in a fresh copy of the
// network, so that neither learns a path MTU or a failed neighbour from
// the other.
func TestLikeIputils(t *testing.T) {
	nstest.NeedRoot(t)
	real := realPing(t)
	applet := applettest.Link(t, "ping")
	// Where an answer must come before the next echo leaves (or iputils
	// counts a "pipe"), the interval leaves room for a loaded machine.
	tests := []struct {
		name string
		args []string
		// firstLine compares only the first line of stderr: the usage
		// text after it lists the applet's own options.
		firstLine bool
	}{
		{"two echoes", []string{"-c2", "-i0.2", "10.99.2.2"}, false},
		{"options after the address", []string{"10.99.2.2", "-c", "2", "-i", "0.2"}, false},
		{"bundled quiet", []string{"-qc2", "-i", "0.2", "10.99.2.2"}, false},
		{"ttl exceeded", []string{"-c", "2", "-i", "0.5", "-t", "1", "10.99.2.2"}, false},
		{"host unreachable", []string{"-c", "3", "-i", "0.2", "10.99.2.9"}, false},
		{"net unreachable", []string{"-c1", "20.0.0.1"}, false},
		{"frag needed then fragments", []string{"-c", "2", "-i", "0.5", "-s", "1472", "10.99.2.2"}, false},
		{"pmtu do", []string{"-c", "3", "-i", "0.5", "-M", "do", "-s", "1472", "10.99.2.2"}, false},
		{"pmtu dont", []string{"-c", "2", "-i", "0.3", "-M", "dont", "-s", "1472", "10.99.2.2"}, false},
		{"too small to time", []string{"-c1", "-s", "8", "10.99.2.2"}, false},
		{"empty payload", []string{"-c1", "-s0", "10.99.2.2"}, false},
		{"from a device", []string{"-c1", "-I", "a0", "10.99.2.2"}, false},
		{"from an address", []string{"-c1", "-I", "10.99.1.2", "10.99.2.2"}, false},
		{"timestamps", []string{"-D", "-c2", "-i0.2", "10.99.2.2"}, false},
		// Echoes are due well before or after the deadline, so that a
		// loaded machine sends as many as an idle one.
		{"deadline without count", []string{"-w", "1", "-i", "0.4", "10.99.2.2"}, false},
		{"deadline cuts count short", []string{"-c", "2", "-w", "2", "-i", "0.4", "10.99.2.9"}, false},
		{"deadline and count met", []string{"-c", "2", "-w", "2", "-i", "0.4", "10.99.2.2"}, false},
		{"no wait between echoes", []string{"-c", "3", "-i", "0", "10.99.2.2"}, false},
		{"linger", []string{"-c1", "-W", "0.5", "10.99.1.9"}, false},
		{"numeric", []string{"-n", "-c1", "10.99.2.2"}, false},
		{"short address", []string{"-c1", "10.99.2.2", "-4"}, false},
		{"garbage interval", []string{"-c", "2", "-i", "0.1x", "10.99.2.2"}, false},
		{"wrong device", []string{"-c1", "-W0.5", "-I", "lo", "10.99.2.2"}, false},
		{"no such device", []string{"-c1", "-I", "eth9", "10.99.2.2"}, false},
		{"bad ttl", []string{"-c1", "-t", "0", "10.99.2.2"}, false},
		{"zero count", []string{"-c", "0", "10.99.2.2"}, false},
		{"bad count", []string{"-c", "x", "10.99.2.2"}, false},
		{"ttl out of range", []string{"-t", "300", "10.99.2.2"}, false},
		{"bad pmtu", []string{"-M", "probe", "10.99.2.2"}, false},
		{"bad linger", []string{"-W", "-1", "10.99.2.2"}, false},
		{"no destination", nil, false},
		{"own address", []string{"-c", "2", "-i", "0.2", "10.99.1.2"}, false},
		{"loopback", []string{"-c", "2", "-i", "0.2", "127.0.0.1"}, false},
		{"unknown option", []string{"-Z", "10.99.2.2"}, true},
		{"missing argument", []string{"10.99.2.2", "-c"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := runIn(t, newRoute(t).a, real, tt.args...)
			got := runIn(t, newRoute(t).a, applet, tt.args...)
			if tt.firstLine {
				want.Stderr, _, _ = strings.Cut(want.Stderr, "\n")
				got.Stderr, _, _ = strings.Cut(got.Stderr, "\n")
			}
			comparePing(t, tt.args, real, applet, got, want)
		})
	}
}

// Names resolve as for iputils: the header names the destination as
// typed (or as /etc/hosts spells it first), replies and errors name their
// sender "name (address)" unless -n, with the address for a name when no
// name is known. Each run gets its own /etc/hosts and /etc/resolv.conf
// in a mount namespace of its own (unshare -m).
func TestLikeIputilsNames(t *testing.T) {
	nstest.NeedRoot(t)
	real := realPing(t)
	applet := applettest.Link(t, "ping")
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n10.99.2.2 pod-b.lab pod-b\n10.99.1.1 router\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A name server that refuses at once: nothing leaves the namespace.
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	withFiles := func(prog string, args []string) []string {
		return append([]string{"-m", "sh", "-c", `mount --bind "$HOSTS" /etc/hosts && mount --bind "$RESOLV" /etc/resolv.conf && exec "$0" "$@"`, prog}, args...)
	}
	env := []string{"HOSTS=" + hosts, "RESOLV=" + resolv}
	for _, args := range [][]string{
		{"-c1", "pod-b"},
		{"-c1", "pod-b.lab"},
		{"-c1", "-n", "pod-b"},
		{"-c1", "-t1", "pod-b"},
		{"-c2", "-i0.2", "-q", "pod-b"},
		{"-c1", "router"},
		{"-c1", "nosuch"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			want := applettest.Run(t, newRoute(t).a, "unshare", env, withFiles(real, args)...)
			got := applettest.Run(t, newRoute(t).a, "unshare", env, withFiles(applet, args)...)
			comparePing(t, args, real, applet, got, want)
		})
	}
}

// Interrupted (Ctrl-C), ping prints its statistics and exits by them.
func TestInterruptLikeIputils(t *testing.T) {
	nstest.NeedRoot(t)
	real := realPing(t)
	applet := applettest.Link(t, "ping")
	interrupted := func(prog string) (string, int) {
		cmd := exec.Command("ip", "netns", "exec", newRoute(t).a, prog, "-i", "0.5", "10.99.2.2")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1300 * time.Millisecond) // echoes at 0, 0.5 and 1 s
		_ = cmd.Process.Signal(os.Interrupt)
		err := cmd.Wait()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		}
		return normalizePing(out.String()), code
	}
	want, wantCode := interrupted(real)
	got, gotCode := interrupted(applet)
	if got != want || gotCode != wantCode || !strings.Contains(got, "3 packets transmitted, 3 received") {
		t.Errorf("interrupted applet (exit %d):\n%s\niputils (exit %d):\n%s", gotCode, got, wantCode, want)
	}
}
