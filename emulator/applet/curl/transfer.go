package curl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readSize is the curl tool's receive buffer (BUFFER_SIZE, set with
// CURLOPT_BUFFERSIZE): how much one read takes, which decides the
// "[N bytes data]" the trace shows.
const readSize = 102400

// transfer is one URL's fetch, redirects included, and what -w reports
// about it (curl's per_transfer with its easy handle's info).
type transfer struct {
	t      *tool
	cfg    *config
	urlnum int
	input  string
	out    *output
	hdr    io.Writer // -D
	hdrF   *os.File
	meter  *meter

	code                   int
	httpVersion            string
	method, effURL, scheme string
	redirectURL            string
	contentType            *string
	referer                string
	remoteIP, localIP      string
	remotePort, localPort  int
	numConnects            int
	numRedirects           int
	numHeaders             int
	sizeDownload           int64
	sizeUpload             int64
	sizeHeader             int64
	sizeRequest            int64
	headers                []string // the last response's header lines, for %header{}
	errmsg                 string
	expected               int64 // the body's Content-Length, -1 when unknown

	start                                         time.Time
	tNamelookup, tConnect, tPretransfer, tStartTx time.Duration
	tRedirect, tTotal                             time.Duration
	deadline                                      time.Time // -m
	bodyStarted                                   bool      // a byte of the current response's body arrived
}

func newTransfer(t *tool, i int, input string, out *output) *transfer {
	x := &transfer{t: t, cfg: t.cfg, urlnum: i, input: input, out: out}
	// The meter hides when the body goes to a terminal; so does the
	// trace's "[N bytes data]" (curl's global->isatty).
	t.trace.isatty = out.name == "" && t.tty
	shown := !t.cfg.silent && !t.cfg.noProgress && !t.trace.isatty
	x.meter = newMeter(t.stderr, shown)
	return x
}

// perform runs the transfer: curl_easy_perform.
func (x *transfer) perform() (err error) {
	cfg := x.cfg
	x.start = time.Now()
	if cfg.maxTime > 0 {
		x.deadline = x.start.Add(cfg.maxTime)
	}
	if cfg.dumpHeader != "" {
		if cfg.dumpHeader == "-" {
			x.hdr = x.out
		} else if f, ferr := os.Create(cfg.dumpHeader); ferr == nil {
			x.hdrF, x.hdr = f, f
		} else {
			warnf(cfg, "Failed to open %s\n", cfg.dumpHeader)
		}
	}
	defer func() {
		if x.hdrF != nil {
			x.hdrF.Close()
		}
		x.tTotal = time.Since(x.start)
	}()
	for _, r := range cfg.resolve {
		// curl loads --resolve into its DNS cache first, saying so.
		entry, transient := strings.CutPrefix(r, "+")
		if parts := strings.SplitN(entry, ":", 3); len(parts) == 3 && !strings.HasPrefix(r, "-") {
			suffix := ""
			if transient {
				suffix = " (non-permanent)"
			}
			x.info("Added %s:%s:%s to DNS cache%s", parts[0], parts[1], parts[2], suffix)
		}
	}
	x.meter.start()
	defer x.meter.stop()

	u, err := parseURL(x.input)
	if err != nil {
		x.info("Closing connection -1")
		return err
	}
	method, body := x.request()
	post := cfg.httpreq == reqPost
	if cfg.get && len(cfg.data) > 0 {
		q := strings.Join(cfg.data, "&")
		if u.RawQuery != "" {
			u.RawQuery += "&" + q
		} else {
			u.RawQuery = q
		}
	}
	if cfg.method != "" {
		dflt := [...]string{"GET", "GET", "HEAD", "POST", "POST", "PUT"}[cfg.httpreq]
		if strings.EqualFold(cfg.method, dflt) {
			notef(cfg, "Unnecessary use of -X or --request, %s is already inferred.\n", dflt)
		}
	}
	if cfg.method != "" && strings.EqualFold(cfg.method, "head") {
		warnf(cfg, "Setting custom HTTP method to HEAD with -X/--request may not work the way you want. Consider using -I/--head instead.\n")
	}
	x.referer = cfg.referer
	for {
		x.effURL = u.String()
		x.scheme = u.Scheme
		redirect, err := x.exchange(u, method, body, post)
		if err != nil {
			return err
		}
		if redirect == nil {
			return nil
		}
		if x.numRedirects >= cfg.maxRedirs && cfg.maxRedirs >= 0 {
			return failf(curlTooManyRedirects, "Maximum (%d) redirects followed", cfg.maxRedirs)
		}
		x.numRedirects++
		x.tRedirect = time.Since(x.start)
		x.info("Issue another request to this URL: '%s'", redirect.String())
		// 301 and 302 turn a POST into a GET, as browsers do; 303 turns
		// everything but HEAD into one.
		switch {
		case (x.code == 301 || x.code == 302) && method == "POST" && cfg.method == "":
			x.info("Switch from POST to GET")
			method, body, post = "GET", nil, false
		case x.code == 303 && method != "HEAD" && method != "GET":
			x.info("Switch from POST to GET")
			method, body, post = "GET", nil, false
		}
		u = redirect
	}
}

