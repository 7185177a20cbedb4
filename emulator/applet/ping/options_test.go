package ping

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	base := func(mod func(o *options)) options {
		o := options{interval: time.Second, linger: 10 * time.Second, datalen: 56, pmtudisc: pmtuDefault, target: "10.0.0.2"}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		args []string
		want options
	}{
		{[]string{"10.0.0.2"}, base(nil)},
		{[]string{"-c", "2", "10.0.0.2"}, base(func(o *options) { o.count = 2 })},
		{[]string{"-c2", "10.0.0.2"}, base(func(o *options) { o.count = 2 })},
		{[]string{"10.0.0.2", "-c", "2"}, base(func(o *options) { o.count = 2 })},             // options after the address
		{[]string{"-qc2", "10.0.0.2"}, base(func(o *options) { o.quiet, o.count = true, 2 })}, // bundled
		{[]string{"-qnDc", "3", "10.0.0.2"}, base(func(o *options) { o.quiet, o.numeric, o.stamps, o.count = true, true, true, 3 })},
		{[]string{"-i", "0.2", "-W", "1.5", "-w", "3", "10.0.0.2"}, base(func(o *options) {
			o.interval, o.linger, o.deadline = 200*time.Millisecond, 1500*time.Millisecond, 3*time.Second
		})},
		{[]string{"-i0", "10.0.0.2"}, base(func(o *options) { o.interval = 0 })},
		{[]string{"-s", "1472", "-M", "do", "10.0.0.2"}, base(func(o *options) { o.datalen, o.pmtudisc = 1472, pmtuDo })},
		{[]string{"-Mdont", "-s0", "10.0.0.2"}, base(func(o *options) { o.datalen, o.pmtudisc = 0, pmtuDont })},
		{[]string{"-M", "want", "10.0.0.2"}, base(func(o *options) { o.pmtudisc = pmtuWant })},
		{[]string{"-t", "1", "10.0.0.2"}, base(func(o *options) { o.ttl, o.ttlSet = 1, true })},
		{[]string{"-I", "eth0", "10.0.0.2"}, base(func(o *options) { o.device = "eth0" })},
		{[]string{"-I10.0.0.1", "10.0.0.2"}, base(func(o *options) { o.source = "10.0.0.1" })},
		{[]string{"-4", "--", "10.0.0.2"}, base(nil)},
		{[]string{"-c", "1", "-c", "4", "10.0.0.2"}, base(func(o *options) { o.count = 4 })}, // the last one wins
		{[]string{"-h"}, options{interval: time.Second, linger: 10 * time.Second, datalen: 56, pmtudisc: pmtuDefault, showUsage: true}},
		{[]string{"-V"}, options{interval: time.Second, linger: 10 * time.Second, datalen: 56, pmtudisc: pmtuDefault, version: true}},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("parseArgs(%q) =\n %+v, want\n %+v", tt.args, *got, tt.want)
		}
	}
}

