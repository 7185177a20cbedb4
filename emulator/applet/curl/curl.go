package curl

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The curl the applet answers as: Debian 12's, whose output it follows.
const (
	curlVersion = "7.88.1"
	userAgent   = "curl/" + curlVersion
)

// curl's exit codes (CURLcode) that the applet returns.
const (
	curlOK                 = 0
	curlUnsupportedProto   = 1
	curlFailedInit         = 2
	curlURLMalformat       = 3
	curlCouldntResolveProx = 5
	curlCouldntResolveHost = 6
	curlCouldntConnect     = 7
	curlWeirdServerReply   = 8
	curlPartialFile        = 18
	curlHTTPReturnedError  = 22
	curlWriteError         = 23
	curlReadError          = 26
	curlOperationTimedout  = 28
	curlTooManyRedirects   = 47
	curlGotNothing         = 52
	curlSendError          = 55
	curlRecvError          = 56
)

// curlError is a failed transfer: curl prints "curl: (code) msg".
type curlError struct {
	code int
	msg  string
	// errno is the system error behind a failed connect, for
	// --retry-connrefused (CURLINFO_OS_ERRNO).
	errno unix.Errno
}

func (e *curlError) Error() string { return fmt.Sprintf("(%d) %s", e.code, e.msg) }

func failf(code int, format string, a ...any) *curlError {
	return &curlError{code: code, msg: fmt.Sprintf(format, a...)}
}

// Main runs curl with args (without the program name) and returns its exit
// code: the last transfer's, as curl does.
func Main(args []string) int {
	// Like curl: a reader that went away is a write error (23), not a
	// death by SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	if len(args) == 0 {
		hint(os.Stderr)
		return curlFailedInit
	}
	cfg, err := parseArgs(args)
	if err == nil {
		err = cfg.settle()
		if err != nil {
			return curlFailedInit // settle's warning said why
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "curl: %v\n", err)
		hint(os.Stderr)
		return curlFailedInit
	}
	switch {
	case cfg.help:
		fmt.Print(usageText)
		return curlOK
	case cfg.version:
		fmt.Print(versionText)
		return curlOK
	case len(cfg.urls) == 0:
		fmt.Fprintln(os.Stderr, "curl: no URL specified!")
		hint(os.Stderr)
		return curlFailedInit
	}
	t := newTool(cfg)
	defer t.closeAll()
	code := curlOK
	for i, u := range cfg.urls {
		code = t.run(i, u)
	}
	return code
}

func hint(w io.Writer) {
	fmt.Fprintln(w, "curl: try 'curl --help' or 'curl --manual' for more information")
}

// warnf is curl's warnf: "Warning: " before every line of the message,
// wrapped at 79 columns, unless -s.
func warnf(c *config, format string, a ...any) { voutf(os.Stderr, c, "Warning: ", format, a...) }

// notef is curl's notef: the same with "Note: ", and only with -v.
func notef(c *config, format string, a ...any) {
	if c.verbose {
		voutf(os.Stderr, c, "Note: ", format, a...)
	}
}

func voutf(w io.Writer, c *config, prefix, format string, a ...any) {
	if c.silent {
		return
	}
	width := 79 - len(prefix)
	msg := fmt.Sprintf(format, a...)
	var b strings.Builder
	for len(msg) > 0 {
		b.WriteString(prefix)
		if len(msg) <= width {
			b.WriteString(msg)
			break
		}
		cut := width - 1
		for cut > 0 && msg[cut] != ' ' && msg[cut] != '\t' {
			cut--
		}
		if cut == 0 {
			cut = width - 1
		}
		b.WriteString(msg[:cut+1])
		b.WriteString("\n")
		msg = msg[cut+1:]
	}
	_, _ = io.WriteString(w, b.String())
}

// tool is one run of the applet: what lives across its transfers (the
// connection kept alive, connection numbers, the trace's line state).
type tool struct {
	cfg    *config
	stderr *lockedWriter
	trace  tracer
	idle   *conn // a connection left intact, for the next request to reuse
	nextID int
	tty    bool // stdout is a terminal
}

func newTool(cfg *config) *tool {
	t := &tool{cfg: cfg, stderr: &lockedWriter{w: os.Stderr}}
	t.trace.w, t.trace.on = t.stderr, cfg.verbose
	_, err := unix.IoctlGetTermios(int(os.Stdout.Fd()), unix.TCGETS)
	t.tty = err == nil
	return t
}

func (t *tool) closeAll() {
	if t.idle != nil {
		t.idle.nc.Close()
		t.idle = nil
	}
}

