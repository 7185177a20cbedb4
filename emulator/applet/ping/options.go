package ping

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// iputils' getopt string: every option iputils ping 20221126 knows, with
// ':' after those that take an argument. Parsing follows GNU getopt
// (options and operands in any order, "--" ends the options, -qc2 is -q
// -c 2), so that a mistyped command fails here as it fails there.
const optstring = "h?4bRT:6F:N:aABc:CdDe:fi:I:l:Lm:M:nOp:qQ:rs:S:t:UvVw:W:"

// supported are the options the applet implements; the rest of optstring
// is refused with a message saying so rather than silently ignored.
const supported = "h?4cDiIMnqstVwW"

// IP_MTU_DISCOVER values (linux/in.h); -1 leaves the kernel's default,
// which is what iputils does without -M.
const (
	pmtuDefault = -1
	pmtuDont    = 0
	pmtuWant    = 1
	pmtuDo      = 2
)

// options are what the command line asked for, named as in iputils.
type options struct {
	count     int64         // -c: stop after this many replies (0: until interrupted)
	interval  time.Duration // -i: between echoes; default 1s
	linger    time.Duration // -W: how long to wait for a reply when none came; default 10s
	deadline  time.Duration // -w: stop after this long, whatever happens (whole seconds)
	datalen   int           // -s: payload bytes; default 56
	ttl       int           // -t (set when ttlSet)
	ttlSet    bool
	quiet     bool   // -q
	numeric   bool   // -n
	stamps    bool   // -D
	pmtudisc  int    // -M
	device    string // -I NAME
	source    string // -I ADDRESS
	target    string
	showUsage bool // -h
	version   bool // -V
}

// exitError is a message iputils prints on stderr ("ping: " + msg) before
// exiting with code; usage adds the usage text.
type exitError struct {
	code  int
	msg   string
	usage bool
}

func (e *exitError) Error() string { return e.msg }

func fail(code int, format string, a ...any) *exitError {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

// parseArgs reads args (without the program name) as iputils' getopt loop
// does: options act in the order given, the first bad one ends the run.
func parseArgs(args []string) (*options, error) {
	o := &options{interval: time.Second, linger: 10 * time.Second, datalen: 56, pmtudisc: pmtuDefault}
	var operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(optstring, c)
			if k < 0 || c == ':' {
				return nil, &exitError{code: 2, msg: fmt.Sprintf("invalid option -- '%c'", c), usage: true}
			}
			var arg string
			if k+1 < len(optstring) && optstring[k+1] == ':' {
				switch {
				case j+1 < len(a):
					arg = a[j+1:]
				case i+1 < len(args):
					i++
					arg = args[i]
				default:
					return nil, &exitError{code: 2, msg: fmt.Sprintf("option requires an argument -- '%c'", c), usage: true}
				}
				j = len(a)
			}
			if err := o.set(c, arg); err != nil {
				return nil, err
			}
			if o.showUsage || o.version {
				return o, nil
			}
		}
	}
	switch {
	case len(operands) == 0:
		// iputils exits 1 here, not 2: error(1, EDESTADDRREQ, "usage error").
		return nil, fail(1, "usage error: Destination address required")
	case len(operands) > 1:
		// iputils takes the first operands as a loose source route.
		return nil, fail(2, "several destinations (a source route) are not supported by labctl's ping applet")
	}
	o.target = operands[0]
	return o, nil
}

func (o *options) set(c byte, arg string) error {
	if strings.IndexByte(supported, c) < 0 {
		return fail(2, "option -%c is not supported by labctl's ping applet (see ping -h)", c)
	}
	var err error
	switch c {
	case 'h', '?':
		o.showUsage = true
	case 'V':
		o.version = true
	case '4':
	case 'c':
		o.count, err = strtol(arg, 1, math.MaxInt64)
	case 'D':
		o.stamps = true
	case 'i':
		var f float64
		if f, err = strtod(arg, "bad timing interval"); err == nil {
			// iputils 20221126 only checks the upper bound; a negative
			// interval is refused as later iputils refuse it.
			if f > math.MaxInt32/1000 || f < 0 {
				return fail(2, "bad timing interval: %s", arg)
			}
			o.interval = time.Duration(int(f*1000)) * time.Millisecond
		}
	case 'I':
		if strings.Contains(arg, ":") {
			return fail(2, "IPv6 source %s: labctl's ping applet speaks IPv4 only", arg)
		}
		if _, ok := inetAton(arg); ok {
			o.source = arg
		} else {
			o.device = arg
		}
	case 'M':
		switch arg {
		case "do":
			o.pmtudisc = pmtuDo
		case "dont":
			o.pmtudisc = pmtuDont
		case "want":
			o.pmtudisc = pmtuWant
		default:
			return fail(2, "invalid -M argument: %s", arg)
		}
	case 'n':
		o.numeric = true
	case 'q':
		o.quiet = true
	case 's':
		var n int64
		n, err = strtol(arg, 0, math.MaxInt32)
		o.datalen = int(n)
	case 't':
		var n int64
		n, err = strtol(arg, 0, 255)
		o.ttl, o.ttlSet = int(n), true
	case 'w':
		var n int64
		n, err = strtol(arg, 0, math.MaxInt32)
		o.deadline = time.Duration(n) * time.Second
	case 'W':
		var f float64
		if f, err = strtod(arg, "bad linger time"); err == nil {
			if f < 0 || f > math.MaxInt32/1000 {
				return fail(2, "bad linger time: %s", arg)
			}
			o.linger = time.Duration(int(f*1000)) * time.Millisecond
		}
	}
	return err
}

// strtol is iputils' strtol_or_err: a whole decimal number in [lo, hi],
// else exit 1 (EXIT_FAILURE) with its message.
func strtol(s string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fail(1, "invalid argument: '%s': Numerical result out of range", s)
		}
		return 0, fail(1, "invalid argument: '%s'", s)
	}
	if n < lo || n > hi {
		return 0, fail(1, "invalid argument: '%s': out of range: %d <= value <= %d", s, lo, hi)
	}
	return n, nil
}

// strtod is iputils' ping_strtod: trailing garbage only earns a warning (as
// there), a value that is no number at all or not finite is an error.
func strtod(s, what string) (float64, error) {
	end := len(s)
	for end > 0 {
		if _, err := strconv.ParseFloat(s[:end], 64); err == nil {
			break
		}
		end--
	}
	if end == 0 {
		if s == "" {
			return 0, fail(2, "%s: %s", what, s)
		}
		warn("option argument contains garbage: %s", s)
		warn("this will become fatal error in the future")
		return 0, nil
	}
	f, _ := strconv.ParseFloat(s[:end], 64)
	if end < len(s) {
		warn("option argument contains garbage: %s", s[end:])
		warn("this will become fatal error in the future")
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fail(2, "%s: %s: Numerical result out of range", what, s)
	}
	return f, nil
}

// inetAton parses an IPv4 address as inet_aton(3) does: 1 to 4 parts,
// each decimal, octal (leading 0) or hex (0x), the last filling the
// remaining bytes ("10.1" is 10.0.0.1).
func inetAton(s string) ([4]byte, bool) {
	var out [4]byte
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return out, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" {
				p = "0" // "0x" alone is 0 to inet_aton
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil || p == "" {
			return out, false
		}
		vals[i] = v
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return out, false
	}
	for i := 0; i < len(vals)-1; i++ {
		if vals[i] > 255 {
			return out, false
		}
		out[i] = byte(vals[i])
	}
	for i := 3; i >= len(vals)-1; i-- {
		out[i] = byte(last)
		last >>= 8
	}
	return out, true
}