// Bad command lines fail with iputils' messages and exit codes: 1 for a
// bad number and a missing destination, 2 for the rest.
func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args  []string
		code  int
		msg   string
		usage bool
	}{
		{nil, 1, "usage error: Destination address required", false},
		{[]string{"-c", "2"}, 1, "usage error: Destination address required", false},
		{[]string{"-c", "x", "10.0.0.2"}, 1, "invalid argument: 'x'", false},
		{[]string{"-c", "0", "10.0.0.2"}, 1, "invalid argument: '0': out of range: 1 <= value <= 9223372036854775807", false},
		{[]string{"-w", "1.5", "10.0.0.2"}, 1, "invalid argument: '1.5'", false},
		{[]string{"-t", "300", "10.0.0.2"}, 1, "invalid argument: '300': out of range: 0 <= value <= 255", false},
		{[]string{"-c", "99999999999999999999", "x"}, 1, "invalid argument: '99999999999999999999': Numerical result out of range", false},
		{[]string{"-M", "probe", "10.0.0.2"}, 2, "invalid -M argument: probe", false},
		{[]string{"-W", "-1", "10.0.0.2"}, 2, "bad linger time: -1", false},
		{[]string{"-i", "-1", "10.0.0.2"}, 2, "bad timing interval: -1", false},
		{[]string{"-i", "", "10.0.0.2"}, 2, "bad timing interval: ", false},
		{[]string{"-Z", "10.0.0.2"}, 2, "invalid option -- 'Z'", true},
		{[]string{"10.0.0.2", "-c"}, 2, "option requires an argument -- 'c'", true},
		{[]string{"-qcx", "10.0.0.2"}, 1, "invalid argument: 'x'", false},
		{[]string{"-f", "10.0.0.2"}, 2, "option -f is not supported by labctl's ping applet (see ping -h)", false},
		{[]string{"-6", "10.0.0.2"}, 2, "option -6 is not supported by labctl's ping applet (see ping -h)", false},
		{[]string{"-I", "fe80::1", "10.0.0.2"}, 2, "IPv6 source fe80::1: labctl's ping applet speaks IPv4 only", false},
		{[]string{"10.0.0.1", "10.0.0.2"}, 2, "several destinations (a source route) are not supported by labctl's ping applet", false},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args)
		var e *exitError
		if !errors.As(err, &e) {
			t.Errorf("parseArgs(%q) = %v, want exit %d %q", tt.args, err, tt.code, tt.msg)
			continue
		}
		if e.code != tt.code || e.msg != tt.msg || e.usage != tt.usage {
			t.Errorf("parseArgs(%q) = exit %d %q (usage %v), want exit %d %q (usage %v)", tt.args, e.code, e.msg, e.usage, tt.code, tt.msg, tt.usage)
		}
	}
}

