package curl

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// kind says what an option does with its argument.
type kind int

const (
	flag    kind = iota // a boolean: --name sets it, --no-name clears it
	value               // takes one argument
	refused             // curl has it, the applet does not
)

// option is one entry of the applet's option table, named as in curl.
type option struct {
	long  string
	short byte
	kind  kind
	set   func(c *config, arg string, on bool) error
}

// config is the command line, as curl's OperationConfig: every URL of the
// run shares it.
type config struct {
	urls    []string
	outputs []string // -o, one per URL in order

	verbose, silent, showError, include, head, fail, failWithBody bool
	location, insecure, get, noProgress, http10                   bool
	retryConnRefused, retryAllErrors                              bool

	dumpHeader, method, writeOut, referer, user string
	userAgent                                   *string // nil: curl's own
	headers                                     []string
	data                                        []string // each -d part, already read
	dataSet                                     bool
	httpreq                                     httpReq
	proxy, noproxy                              *string
	resolve                                     []string
	maxTime, connectTimeout                     time.Duration
	retry                                       int
	retryDelay, retryMaxTime                    time.Duration
	maxRedirs                                   int
	help, version                               bool
}

// httpReq is the kind of request the options asked for, as curl's HttpReq:
// asking for two kinds is an error.
type httpReq int

const (
	reqUnspec httpReq = iota
	reqGet
	reqHead
	reqForm
	reqPost
	reqPut
)

var reqNames = [...]string{"", "GET (-G, --get)", "HEAD (-I, --head)", "multipart formpost (-F, --form)", "POST (-d, --data)", "PUT (-T, --upload-file)"}

// paramError is a bad option: curl prints "curl: option X: <reason>" and
// its hint, and exits 2.
type paramError struct {
	opt, reason string
}

func (e *paramError) Error() string {
	if e.opt == "" {
		return e.reason
	}
	return fmt.Sprintf("option %s: %s", e.opt, e.reason)
}

const (
	reasonUnknown   = "is unknown"
	reasonAmbiguous = "is ambiguous"
	reasonParameter = "requires parameter"
	reasonBadUse    = "is badly used here"
	reasonNumeric   = "expected a proper numerical parameter"
	reasonNegative  = "expected a positive numerical parameter"
	reasonNoBoolean = "used '--no-' for option that isn't a boolean"
)

func boolOpt(long string, short byte, field func(c *config) *bool) option {
	return option{long, short, flag, func(c *config, _ string, on bool) error { *field(c) = on; return nil }}
}

func strOpt(long string, short byte, field func(c *config) *string) option {
	return option{long, short, value, func(c *config, arg string, _ bool) error { *field(c) = arg; return nil }}
}

func secondsOpt(long string, short byte, field func(c *config) *time.Duration) option {
	return option{long, short, value, func(c *config, arg string, _ bool) error {
		f, err := strconv.ParseFloat(arg, 64)
		switch {
		case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			return &paramError{reason: reasonNumeric}
		case f < 0:
			return &paramError{reason: reasonNegative}
		}
		*field(c) = time.Duration(f * float64(time.Second))
		return nil
	}}
}

func countOpt(long string, field func(c *config) *int) option {
	return option{long, 0, value, func(c *config, arg string, _ bool) error {
		n, err := strconv.ParseInt(arg, 10, 64)
		switch {
		case err != nil:
			return &paramError{reason: reasonNumeric}
		case n < 0 && long != "max-redirs":
			return &paramError{reason: reasonNegative}
		case n > math.MaxInt32:
			return &paramError{reason: "too large number"}
		}
		*field(c) = int(n)
		return nil
	}}
}