// run makes the transfer of the i-th URL, with its retries, and returns
// its result as curl's post_per_transfer does.
func (t *tool) run(i int, raw string) int {
	cfg := t.cfg
	retriesLeft := cfg.retry
	sleep := time.Second
	if cfg.retryDelay > 0 {
		sleep = cfg.retryDelay
	}
	retryStart := time.Now()
	var out *output
	for {
		out = t.openOutput(i, out)
		x := newTransfer(t, i, raw, out)
		err := x.perform()
		var ce *curlError
		if err != nil && !errors.As(err, &ce) {
			ce = &curlError{code: curlRecvError, msg: err.Error()}
		}
		result := 0
		if ce != nil {
			result = ce.code
			x.errmsg = ce.msg
		}
		if result != 0 && (!cfg.silent || cfg.showError) {
			fmt.Fprintf(t.stderr, "curl: (%d) %s\n", result, ce.msg)
		} else if result == 0 && cfg.failWithBody && x.code >= 400 {
			if !cfg.silent || cfg.showError {
				fmt.Fprintf(t.stderr, "curl: (%d) The requested URL returned error: %d\n", curlHTTPReturnedError, x.code)
			}
			result = curlHTTPReturnedError
		}
		if result == 0 && !out.opened && out.name != "" {
			// A successful transfer without data still makes its file.
			if err := out.open(); err != nil {
				result = curlWriteError
			}
		}
		if retriesLeft > 0 && (cfg.retryMaxTime == 0 || time.Since(retryStart) < cfg.retryMaxTime) {
			if why := retryReason(cfg, x, result, ce); why != "" {
				warnf(cfg, "Problem %s. Will retry in %d seconds. %d retries left.\n", why, int64(sleep/time.Second), retriesLeft)
				retriesLeft--
				wait := sleep
				if cfg.retryDelay == 0 {
					sleep = min(sleep*2, 10*time.Minute)
				}
				if out.written > 0 && out.file != nil {
					if !cfg.silent {
						fmt.Fprintf(t.stderr, "Throwing away %d bytes\n", out.written)
					}
					if err := out.rewind(); err != nil {
						if !cfg.silent || cfg.showError {
							fmt.Fprintf(t.stderr, "curl: (%d) Failed to truncate file\n", curlWriteError)
						}
						out.close()
						return curlWriteError
					}
				}
				time.Sleep(wait)
				continue
			}
		}
		if cfg.writeOut != "" {
			x.writeOut(cfg.writeOut, result)
		}
		out.close()
		return result
	}
}

// retryReason is why --retry tries again, as curl's post_per_transfer
// words it, or "" for no retry.
func retryReason(cfg *config, x *transfer, result int, ce *curlError) string {
	switch {
	case result == curlOperationTimedout || result == curlCouldntResolveHost || result == curlCouldntResolveProx:
		return ": timeout"
	case cfg.retryConnRefused && result == curlCouldntConnect:
		if ce != nil && ce.errno == unix.ECONNREFUSED {
			return ": connection refused"
		}
	case result == 0 || ((cfg.fail || cfg.failWithBody) && result == curlHTTPReturnedError):
		switch x.code {
		case 408, 429, 500, 502, 503, 504:
			return ": HTTP error"
		}
	}
	if result != 0 && cfg.retryAllErrors {
		return "(retrying all errors)"
	}
	return ""
}

// lockedWriter serialises stderr between the transfer and the progress
// meter's clock.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// output is where a transfer's body goes: stdout, or a file (-o) created
// at the first byte, as curl does.
type output struct {
	name    string // "" for stdout
	file    *os.File
	opened  bool
	written int64
	err     error
}

func (t *tool) openOutput(i int, prev *output) *output {
	if prev != nil {
		return prev // a retry writes where the first attempt did
	}
	o := &output{}
	if i < len(t.cfg.outputs) && t.cfg.outputs[i] != "-" {
		o.name = t.cfg.outputs[i]
	}
	return o
}

func (o *output) open() error {
	if o.opened || o.name == "" {
		o.opened = true
		return nil
	}
	f, err := os.Create(o.name)
	if err != nil {
		o.err = err
		return err
	}
	o.file, o.opened = f, true
	return nil
}

func (o *output) Write(p []byte) (int, error) {
	if err := o.open(); err != nil {
		return 0, err
	}
	var n int
	var err error
	if o.file != nil {
		n, err = o.file.Write(p)
	} else {
		n, err = os.Stdout.Write(p)
	}
	o.written += int64(n)
	return n, err
}

func (o *output) rewind() error {
	if err := o.file.Truncate(0); err != nil {
		return err
	}
	_, err := o.file.Seek(0, io.SeekStart)
	o.written = 0
	return err
}

func (o *output) close() {
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}

const usageText = `Usage: curl [options...] <url>
 labctl's curl applet: curl 7.88.1's HTTP/1.1 client as a student meets it.
 -d, --data <data>          HTTP POST data (@file, @- for stdin); also
     --data-raw, --data-binary, --data-ascii, --data-urlencode
 -D, --dump-header <file>   Write the received headers to <file> (- for stdout)
 -f, --fail                 Fail fast with no output on HTTP errors
     --fail-with-body       Fail on HTTP errors but save the body
 -G, --get                  Put the post data in the URL and use GET
 -H, --header <header>      Pass custom header(s) to server ("X:" removes X)
 -i, --include              Include protocol response headers in the output
 -I, --head                 Show document info only
 -k, --insecure             Accepted; the applet speaks no TLS
 -L, --location             Follow redirects (--max-redirs <num>)
 -m, --max-time <seconds>   Maximum time allowed for transfer
     --connect-timeout <s>  Maximum time allowed for connection
     --noproxy <list>       List of hosts which do not use proxy
 -x, --proxy <url>          Use this HTTP proxy (also http_proxy, all_proxy)
     --resolve <host:port:addr>  Resolve the host+port to this address
     --retry <num>          Retry request if transient problems occur
     --retry-delay <s>, --retry-max-time <s>, --retry-connrefused,
     --retry-all-errors
 -o, --output <file>        Write to file instead of stdout
 -s, --silent               Silent mode
 -S, --show-error           Show error even when -s is used
 -u, --user <user:password> Server user and password (Basic)
 -A, --user-agent <name>    Send User-Agent <name> to server
 -e, --referer <URL>        Referrer URL
 -v, --verbose              Make the operation more talkative
 -w, --write-out <format>   Use output FORMAT after completion
 -X, --request <method>     Specify request method to use
 -0, --http1.0              Use HTTP 1.0
 -h, --help                 This help
 -V, --version              Show version number and quit
`

const versionText = "curl " + curlVersion + " (labctl applet: curl's HTTP/1.1 client, without TLS)\n" +
	"Protocols: http\n" +
	"Features: IPv6 Largefile\n"