// request is the method and body the options ask for.
func (x *transfer) request() (string, []byte) {
	cfg := x.cfg
	method := "GET"
	var body []byte
	switch cfg.httpreq {
	case reqHead:
		method = "HEAD"
	case reqPost:
		method = "POST"
		body = []byte(strings.Join(cfg.data, "&"))
	}
	if cfg.method != "" {
		method = cfg.method
	}
	return method, body
}

// parseURL reads a URL as curl does: without a scheme it is http.
func parseURL(raw string) (*urlParts, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	scheme, rest, _ := strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	if scheme != "http" {
		return nil, failf(curlUnsupportedProto, "Protocol \"%s\" not supported or disabled in libcurl", scheme)
	}
	authority, path := rest, "/"
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
		if path[0] != '/' {
			path = "/" + path
		}
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	u := &urlParts{Scheme: scheme}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		u.User, authority = authority[:i], authority[i+1:]
	}
	host, port := authority, ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return nil, failf(curlURLMalformat, "URL using bad/illegal format or missing URL")
		}
		host, port = authority[:end+1], strings.TrimPrefix(authority[end+1:], ":")
	} else if h, p, ok := strings.Cut(authority, ":"); ok {
		host, port = h, p
	}
	if host == "" {
		return nil, failf(curlURLMalformat, "URL using bad/illegal format or missing URL")
	}
	u.Host = host
	u.Port = 80
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			return nil, failf(curlURLMalformat, "URL using bad/illegal format or missing URL")
		}
		u.Port = n
	}
	u.Path, u.RawQuery, _ = strings.Cut(path, "?")
	if strings.Contains(path, "?") {
		u.hasQuery = true
	}
	return u, nil
}

// urlParts is a URL as curl keeps it: scheme, host as given, port, path
// and query as written.
type urlParts struct {
	Scheme, Host, User, Path, RawQuery string
	Port                               int
	hasQuery                           bool
}

func (u *urlParts) hostPort() string {
	if u.Port == 80 {
		return u.Host
	}
	return u.Host + ":" + strconv.Itoa(u.Port)
}