// dataOpt adds to the request body as curl's -d family: parts are joined
// with '&'; "@file" reads a file ("-" is stdin), -d dropping its CRs and
// newlines, --data-binary keeping them, --data-raw taking '@' literally.
func dataOpt(long string, short byte, how string) option {
	return option{long, short, value, func(c *config, arg string, _ bool) error {
		if how != "raw" && strings.HasPrefix(arg, "@") {
			b, err := readArgFile(arg[1:])
			if err != nil {
				warnf(c, "Couldn't read data from file \"%s\", this makes an empty POST.\n", arg[1:])
				b = nil
			}
			if how == "ascii" {
				b = []byte(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
			}
			arg = string(b)
		}
		if how == "urlencode" {
			arg = urlencodeData(arg)
		}
		// The kind of request is settled after parsing: -G may come later.
		c.data = append(c.data, arg)
		c.dataSet = true
		return nil
	}}
}

func readArgFile(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// options lists what the applet takes; the names are curl's.
var options = []option{
	boolOpt("verbose", 'v', func(c *config) *bool { return &c.verbose }),
	boolOpt("silent", 's', func(c *config) *bool { return &c.silent }),
	boolOpt("show-error", 'S', func(c *config) *bool { return &c.showError }),
	boolOpt("include", 'i', func(c *config) *bool { return &c.include }),
	{"head", 'I', flag, func(c *config, _ string, on bool) error {
		c.head = on
		c.include = on
		if on {
			return c.setRequest(reqHead)
		}
		return c.setRequest(reqGet)
	}},
	boolOpt("fail", 'f', func(c *config) *bool { return &c.fail }),
	boolOpt("fail-with-body", 0, func(c *config) *bool { return &c.failWithBody }),
	boolOpt("location", 'L', func(c *config) *bool { return &c.location }),
	boolOpt("insecure", 'k', func(c *config) *bool { return &c.insecure }),
	{"get", 'G', flag, func(c *config, _ string, on bool) error { c.get = on; return nil }},
	{"no-progress-meter", 0, flag, func(c *config, _ string, on bool) error { c.noProgress = on; return nil }},
	{"progress-meter", 0, flag, func(c *config, _ string, on bool) error { c.noProgress = !on; return nil }},
	boolOpt("http1.0", '0', func(c *config) *bool { return &c.http10 }),
	{"http1.1", 0, flag, func(c *config, _ string, on bool) error { c.http10 = false; return nil }},
	{"ipv4", '4', flag, func(*config, string, bool) error { return nil }},
	{"tcp-nodelay", 0, flag, func(*config, string, bool) error { return nil }},
	{"no-buffer", 'N', flag, func(*config, string, bool) error { return nil }},
	{"disable", 'q', flag, func(*config, string, bool) error { return nil }},
	{"globoff", 'g', flag, func(*config, string, bool) error { return nil }}, // the applet never globs
	{"junk-session-cookies", 'j', flag, func(*config, string, bool) error { return nil }},
	boolOpt("retry-connrefused", 0, func(c *config) *bool { return &c.retryConnRefused }),
	boolOpt("retry-all-errors", 0, func(c *config) *bool { return &c.retryAllErrors }),
	{"output", 'o', value, func(c *config, arg string, _ bool) error { c.outputs = append(c.outputs, arg); return nil }},
	strOpt("dump-header", 'D', func(c *config) *string { return &c.dumpHeader }),
	strOpt("request", 'X', func(c *config) *string { return &c.method }),
	{"write-out", 'w', value, func(c *config, arg string, _ bool) error {
		if strings.HasPrefix(arg, "@") {
			b, err := readArgFile(arg[1:])
			if err != nil {
				warnf(c, "Failed to read %s", arg[1:])
			}
			arg = string(b)
		}
		c.writeOut = arg
		return nil
	}},
	strOpt("referer", 'e', func(c *config) *string { return &c.referer }),
	strOpt("user", 'u', func(c *config) *string { return &c.user }),
	{"user-agent", 'A', value, func(c *config, arg string, _ bool) error { c.userAgent = &arg; return nil }},
	{"header", 'H', value, func(c *config, arg string, _ bool) error {
		if strings.HasPrefix(arg, "@") {
			b, err := readArgFile(arg[1:])
			if err != nil {
				return &paramError{reason: "error encountered when reading a file"}
			}
			for _, line := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
				if line != "" {
					c.headers = append(c.headers, line)
				}
			}
			return nil
		}
		c.headers = append(c.headers, arg)
		return nil
	}},
	dataOpt("data", 'd', "ascii"),
	dataOpt("data-ascii", 0, "ascii"),
	dataOpt("data-binary", 0, "binary"),
	dataOpt("data-raw", 0, "raw"),
	dataOpt("data-urlencode", 0, "urlencode"),
	{"url", 0, value, func(c *config, arg string, _ bool) error { c.urls = append(c.urls, arg); return nil }},
	{"proxy", 'x', value, func(c *config, arg string, _ bool) error { c.proxy = &arg; return nil }},
	{"noproxy", 0, value, func(c *config, arg string, _ bool) error { c.noproxy = &arg; return nil }},
	{"resolve", 0, value, func(c *config, arg string, _ bool) error { c.resolve = append(c.resolve, arg); return nil }},
	secondsOpt("max-time", 'm', func(c *config) *time.Duration { return &c.maxTime }),
	secondsOpt("connect-timeout", 0, func(c *config) *time.Duration { return &c.connectTimeout }),
	countOpt("retry", func(c *config) *int { return &c.retry }),
	secondsOpt("retry-delay", 0, func(c *config) *time.Duration { return &c.retryDelay }),
	secondsOpt("retry-max-time", 0, func(c *config) *time.Duration { return &c.retryMaxTime }),
	countOpt("max-redirs", func(c *config) *int { return &c.maxRedirs }),
	{"help", 'h', flag, func(c *config, _ string, _ bool) error { c.help = true; return nil }},
	{"version", 'V', flag, func(c *config, _ string, _ bool) error { c.version = true; return nil }},
	// curl's that the applet lacks: said plainly rather than ignored.
	{"remote-name", 'O', refused, nil},
	{"upload-file", 'T', refused, nil},
	{"form", 'F', refused, nil},
	{"cookie", 'b', refused, nil},
	{"cookie-jar", 'c', refused, nil},
	{"continue-at", 'C', refused, nil},
	{"range", 'r', refused, nil},
	{"config", 'K', refused, nil},
	{"trace", 0, refused, nil},
	{"trace-ascii", 0, refused, nil},
	{"compressed", 0, refused, nil},
	{"http2", 0, refused, nil},
	{"ipv6", '6', refused, nil},
	{"interface", 0, refused, nil},
	{"limit-rate", 0, refused, nil},
	{"speed-limit", 'Y', refused, nil},
	{"speed-time", 'y', refused, nil},
	{"cacert", 0, refused, nil},
	{"cert", 'E', refused, nil},
	{"next", ':', refused, nil},
	{"parallel", 'Z', refused, nil},
	{"progress-bar", '#', refused, nil},
	{"stderr", 0, refused, nil},
	{"unix-socket", 0, refused, nil},
	{"connect-to", 0, refused, nil},
}

// parseArgs reads the command line as curl's parse_args: long options by
// name or unambiguous prefix (--verb is --verbose), --no-name for
// booleans, short ones bundled (-sSL) with a value attached or next
// (-ofile, -o file); everything else is a URL.
func parseArgs(args []string) (*config, error) {
	c := &config{maxRedirs: 50}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func(opt string) (string, error) {
			if i+1 >= len(args) {
				return "", &paramError{opt, reasonParameter}
			}
			i++
			return args[i], nil
		}
		switch {
		case strings.HasPrefix(a, "--") && len(a) > 2:
			name, on := a[2:], true
			o, reason := findLong(name)
			if o == nil && strings.HasPrefix(name, "no-") {
				if o2, _ := findLong(name[3:]); o2 != nil {
					if o2.kind != flag {
						return nil, &paramError{a, reasonNoBoolean}
					}
					o, on, reason = o2, false, ""
				}
			}
			if o == nil {
				return nil, &paramError{a, reason}
			}
			var arg string
			if o.kind == value {
				v, err := next(a)
				if err != nil {
					return nil, err
				}
				arg = v
			}
			if err := c.apply(o, a, arg, on); err != nil {
				return nil, err
			}
		case a == "--":
			c.urls = append(c.urls, args[i+1:]...)
			return c, nil
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// curl names the whole word in its messages: "option -sY: ...".
			opt := a
			for j := 1; j < len(a); j++ {
				o := findShort(a[j])
				if o == nil {
					return nil, &paramError{opt, reasonUnknown}
				}
				var arg string
				if o.kind == value {
					if j+1 < len(a) {
						arg = a[j+1:]
					} else {
						v, err := next(opt)
						if err != nil {
							return nil, err
						}
						arg = v
					}
					j = len(a)
				}
				if err := c.apply(o, opt, arg, true); err != nil {
					return nil, err
				}
			}
		default:
			c.urls = append(c.urls, a)
		}
	}
	return c, nil
}