func TestInetAton(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" when not an address
	}{
		{"10.0.0.2", "10.0.0.2"},
		{"10.1", "10.0.0.1"},
		{"10.1.2", "10.1.0.2"},
		{"167772162", "10.0.0.2"},
		{"0x0a000002", "10.0.0.2"},
		{"012.0.0.02", "10.0.0.2"},
		{"0", "0.0.0.0"},
		{"10.0.0.256", ""},
		{"256.0.0.1", ""},
		{"10.0.0.2.", ""},
		{"1.2.3.4.5", ""},
		{"pod2", ""},
		{"08.1.1.1", ""}, // 08 is no octal number
		{"", ""},
	}
	for _, tt := range tests {
		a, ok := inetAton(tt.in)
		got := ""
		if ok {
			got = ip4(a)
		}
		if got != tt.want {
			t.Errorf("inetAton(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Numbers look as iputils prints them.
func TestFormats(t *testing.T) {
	for us, want := range map[int64]string{0: "0.000", 53: "0.053", 999: "0.999", 1000: "1.00", 1234: "1.23", 9994: "9.99", 9995: "10.0", 12345: "12.3", 99949: "99.9", 99950: "100", 123456: "123"} {
		if got := rttText(us); got != want {
			t.Errorf("rttText(%d) = %q, want %q", us, got, want)
		}
	}
	for f, want := range map[float64]string{0: "0", 100: "100", 50: "50", float64(float32(100.0 / 3)): "33.3333", float64(float32(200.0 / 3)): "66.6667", 12.5: "12.5", 1e-5: "1e-05"} {
		if got := cFormatG(f); got != want {
			t.Errorf("cFormatG(%v) = %q, want %q", f, got, want)
		}
	}
	// iputils' Newton iteration stops one step late for some numbers (3
	// gives 2): mdev shows it, so the applet does the same.
	for a, want := range map[int64]int64{0: 0, 1: 1, 3: 2, 4: 2, 99: 10, 100: 10, 1 << 40: 1 << 20} {
		if got := llsqrt(a); got != want {
			t.Errorf("llsqrt(%d) = %d, want %d", a, got, want)
		}
	}
	for _, tt := range []struct {
		typ, code int
		info      uint32
		want      string
	}{
		{icmpDestUnreach, 1, 0, "Destination Host Unreachable\n"},
		{icmpDestUnreach, 0, 0, "Destination Net Unreachable\n"},
		{icmpDestUnreach, 4, 1450, "Frag needed and DF set (mtu = 1450)\n"},
		{icmpDestUnreach, 13, 0, "Packet filtered\n"},
		{icmpDestUnreach, 99, 0, "Dest Unreachable, Bad Code: 99\n"},
		{icmpTimeExceeded, 0, 0, "Time to live exceeded\n"},
		{icmpTimeExceeded, 1, 0, "Frag reassembly time exceeded\n"},
		{icmpParameterProb, 0, 20, "Parameter problem: pointer = 20\n"},
		{icmpRedirect, 1, 0x0a000001, "Redirect Host(New nexthop: 10.0.0.1)\n"},
		{42, 0, 0, "Bad ICMP type: 42\n"},
	} {
		if got := icmpText(tt.typ, tt.code, tt.info, nil); got != tt.want {
			t.Errorf("icmpText(%d, %d) = %q, want %q", tt.typ, tt.code, got, tt.want)
		}
	}
}

// The statistics block and exit code follow iputils' finish().
func TestFinish(t *testing.T) {
	tests := []struct {
		name string
		s    stats
		want string
		code int
	}{
		{"all answered", stats{ntransmitted: 3, nreceived: 3, tmin: 40, tmax: 70, tsum: 160, tsum2: 40*40 + 50*50 + 70*70, timing: true},
			"\n--- X ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 2003ms\nrtt min/avg/max/mdev = 0.040/0.053/0.070/0.012 ms\n", 0},
		{"errors and a pipe", stats{ntransmitted: 5, nerrors: 3, pipesize: 4, timing: true},
			"\n--- X ping statistics ---\n5 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms\npipe 4\n", 1},
		{"one of three", stats{ntransmitted: 3, nreceived: 1, nrepeats: 1, tmin: 100, tmax: 100, tsum: 200, tsum2: 2e4, timing: true},
			"\n--- X ping statistics ---\n3 packets transmitted, 1 received, +1 duplicates, 66.6667% packet loss, time 2003ms\nrtt min/avg/max/mdev = 0.100/0.100/0.100/0.000 ms\n", 0},
		{"no timing", stats{ntransmitted: 1, nreceived: 1},
			"\n--- X ping statistics ---\n1 packets transmitted, 1 received, 0% packet loss, time 2003ms\n\n", 0},
	}
	for _, tt := range tests {
		var out strings.Builder
		p := &pinger{o: &options{}, out: &out, hostname: "X", interval: 1000, stats: tt.s}
		p.startTime = time.Unix(100, 0)
		p.curTime = p.startTime.Add(2003 * time.Millisecond)
		if code := p.finish(); code != tt.code || out.String() != tt.want {
			t.Errorf("%s: finish() = %d\n%q, want %d\n%q", tt.name, code, out.String(), tt.code, tt.want)
		}
	}
	// With -w, fewer replies than -c asked is a failure too.
	p := &pinger{o: &options{count: 3, deadline: time.Second}, out: &strings.Builder{}, stats: stats{ntransmitted: 3, nreceived: 2}}
	if code := p.finish(); code != 1 {
		t.Errorf("-c 3 -w 1 with 2 replies: exit %d, want 1", code)
	}
	p = &pinger{o: &options{count: 3}, out: &strings.Builder{}, stats: stats{ntransmitted: 3, nreceived: 2}}
	if code := p.finish(); code != 0 {
		t.Errorf("-c 3 with 2 replies: exit %d, want 0 (as iputils)", code)
	}
}