func (u *urlParts) target() string {
	if u.RawQuery != "" || u.hasQuery {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

func (u *urlParts) String() string {
	return u.Scheme + "://" + strings.ToLower(u.hostPort()) + u.target()
}

// resolveRef is a Location header against the URL it came from.
func (u *urlParts) resolveRef(loc string) (*urlParts, error) {
	switch {
	case strings.Contains(loc, "://"):
		return parseURL(loc)
	case strings.HasPrefix(loc, "//"):
		return parseURL(u.Scheme + ":" + loc)
	}
	n := *u
	n.hasQuery = false
	n.RawQuery = ""
	if strings.HasPrefix(loc, "/") {
		n.Path = loc
	} else {
		dir := n.Path[:strings.LastIndexByte(n.Path, '/')+1]
		n.Path = dir + loc
	}
	if p, q, ok := strings.Cut(n.Path, "?"); ok {
		n.Path, n.RawQuery, n.hasQuery = p, q, true
	}
	return &n, nil
}

// conn is one TCP connection and what was read on it but not used yet.
type conn struct {
	nc       net.Conn
	id       int
	key      string // where it goes: host:port, or the proxy's
	host     string // the name it was opened for, as the trace names it
	viaProxy bool
	buf      []byte
	closing  bool // the response said the connection ends with it
}

// exchange sends one request and reads its response; it returns the URL
// to go to next when following a redirect.
func (x *transfer) exchange(u *urlParts, method string, body []byte, post bool) (*urlParts, error) {
	proxy, err := x.proxyFor(u)
	if err != nil {
		return nil, err
	}
	c, err := x.connection(u, proxy)
	if err != nil {
		// The connection that never came up still had its number.
		x.meter.done()
		x.info("Closing connection %d", x.t.nextID-1)
		return nil, err
	}
	x.method = method
	req := x.buildRequest(u, method, body, post, proxy != nil)
	x.tPretransfer = time.Since(x.start)
	x.sizeRequest += int64(len(req))
	x.t.trace.headerOut(req)
	wire := append([]byte(req), body...)
	x.applyDeadline(c)
	if _, err := c.nc.Write(wire); err != nil {
		return nil, x.fail(c, x.ioError(err, true))
	}
	if len(body) > 0 {
		x.sizeUpload += int64(len(body))
		x.meter.uploaded(int64(len(body)))
		x.t.trace.data('}', len(body))
	}
	redirect, err := x.response(c, u, method)
	if err != nil {
		return nil, x.fail(c, err)
	}
	return redirect, nil
}

// fail ends a transfer that failed on connection c: curl says why in the
// trace, finishes the meter and closes the connection.
func (x *transfer) fail(c *conn, err error) error {
	var ce *curlError
	if errors.As(err, &ce) {
		x.info("%s", ce.msg)
	}
	x.meter.done()
	x.closeConn(c)
	return err
}

func (x *transfer) closeConn(c *conn) {
	x.info("Closing connection %d", c.id)
	c.nc.Close()
	if x.t.idle == c {
		x.t.idle = nil
	}
}

func (x *transfer) applyDeadline(c *conn) {
	if !x.deadline.IsZero() {
		_ = c.nc.SetDeadline(x.deadline)
	}
}

// info is curl's infof: a "* " line in the -v trace.
func (x *transfer) info(format string, a ...any) {
	if x.cfg.verbose {
		x.t.trace.text(fmt.Sprintf(format, a...))
	}
}

// proxyFor says which HTTP proxy, if any, takes the request for u: -x, or
// curl's environment variables (http_proxy, then all_proxy/ALL_PROXY),
// unless --noproxy or no_proxy/NO_PROXY exempt the host.
func (x *transfer) proxyFor(u *urlParts) (*urlParts, error) {
	cfg := x.cfg
	noproxy := ""
	if cfg.noproxy != nil {
		noproxy = *cfg.noproxy
	} else {
		for _, name := range []string{"no_proxy", "NO_PROXY"} {
			if v, ok := os.LookupEnv(name); ok && v != "" {
				x.info("Uses proxy env variable %s == '%s'", name, v)
				noproxy = v
				break
			}
		}
	}
	if exempt(noproxy, u.Host) {
		return nil, nil
	}
	raw := ""
	if cfg.proxy != nil {
		raw = *cfg.proxy
	} else {
		for _, name := range []string{"http_proxy", "all_proxy", "ALL_PROXY"} {
			if v, ok := os.LookupEnv(name); ok && v != "" {
				x.info("Uses proxy env variable %s == '%s'", name, v)
				raw = v
				break
			}
		}
	}
	if raw == "" {
		return nil, nil
	}
	p, err := parseURL(raw)
	if err != nil {
		return nil, failf(curlUnsupportedProto, "Unsupported proxy scheme for '%s'", raw)
	}
	if !strings.Contains(raw, ":") || strings.HasSuffix(strings.TrimSuffix(raw, "/"), "://"+p.Host) {
		p.Port = 1080 // curl's default proxy port
	}
	return p, nil
}

// exempt is curl's noproxy check: "*" matches everything, otherwise a
// comma list of host names (also matching their subdomains) and addresses.
func exempt(list, host string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	for _, e := range strings.Split(list, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case e == "*":
			return true
		case strings.Contains(e, "/"):
			if pfx, err := netip.ParsePrefix(e); err == nil {
				if a, err := netip.ParseAddr(host); err == nil && pfx.Contains(a) {
					return true
				}
			}
		default:
			e = strings.TrimPrefix(e, ".")
			if host == e || strings.HasSuffix(host, "."+e) {
				return true
			}
		}
	}
	return false
}

// connection reuses the idle connection to the same place or opens one:
// resolve, then try each address, as curl's "Trying" lines show.
func (x *transfer) connection(u *urlParts, proxy *urlParts) (*conn, error) {
	host, port := u.Host, u.Port
	if proxy != nil {
		host, port = proxy.Host, proxy.Port
	}
	key := strings.ToLower(host) + ":" + strconv.Itoa(port)
	if c := x.t.idle; c != nil {
		if c.key == key && c.viaProxy == (proxy != nil) && !c.closing {
			x.t.idle = nil
			if alive(c) {
				x.info("Found bundle for host: %#x [serially]", bundleAddr(key))
				x.info("Can not multiplex, even if we wanted to")
				which := "host"
				if c.viaProxy {
					which = "proxy"
				}
				x.info("Re-using existing connection #%d with %s %s", c.id, which, host)
				x.noteConn(c)
				x.tNamelookup, x.tConnect = time.Since(x.start), time.Since(x.start)
				return c, nil
			}
			c.nc.Close()
		}
	}
	id := x.t.nextID
	x.t.nextID++
	addrs, err := x.resolve(host, port)
	x.tNamelookup = time.Since(x.start)
	if err != nil {
		if proxy != nil {
			return nil, x.failText(failf(curlCouldntResolveProx, "Could not resolve proxy: %s", host))
		}
		return nil, x.failText(failf(curlCouldntResolveHost, "Could not resolve host: %s", host))
	}
	connectTimeout := x.cfg.connectTimeout
	if connectTimeout == 0 {
		connectTimeout = 300 * time.Second // curl's default
	}
	var lastErr unix.Errno
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(port))
		x.info("  Trying %s...", tryingAddr(ap))
		// The attempt's own limit (the connect timeout, or what -m
		// leaves, whichever is sooner) and -m's, which ends everything.
		attempt := connectTimeout - time.Since(x.start)
		if !x.deadline.IsZero() {
			attempt = min(attempt, time.Until(x.deadline))
		}
		attemptEnd := time.Now().Add(attempt)
		nc, immediate, err := dial(ap, attemptEnd)
		switch {
		case err == errTimeout && !x.deadline.IsZero() && !time.Now().Before(x.deadline):
			return nil, x.failText(failf(curlOperationTimedout, "Connection timed out after %d milliseconds", time.Since(x.start).Milliseconds()))
		case err == errTimeout:
			x.info("ipv%d connect timeout after %dms, move on!", map[bool]int{true: 4, false: 6}[a.Is4()], attempt.Milliseconds())
			return nil, x.failText(failf(curlOperationTimedout, "Failed to connect to %s port %d after %d ms: Timeout was reached", host, port, time.Since(x.start).Milliseconds()))
		case err != nil:
			errors.As(err, &lastErr)
			if immediate {
				x.info("Immediate connect fail for %s: %s", a, strerror(err))
			} else {
				x.info("connect to %s port %d failed: %s", a, port, strerror(err))
			}
			continue
		}
		x.tConnect = time.Since(x.start)
		x.numConnects++
		c := &conn{nc: nc, id: id, key: key, host: host, viaProxy: proxy != nil}
		x.noteConn(c)
		x.info("Connected to %s (%s) port %d (#%d)", host, a, port, id)
		return c, nil
	}
	ce := failf(curlCouldntConnect, "Failed to connect to %s port %d after %d ms: Couldn't connect to server", host, port, time.Since(x.start).Milliseconds())
	ce.errno = lastErr
	return nil, x.failText(ce)
}