func (c *config) apply(o *option, name, arg string, on bool) error {
	if o.kind == refused {
		return &paramError{name, "is not supported by labctl's curl applet"}
	}
	err := o.set(c, arg, on)
	if pe, ok := err.(*paramError); ok && pe.opt == "" {
		pe.opt = name
	}
	return err
}

func findLong(name string) (*option, string) {
	var hit *option
	n := 0
	for i := range options {
		o := &options[i]
		if o.long == name {
			return o, ""
		}
		if strings.HasPrefix(o.long, name) {
			hit, n = o, n+1
		}
	}
	switch n {
	case 0:
		return nil, reasonUnknown
	case 1:
		return hit, ""
	}
	return nil, reasonAmbiguous
}

func findShort(b byte) *option {
	for i := range options {
		if options[i].short == b {
			return &options[i]
		}
	}
	return nil
}

// settle decides the request kind the data asks for, once all options are
// read (curl's single_transfer): a POST, or with -G a GET (HEAD with -I)
// carrying the data in the query.
func (c *config) settle() error {
	if !c.dataSet {
		return nil
	}
	if c.get {
		if c.head {
			return c.setRequest(reqHead)
		}
		return c.setRequest(reqGet)
	}
	return c.setRequest(reqPost)
}

// setRequest records the kind of request, refusing a second kind as
// curl's SetHTTPrequest does.
func (c *config) setRequest(r httpReq) error {
	if c.httpreq == reqUnspec || c.httpreq == r {
		c.httpreq = r
		return nil
	}
	warnf(c, "You can only select one HTTP request method! You asked for both %s and %s.\n", reqNames[r], reqNames[c.httpreq])
	return &paramError{reason: reasonBadUse}
}

// urlencodeData is --data-urlencode: "content", "=content", "name=content",
// "@file", "name@file"; only the content is encoded.
func urlencodeData(arg string) string {
	name, content := "", arg
	if i := strings.IndexAny(arg, "=@"); i >= 0 {
		name, content = arg[:i], arg[i+1:]
		if arg[i] == '@' {
			b, _ := readArgFile(content)
			content = string(b)
		}
	}
	// curl writes spaces as '+' here (RFC 1866), unlike curl_easy_escape.
	enc := strings.ReplaceAll(escape(content), "%20", "+")
	if name == "" {
		return enc
	}
	return name + "=" + enc
}

// escape is curl_easy_escape: everything but unreserved characters as %XX.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.IndexByte("-._~", ch) >= 0 {
			b.WriteByte(ch)
		} else {
			fmt.Fprintf(&b, "%%%02X", ch)
		}
	}
	return b.String()
}
