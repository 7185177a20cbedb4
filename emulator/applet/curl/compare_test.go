package curl

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/applet/internal/applettest"
	"github.com/labctl/labctl/internal/nstest"
)

// What differs between two runs of the same transfer: the progress
// meter's numbers and how often it redraws, durations, local ports and
// the address curl prints for its connection bundle.
var curlNoise = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(\r[ 0-9]{3} [ 0-9.kMGTP]{5}  [ 0-9]{3} [ 0-9.kMGTP]{5}  [ 0-9]{3} [ 0-9.kMGTP]{5}  [ 0-9.kMGTP]{5}  [ 0-9.kMGTP]{5} [-:0-9 dh]{8} [-:0-9 dh]{8} [-:0-9 dh]{8} [ 0-9.kMGTP]{5})+`), "\r<meter>"},
	{regexp.MustCompile(`after [0-9]+ ?(ms|milliseconds)`), "after N $1"},
	{regexp.MustCompile(`Found bundle for host: 0x[0-9a-f]+`), "Found bundle for host: 0xADDR"},
	{regexp.MustCompile(`\b[0-9]+\.[0-9]{6}\b`), "S.MICROS"},
	// How much of a large body the first read brings depends on timing.
	{regexp.MustCompile(`\[[0-9]{5,} bytes data\]`), "[N bytes data]"},
}

// meterRedraw is a redraw of the meter's line that the next one replaces:
// how many there are depends on when seconds turn, for curl as for the
// applet. The last line, ended by a newline, stays.
var meterRedraw = regexp.MustCompile("\r<meter>([^\n])")

func normalizeCurl(s string) string {
	for _, n := range curlNoise {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return meterRedraw.ReplaceAllString(s, "$1")
}

// The applet prints what curl 7.88 prints, sends what it sends and exits
// as it does, for the same command against the same server. The server
// echoes requests back (/echo), so the bytes on the wire are compared too.
func TestLikeCurl(t *testing.T) {
	nstest.NeedRoot(t)
	real := realCurl(t)
	applet := applettest.Link(t, "curl")
	srv := "10.98.0.2"
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("line one\r\nline two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
	}{
		{"get", []string{srv + "/ok"}, nil},
		{"get verbose", []string{"-v", "http://" + srv + "/ok"}, nil},
		{"silent verbose", []string{"-sv", srv + ":8080/ok?x=1&y=2"}, nil},
		{"what is sent", []string{"-s", srv + "/echo"}, nil},
		{"headers replaced and removed", []string{"-sv", "-H", "Host: example.test", "-H", "Accept:", "-H", "X-Empty;", "-H", "X-A:1", "-A", "ua/1", srv + "/echo"}, nil},
		{"user agent by header", []string{"-s", "-H", "user-agent: mine", "-H", "ACCEPT: text/plain", srv + "/echo"}, nil},
		{"no user agent", []string{"-s", "-A", "", srv + "/echo"}, nil},
		{"post", []string{"-sv", "-d", "a=1", "-d", "b=2", srv + "/echo"}, nil},
		{"post with type", []string{"-s", "-H", "Content-Type: application/json", "--data-raw", "@x", srv + "/echo"}, nil},
		{"put", []string{"-sv", "-X", "PUT", "-d", "x", srv + "/echo"}, nil},
		{"data from a file", []string{"-s", "-d", "@" + data, srv + "/echo"}, nil},
		{"binary data from a file", []string{"-s", "--data-binary", "@" + data, srv + "/echo"}, nil},
		{"data from a missing file", []string{"-s", "-d", "@/nonexistent", srv + "/echo"}, nil},
		{"unnecessary -X", []string{"-sv", "-X", "POST", "-d", "x", srv + "/echo"}, nil},
		{"get with data", []string{"-s", "-G", "-d", "q=1", "--data-urlencode", "name=a b&c", srv + "/echo?z=0"}, nil},
		{"basic auth", []string{"-s", "-u", "alice:secret", srv + "/echo"}, nil},
		{"head", []string{"-I", srv + "/ok"}, nil},
		{"head verbose", []string{"-sIv", srv + "/ok"}, nil},
		{"include", []string{"-si", srv + "/py"}, nil},
		{"include verbose", []string{"-v", "-i", srv + "/py"}, nil},
		{"dump header", []string{"-s", "-D", "-", srv + "/ok"}, nil},
		{"dump header to file then print", []string{"-s", "-D", "h.txt", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{size_header} %{num_headers} %{content_type}\\n", srv + "/ok"}, nil},
		{"http 1.0 server", []string{"-v", srv + "/py"}, nil},
		{"404", []string{"-sv", srv + "/404"}, nil},
		{"fail", []string{"-sf", srv + "/404"}, nil},
		{"fail show error", []string{"-sSf", srv + "/404"}, nil},
		{"fail verbose", []string{"-vf", srv + "/404"}, nil},
		{"fail include", []string{"-sif", srv + "/404"}, nil},
		{"fail with body", []string{"-s", "--fail-with-body", srv + "/404"}, nil},
		{"chunked", []string{"-sv", srv + "/chunked"}, nil},
		{"no length", []string{"-sv", srv + "/noclen"}, nil},
		{"connection close", []string{"-sv", srv + "/close"}, nil},
		{"http 1.0 keep-alive", []string{"-sv", srv + "/keepalive10"}, nil},
		{"redirect not followed", []string{"-s", "-w", "%{http_code} %{redirect_url} %{num_redirects}\\n", srv + "/redirect"}, nil},
		{"redirect followed", []string{"-sLv", "-w", "%{http_code} %{url_effective} %{num_redirects} %{num_connects}\\n", srv + "/redirect"}, nil},
		{"redirect to another port", []string{"-sLi", srv + "/redirect-close"}, nil},
		{"post then see other", []string{"-sL", "-d", "x=1", srv + "/see-other"}, nil},
		{"too many redirects", []string{"-sSL", "--max-redirs", "3", srv + "/loop"}, nil},
		{"two urls one connection", []string{"-sv", srv + "/ok", srv + "/ok"}, nil},
		{"two urls two outputs", []string{"-s", "-o", "a", "-o", "b", "-w", "%{filename_effective} %{urlnum}\\n", srv + "/ok", srv + "/py"}, nil},
		{"write out", []string{"-s", "-o", "/dev/null", "-w", "%{http_code} %{response_code} %{remote_ip} %{remote_port} %{local_ip} %{size_download} %{method} %{scheme} %{http_version} %{exitcode} [%{errormsg}] %{url} %{url_effective} %{num_connects} %%\\t%{time_total} %{time_connect} %{time_namelookup} %{time_starttransfer} %{time_pretransfer}\\n", srv + "/ok"}, nil},
		{"write out header", []string{"-s", "-o", "/dev/null", "-w", "%header{x-mixed-case}|%header{nope}|%{nonsense}|%{onerror}after\\n", srv + "/ok"}, nil},
		{"write out on error", []string{"-s", "-w", "%{http_code} %{exitcode} %{errormsg}|%{onerror}shown\\n", srv + ":81/"}, nil},
		{"write out to stderr", []string{"-s", "-o", "/dev/null", "-w", "%{stderr}%{http_code}\\n", srv + "/ok"}, nil},
		{"refused", []string{srv + ":81/"}, nil},
		{"refused verbose", []string{"-v", srv + ":81/"}, nil},
		{"refused silent", []string{"-s", srv + ":81/"}, nil},
		{"refused show error", []string{"-sS", srv + ":81/"}, nil},
		{"no route", []string{"-sSv", "10.97.0.1/"}, nil},
		{"connect timeout", []string{"-sSv", "--connect-timeout", "1", "10.98.0.9/"}, nil},
		{"max time connecting", []string{"-sS", "-m", "1", "10.98.0.9/"}, nil},
		{"max time connecting verbose", []string{"-v", "-m", "1", "--connect-timeout", "5", "10.98.0.9/"}, nil},
		{"connect timeout before max time", []string{"-sSv", "-m", "5", "--connect-timeout", "1", "10.98.0.9/"}, nil},
		{"max time waiting", []string{"-sSv", "-m", "1", srv + "/slow"}, nil},
		{"max time in body", []string{"-sS", "-m", "1", srv + "/slowbody"}, nil},
		{"empty reply", []string{"-sSv", srv + "/empty"}, nil},
		{"reset", []string{"-sS", srv + "/reset"}, nil},
		{"short body", []string{"-sS", srv + "/short"}, nil},
		{"continue", []string{"-sv", srv + "/continue"}, nil},
		{"continue include", []string{"-si", srv + "/continue"}, nil},
		{"no content", []string{"-sv", srv + "/nocontent"}, nil},
		{"big to file", []string{"-sS", "-o", "big", "-w", "%{size_download}\\n", srv + "/big"}, nil},
		{"big with the meter", []string{"-o", "/dev/null", srv + "/big"}, nil},
		{"retry on 503", []string{"-sS", "--retry", "2", "--retry-delay", "0", "-w", "%{http_code}\\n", srv + "/503"}, nil},
		{"retry on 503 with fail", []string{"-Sf", "-s", "--retry", "1", "--retry-delay", "0", srv + "/503"}, nil},
		{"retry timeout", []string{"--retry", "1", "--retry-delay", "0", "-sS", "-m", "0.5", srv + "/slow"}, nil},
		{"retry not on refused", []string{"-sS", "--retry", "2", srv + ":81/"}, nil},
		{"retry on refused", []string{"-sS", "--retry", "1", "--retry-delay", "0", "--retry-connrefused", srv + ":81/"}, nil},
		{"retry warning", []string{"--retry", "1", "--retry-delay", "0", "-o", "/dev/null", srv + "/503"}, nil},
		{"proxy from environment", []string{"-sv", "http://10.96.0.1/echo"}, []string{"http_proxy=http://" + srv + ":8080"}},
		{"proxy option", []string{"-s", "-x", srv + ":8080", "http://10.96.0.1:81/echo"}, nil},
		{"noproxy", []string{"-sS", "--noproxy", "*", srv + "/ok"}, []string{"http_proxy=http://10.97.0.1:3128"}},
		{"no_proxy in environment", []string{"-sv", srv + "/ok"}, []string{"http_proxy=http://10.97.0.1:3128", "no_proxy=localhost," + srv}},
		{"resolve", []string{"-s", "--resolve", "web.lab:80:" + srv, "http://web.lab/echo"}, nil},
		{"resolve verbose", []string{"-sv", "--resolve", "web.lab:80:" + srv, "http://web.lab/ok"}, nil},
		{"custom connection header", []string{"-sv", "-H", "Connection: close", srv + "/ok", srv + "/ok"}, nil},
		{"user in url", []string{"-s", "http://bob:pw@" + srv + "/echo"}, nil},
		{"referer", []string{"-s", "-e", "http://from.example/", srv + "/echo"}, nil},
		{"http 1.0 request", []string{"-sv", "-0", srv + "/ok"}, nil},
		{"unknown host", []string{"-sS", "--resolve", "x:80:" + srv, "http://nosuch.invalid./"}, nil},
		{"bad url", []string{"-sS", "http://:80/"}, nil},
		{"no url", []string{"-s"}, nil},
		{"no arguments", nil, nil},
		{"unknown option", []string{"--frobnicate", srv}, nil},
		{"unknown short option", []string{"-s\\", srv}, nil},
		{"end of options", []string{"-s", "-o", "/dev/null", "-w", "%{url}\\n", "--", srv + "/ok"}, nil},
		{"missing parameter", []string{srv, "-X"}, nil},
		{"bad number", []string{"-m", "soon", srv}, nil},
		{"negative number", []string{"--retry", "-1", srv}, nil},
		{"ambiguous option", []string{"--re", srv}, nil},
		{"abbreviated option", []string{"--sil", "--write-o", "%{http_code}\\n", "-o", "/dev/null", srv + "/ok"}, nil},
		{"no- prefix", []string{"-v", "--no-verbose", "-s", srv + "/ok"}, nil},
		{"no- on a value option", []string{"--no-output", "x", srv}, nil},
		{"head and data", []string{"-I", "-d", "x", srv}, nil},
		{"output file", []string{"-sS", "-o", "out.txt", "-w", "%{size_download}\\n", srv + "/ok"}, nil},
		{"output to missing dir", []string{"-sS", "-o", "/nonexistent/x", srv + "/ok"}, nil},
		{"meter to pipe", []string{"-o", "/dev/null", srv + "/ok"}, nil},
		{"meter with verbose", []string{"-v", "-o", "/dev/null", srv + "/ok"}, nil},
		{"meter on failure", []string{srv + ":81/"}, nil},
		{"no progress meter", []string{"--no-progress-meter", srv + "/ok"}, nil},
	}
	// A reader that stops early: curl ignores SIGPIPE and says it could
	// not write.
	pipe := func(prog string) []string {
		return []string{"-c", `"$0" "$@" | head -c 5; echo " rc=${PIPESTATUS[0]}"`, prog, "-sSv", srv + "/big"}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			want := runIn(t, n.client, real, tt.env, tt.args...)
			got := runIn(t, n.client, applet, tt.env, tt.args...)
			compareCurl(t, tt.args, got, want)
		})
	}
	t.Run("reader stops early", func(t *testing.T) {
		t.Parallel()
		n := newNetwork(t)
		want := runIn(t, n.client, "bash", nil, pipe(real)...)
		got := runIn(t, n.client, "bash", nil, pipe(applet)...)
		compareCurl(t, []string{"-sSv", srv + "/big", "|", "head", "-c", "5"}, got, want)
	})
}

// compareCurl fails t unless the applet's run printed what curl's did and
// exited as it did, noise aside.
func compareCurl(t *testing.T, args []string, got, want applettest.Result) {
	t.Helper()
	want.Stdout, got.Stdout = normalizeCurl(want.Stdout), normalizeCurl(got.Stdout)
	want.Stderr, got.Stderr = normalizeCurl(want.Stderr), normalizeCurl(got.Stderr)
	if got != want {
		t.Errorf("curl %s\napplet (exit %d):\n%s\n---- stderr:\n%s\ncurl (exit %d):\n%s\n---- stderr:\n%s",
			strings.Join(args, " "), got.Code, got.Stdout, got.Stderr, want.Code, want.Stdout, want.Stderr)
	}
}

// On a terminal curl shows no meter while the body goes to it, and its
// trace leaves out the "[N bytes data]" lines; with -o the meter is back.
// script(1) gives both programs a terminal as stdout and stderr.
func TestLikeCurlOnTerminal(t *testing.T) {
	nstest.NeedRoot(t)
	real := realCurl(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) from util-linux (bsdutils) is needed to give curl a terminal: %v", err)
	}
	applet := applettest.Link(t, "curl")
	srv := "10.98.0.2"
	tests := [][]string{
		{srv + "/ok"},
		{"-v", srv + "/ok"},
		{"-o", "out", srv + "/ok"},
		{"-v", "-o", "out", srv + "/chunked"},
		{srv + ":81/"},
	}
	quote := func(prog string, args []string) string {
		q := []string{prog}
		for _, a := range args {
			q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
		}
		return strings.Join(q, " ")
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			n := newNetwork(t)
			want := runIn(t, n.client, script, nil, "-qec", quote(real, args), "/dev/null")
			got := runIn(t, n.client, script, nil, "-qec", quote(applet, args), "/dev/null")
			want.Stdout, got.Stdout = normalizeCurl(want.Stdout), normalizeCurl(got.Stdout)
			if got != want {
				t.Errorf("curl %s on a terminal\napplet (exit %d):\n%s\ncurl (exit %d):\n%s", strings.Join(args, " "), got.Code, got.Stdout, want.Code, want.Stdout)
			}
		})
	}
}
