package curl

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseArgs(t *testing.T) {
	c, err := parseArgs([]string{"-sSvL", "-ofile", "-X", "PUT", "--data", "x=1", "-d", "y=2", "-H", "A: b",
		"-m", "1.5", "--connect-timeout", "2", "--retry", "3", "--retry-delay", "0.5", "--noproxy", "*",
		"-D", "-", "--resolve", "h:80:10.0.0.1", "10.0.0.1:80", "--url", "http://10.0.0.2/x", "--", "-weird"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.silent || !c.showError || !c.verbose || !c.location || c.method != "PUT" || len(c.headers) != 1 ||
		c.maxTime != 1500*time.Millisecond || c.connectTimeout != 2*time.Second || c.retry != 3 ||
		c.retryDelay != 500*time.Millisecond || *c.noproxy != "*" || c.dumpHeader != "-" || len(c.resolve) != 1 {
		t.Errorf("parsed %+v", c)
	}
	if got := strings.Join(c.outputs, ","); got != "file" {
		t.Errorf("outputs %q", got)
	}
	if got := strings.Join(c.data, "&"); got != "x=1&y=2" {
		t.Errorf("data %q", got)
	}
	if got := strings.Join(c.urls, " "); got != "10.0.0.1:80 http://10.0.0.2/x -weird" {
		t.Errorf("urls %q", got)
	}
	if err := c.settle(); err != nil || c.httpreq != reqPost {
		t.Errorf("settle: %v, request kind %d, want POST", err, c.httpreq)
	}

	// Abbreviations and --no-.
	c, err = parseArgs([]string{"--verb", "--no-verbose", "--sil", "--locat", "x"})
	if err != nil || c.verbose || !c.silent || !c.location {
		t.Errorf("abbreviations: %+v, %v", c, err)
	}
	// -G moves the data into the query, and settles on GET or HEAD.
	c, _ = parseArgs([]string{"-d", "a=1", "-G", "-I", "x"})
	if err := c.settle(); err != nil || c.httpreq != reqHead {
		t.Errorf("-d -G -I: %v, request kind %d, want HEAD", err, c.httpreq)
	}
}

// Bad command lines are refused as curl refuses them, naming the option
// as it was written.
func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--frobnicate", "x"}, "option --frobnicate: is unknown"},
		{[]string{"-sZ", "x"}, "option -sZ: is not supported by labctl's curl applet"},
		{[]string{"-s\\", "x"}, "option -s\\: is unknown"},
		{[]string{"x", "-o"}, "option -o: requires parameter"},
		{[]string{"-m", "soon", "x"}, "option -m: expected a proper numerical parameter"},
		{[]string{"--retry", "-1", "x"}, "option --retry: expected a positive numerical parameter"},
		{[]string{"--retry", "99999999999", "x"}, "option --retry: too large number"},
		{[]string{"--re", "x"}, "option --re: is ambiguous"},
		{[]string{"--no-output", "x"}, "option --no-output: used '--no-' for option that isn't a boolean"},
		{[]string{"--max-time=5", "x"}, "option --max-time=5: is unknown"},
		{[]string{"-T", "f", "x"}, "option -T: is not supported by labctl's curl applet"},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args)
		var pe *paramError
		if !errors.As(err, &pe) || pe.Error() != tt.want {
			t.Errorf("parseArgs(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
	c, err := parseArgs([]string{"-I", "-d", "x", "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.settle(); err == nil {
		t.Error("-I with -d settled; curl refuses two request kinds")
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct{ in, want, target, hostport string }{
		{"10.0.0.1", "http://10.0.0.1/", "/", "10.0.0.1"},
		{"10.0.0.1:8080/a?b=c#frag", "http://10.0.0.1:8080/a?b=c", "/a?b=c", "10.0.0.1:8080"},
		{"HTTP://Web.Lab:80/x?", "http://web.lab/x?", "/x?", "Web.Lab"},
		{"http://u:p@h/", "http://h/", "/", "h"},
		{"http://[::1]:81/", "http://[::1]:81/", "/", "[::1]:81"},
		{"h?q", "http://h/?q", "/?q", "h"},
	}
	for _, tt := range tests {
		u, err := parseURL(tt.in)
		if err != nil {
			t.Errorf("parseURL(%q): %v", tt.in, err)
			continue
		}
		if u.String() != tt.want || u.target() != tt.target || u.hostPort() != tt.hostport {
			t.Errorf("parseURL(%q) = %q target %q host %q, want %q %q %q", tt.in, u.String(), u.target(), u.hostPort(), tt.want, tt.target, tt.hostport)
		}
	}
	// No TLS in the applet: https fails as in a curl built without it.
	for in, want := range map[string]string{
		"https://10.0.0.1/": `(1) Protocol "https" not supported or disabled in libcurl`,
		"ftp://10.0.0.1/":   `(1) Protocol "ftp" not supported or disabled in libcurl`,
		"http://:80/":       "(3) URL using bad/illegal format or missing URL",
		"http://h:99999/":   "(3) URL using bad/illegal format or missing URL",
	} {
		if _, err := parseURL(in); err == nil || err.Error() != want {
			t.Errorf("parseURL(%q) = %v, want %s", in, err, want)
		}
	}
	base, _ := parseURL("http://h:8080/dir/page?q")
	for loc, want := range map[string]string{
		"/ok":             "http://h:8080/ok",
		"next?x=1":        "http://h:8080/dir/next?x=1",
		"http://o/p":      "http://o/p",
		"//o:81/p":        "http://o:81/p",
		"https://o/":      "",
		"../up":           "http://h:8080/dir/../up",
		"/with?query=yes": "http://h:8080/with?query=yes",
	} {
		u, err := base.resolveRef(loc)
		got := ""
		if err == nil {
			got = u.String()
		}
		if got != want {
			t.Errorf("resolveRef(%q) = %q, want %q", loc, got, want)
		}
	}
}

func TestNoproxy(t *testing.T) {
	tests := []struct {
		list, host string
		want       bool
	}{
		{"*", "anything", true},
		{"", "h", false},
		{"lab,10.0.0.1", "10.0.0.1", true},
		{"lab", "web.lab", true},
		{".lab", "web.lab", true},
		{"lab", "notlab", false},
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "11.0.0.1", false},
		{" Web.Lab ", "web.lab", true},
	}
	for _, tt := range tests {
		if got := exempt(tt.list, tt.host); got != tt.want {
			t.Errorf("exempt(%q, %q) = %v, want %v", tt.list, tt.host, got, tt.want)
		}
	}
}

func TestCustomHeaderLine(t *testing.T) {
	for in, want := range map[string]string{
		"X: 1":    "X: 1",
		"X:1":     "X:1",
		"X:":      "",
		"X:   ":   "",
		"X;":      "X:",
		"X; more": "",
		"novalue": "",
		": v":     "",
	} {
		got, ok := customLine(in)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("customLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChunkDecoder(t *testing.T) {
	wire := "6\r\nchunk \r\n4;ext=1\r\ned!\n\r\n0\r\nTrailer: x\r\n\r\nHTTP/1.1 next"
	var got strings.Builder
	d := &chunkDecoder{}
	c := &conn{}
	// Byte by byte: chunk framing may be split anywhere between reads.
	for i := 0; i < len(wire) && !d.done; i++ {
		out, err := d.feed([]byte{wire[i]}, c)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(out)
	}
	if got.String() != "chunk ed!\n" || !d.done {
		t.Errorf("decoded %q (done %v)", got.String(), d.done)
	}
	d = &chunkDecoder{}
	out, _ := d.feed([]byte(wire), c)
	if string(out) != "chunk ed!\n" || string(c.buf) != "HTTP/1.1 next" {
		t.Errorf("decoded %q, left %q for the next response", out, c.buf)
	}
	if _, err := (&chunkDecoder{}).feed([]byte("zz\r\n"), c); err == nil {
		t.Error("a bad chunk size decoded")
	}
}

// The meter's fields are curl's fixed-width ones.
func TestMeterFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "    0", 99999: "99999", 100000: "  97k", 10239999: "9999k", 10240000: " 9.7M", 104857600: " 100M", 10485760000: " 9.7G"} {
		if got := max5(n); got != want {
			t.Errorf("max5(%d) = %q, want %q", n, got, want)
		}
	}
	for s, want := range map[int64]string{0: "--:--:--", 1: " 0:00:01", 3661: " 1:01:01", 360000: "  4d 04h", 99999999: "   1157d"} {
		if got := timeStr(s); got != want {
			t.Errorf("timeStr(%d) = %q, want %q", s, got, want)
		}
	}
}

// curl wraps its warnings at 79 columns, each line prefixed; -s mutes them.
func TestWarnWraps(t *testing.T) {
	var b strings.Builder
	voutf(&b, &config{}, "Warning: ", "You can only select one HTTP request method! You asked for both %s and %s.\n", reqNames[reqPost], reqNames[reqHead])
	want := "Warning: You can only select one HTTP request method! You asked for both POST \nWarning: (-d, --data) and HEAD (-I, --head).\n"
	if b.String() != want {
		t.Errorf("wrapped:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	voutf(&b, &config{silent: true}, "Warning: ", "x")
	if b.Len() != 0 {
		t.Errorf("-s printed %q", b.String())
	}
}