func (x *transfer) failText(ce *curlError) *curlError {
	x.info("%s", ce.msg)
	return ce
}

func (x *transfer) noteConn(c *conn) {
	if ra, ok := c.nc.RemoteAddr().(*net.TCPAddr); ok {
		x.remoteIP, x.remotePort = ra.IP.String(), ra.Port
	}
	if la, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		x.localIP, x.localPort = la.IP.String(), la.Port
	}
}

// alive says whether an idle connection is still open: the peer may have
// closed it since.
func alive(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		open = n > 0 || err == unix.EAGAIN
		return true
	})
	return open
}

// bundleAddr stands in for the C pointer curl prints for its connection
// bundle: stable per host, shaped like an address.
func bundleAddr(key string) uint64 {
	var h uint64 = 0x55d0c0de0000
	for i := 0; i < len(key); i++ {
		h = h*31 + uint64(key[i])
	}
	return 0x550000000000 | h&0xffffffff0
}

func tryingAddr(ap netip.AddrPort) string {
	if ap.Addr().Is6() {
		return "[" + ap.Addr().String() + "]:" + strconv.Itoa(int(ap.Port()))
	}
	return ap.String()
}

// resolve looks host up: --resolve entries first, then an address as
// written, then the resolver (/etc/hosts, DNS).
func (x *transfer) resolve(host string, port int) ([]netip.Addr, error) {
	bare := strings.Trim(host, "[]")
	for _, r := range x.cfg.resolve {
		parts := strings.SplitN(strings.TrimPrefix(r, "+"), ":", 3)
		if len(parts) == 3 && strings.EqualFold(parts[0], bare) && parts[1] == strconv.Itoa(port) {
			var out []netip.Addr
			for _, s := range strings.Split(parts[2], ",") {
				if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
					out = append(out, a)
				}
			}
			if len(out) > 0 {
				x.info("Hostname %s was found in DNS cache", host)
				return out, nil
			}
		}
	}
	if a, err := netip.ParseAddr(bare); err == nil {
		return []netip.Addr{a}, nil
	}
	ctx := context.Background()
	if !x.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, x.deadline)
		defer cancel()
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", bare)
	if err != nil || len(addrs) == 0 {
		return nil, errors.New("no address")
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// buildRequest writes the request head as curl 7.88's Curl_http does:
// request line, Host, Authorization, User-Agent, Accept, Referer,
// Proxy-Connection; then the -H headers as given; then, for data,
// Content-Length and Content-Type. A -H header replaces curl's own of
// that name (Host keeps its place); "Name:" removes it, "Name;" sends it
// empty.
func (x *transfer) buildRequest(u *urlParts, method string, body []byte, post, viaProxy bool) string {
	cfg := x.cfg
	custom := func(name string) (string, bool) {
		for _, h := range cfg.headers {
			if len(h) > len(name) && strings.EqualFold(h[:len(name)], name) && (h[len(name)] == ':' || h[len(name)] == ';') {
				return h, true
			}
		}
		return "", false
	}
	var b strings.Builder
	target := u.target()
	if viaProxy {
		target = u.Scheme + "://" + u.hostPort() + u.target()
	}
	version := "1.1"
	if cfg.http10 {
		version = "1.0"
	}
	fmt.Fprintf(&b, "%s %s HTTP/%s\r\n", method, target, version)
	hostSent := false
	if h, ok := custom("Host"); ok {
		if h != "Host:" {
			b.WriteString("Host:" + h[5:] + "\r\n")
			hostSent = true
		}
	} else {
		b.WriteString("Host: " + u.hostPort() + "\r\n")
		hostSent = true
	}
	user := cfg.user
	if user == "" && u.User != "" {
		user = u.User
	}
	if user != "" {
		if !strings.Contains(user, ":") {
			user += ":"
		}
		fmt.Fprintf(&b, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(user)))
	}
	if _, ok := custom("User-Agent"); !ok {
		ua := userAgent
		if cfg.userAgent != nil {
			ua = *cfg.userAgent
		}
		if ua != "" {
			b.WriteString("User-Agent: " + ua + "\r\n")
		}
	}
	if _, ok := custom("Accept"); !ok {
		b.WriteString("Accept: */*\r\n")
	}
	if x.referer != "" {
		if _, ok := custom("Referer"); !ok {
			b.WriteString("Referer: " + x.referer + "\r\n")
		}
	}
	if viaProxy {
		if _, ok := custom("Proxy-Connection"); !ok {
			b.WriteString("Proxy-Connection: Keep-Alive\r\n")
		}
	}
	for _, h := range cfg.headers {
		line, ok := customLine(h)
		if !ok || (hostSent && hasPrefixFold(line, "Host:")) {
			continue
		}
		b.WriteString(line + "\r\n")
	}
	if post {
		if _, ok := custom("Content-Length"); !ok {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		if _, ok := custom("Content-Type"); !ok {
			b.WriteString("Content-Type: application/x-www-form-urlencoded\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// customLine is what curl sends for a -H header: "Name: value" as
// written; "Name;" becomes "Name:" (sent empty); "Name:" alone and lines
// without a colon send nothing.
func customLine(h string) (string, bool) {
	colon := strings.IndexByte(h, ':')
	if colon < 0 {
		semi := strings.IndexByte(h, ';')
		if semi <= 0 || strings.TrimSpace(h[semi+1:]) != "" {
			return "", false
		}
		return h[:semi] + ":", true
	}
	if colon == 0 || strings.TrimSpace(h[colon+1:]) == "" {
		return "", false
	}
	return h, true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// strerror is the C library's text for a connect error.
func strerror(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// ioError maps a failed read or write to curl's code and message.
func (x *transfer) ioError(err error, sending bool) *curlError {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return x.timeoutError()
	}
	if sending {
		return failf(curlSendError, "Send failure: %s", strerror(err))
	}
	return failf(curlRecvError, "Recv failure: %s", strerror(err))
}

func (x *transfer) timeoutError() *curlError {
	took := time.Since(x.start).Milliseconds()
	if x.expected >= 0 && x.bodyStarted {
		return failf(curlOperationTimedout, "Operation timed out after %d milliseconds with %d out of %d bytes received", took, x.sizeDownload, x.expected)
	}
	return failf(curlOperationTimedout, "Operation timed out after %d milliseconds with %d bytes received", took, x.sizeDownload)
}

var errTimeout = errors.New("connect timeout")

// dial connects to ap by end, as curl does: a non-blocking connect whose
// immediate failure (no route) is told apart from a later one (refused);
// errTimeout when end comes first.
func dial(ap netip.AddrPort, end time.Time) (net.Conn, bool, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if ap.Addr().Is6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, true, err
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return nil, true, err
	}
	for {
		left := time.Until(end)
		if left <= 0 {
			unix.Close(fd)
			return nil, false, errTimeout
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int((left+time.Millisecond-1)/time.Millisecond))
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return nil, false, err
		}
		break
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soerr != 0 {
		err = unix.Errno(soerr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, false, err
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	nc, err := net.FileConn(f)
	return nc, false, err
}
