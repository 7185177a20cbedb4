package builtin

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The built-in web-server speaks HTTP the way the textbook's server does:
// python's http.server.BaseHTTPRequestHandler with only do_GET, whose
// protocol is HTTP/1.0. Each connection carries one request; the answer has
// no Content-Length and ends when the server closes the connection. That is
// what a student's capture of the textbook's lab shows (request, answer,
// FIN from the server), and what this server reproduces: the request line
// and header rules, the status codes and messages of python's errors (400,
// 414, 431, 501, 505, and headerless HTTP/0.9 answers), and its access log.
//
// It is written on net, not net/http's server, on purpose too: a lab runs a
// hundred of these, and a connection here runs a few kilobytes of code
// instead of net/http's whole server machinery, which keeps each server's
// resident memory down.

// webServerName is the Server header (python's says BaseHTTP/0.6 Python/3.x).
const webServerName = "labctl-web-server"

const (
	maxRequestLine = 65536 // python's limit: longer is 414
	maxHeaderLine  = 65536 // longer is 431 "Line too long"
	maxHeaders     = 100   // more is 431 "Too many headers"
	// A request must arrive within this (python waits forever; a lab's
	// half-open connections should not pile up).
	webReadTimeout = 10 * time.Second
	// Running requests get this long to finish after SIGTERM.
	webShutdownGrace = time.Second
)

// WebBody is the web server's answer, byte for byte the textbook's python
// server's.
func WebBody(podIP, path string) string {
	return "\nHTTP Server IP address: " + podIP + "\nRequest path: " + path + "\n"
}

func webServer(ctx context.Context, cfg Config, serving func()) error {
	ip := podIP(cfg)
	ln, err := net.Listen("tcp4", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	fmt.Printf("Starting custom HTTP server: (%s:%d)\n", ip, cfg.Port)
	serving()

	srv := &webHandler{podIP: ip, log: newLineWriter(os.Stderr)}
	var conns sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	errc := make(chan error, 1)
	go func() {
		var backoff time.Duration
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				errc <- nil
				return
			}
			if err != nil {
				// Out of file descriptors, say: wait, as net/http does,
				// instead of giving up the server.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				fmt.Fprintf(os.Stderr, "accept: %v; retrying in %v\n", err, backoff)
				time.Sleep(backoff)
				continue
			}
			backoff = 0
			mu.Lock()
			open[c] = true
			mu.Unlock()
			conns.Go(func() {
				srv.serve(c)
				mu.Lock()
				delete(open, c)
				mu.Unlock()
			})
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	ln.Close()
	done := make(chan struct{})
	go func() { conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(webShutdownGrace):
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		<-done
	}
	fmt.Println("Stopping HTTP server")
	return nil
}

// webHandler answers the connections of one web server.
type webHandler struct {
	podIP string
	log   *lineWriter
	now   func() time.Time // for tests; time.Now when nil
}

func (h *webHandler) clock() time.Time {
	if h.now != nil {
		return h.now()
	}
	return time.Now()
}

// webRequest is what is known of a request while it is answered.
type webRequest struct {
	client      string // the client's address, for the log
	requestLine string // as received, without CR LF
	version     string // "HTTP/0.9" until the request line says otherwise
	command     string
	path        string
}

// serve answers the one request a connection carries and closes it.
func (h *webHandler) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(webReadTimeout))
	client := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(client); err == nil {
		client = host
	}
	r := bufio.NewReaderSize(c, 1024)
	w := bufio.NewWriterSize(c, 512)
	h.handle(r, w, client)
	if w.Flush() != nil {
		return
	}
	// Closing a socket with unread input resets the connection, and the
	// client may lose the answer (a POST's body, say, that nobody read).
	// So end our side first and read what is left for a moment: the
	// client sees the answer and then our FIN, as from python's server.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(webShutdownGrace))
		_, _ = io.CopyN(io.Discard, r, 256<<10)
	}
}

// handle reads one request from r and writes the answer to w.
func (h *webHandler) handle(r *bufio.Reader, w io.Writer, client string) {
	req := &webRequest{client: client, version: "HTTP/0.9"}
	line, tooLong, err := readLine(r, maxRequestLine)
	if tooLong {
		// Python forgets the line and answers with headers.
		req.version = ""
		h.sendError(w, req, 414, "Request-URI Too Long")
		return
	}
	if err != nil && len(line) == 0 {
		return // closed, or silent until the timeout: nothing to answer
	}
	req.requestLine = latin1(line)
	if code, msg := req.parseRequestLine(); code != 0 {
		h.sendError(w, req, code, msg)
		return
	}
	if req.command == "" {
		return // a blank line: python answers nothing either
	}
	if req.version != "HTTP/0.9" {
		if code, msg := readHeaders(r); code != 0 {
			h.sendError(w, req, code, msg)
			return
		}
	}
	if req.command != "GET" {
		h.sendError(w, req, 501, "Unsupported method ("+pyRepr(req.command)+")")
		return
	}
	// do_GET
	h.sendStatus(w, req, 200, "OK")
	h.header(w, req, "Content-type", "text/html")
	h.endHeaders(w, req)
	io.WriteString(w, WebBody(h.podIP, req.path))
}

// parseRequestLine splits the request line the way python's parse_request
// does and returns the error to send, if any. A blank line leaves command
// empty.
func (req *webRequest) parseRequestLine() (int, string) {
	words := strings.FieldsFunc(req.requestLine, pyIsSpace)
	if len(words) == 0 {
		return 0, ""
	}
	if len(words) >= 3 {
		// Checked before it is taken: a request with a bad version is
		// answered as an HTTP/0.9 one, without status line or headers.
		version := words[len(words)-1]
		major, _, ok := parseHTTPVersion(version)
		if !ok {
			return 400, "Bad request version (" + pyRepr(version) + ")"
		}
		if major >= 2 {
			return 505, "Invalid HTTP version (" + strings.TrimPrefix(version, "HTTP/") + ")"
		}
		req.version = version
	}
	if len(words) > 3 || len(words) == 1 {
		return 400, "Bad request syntax (" + pyRepr(req.requestLine) + ")"
	}
	req.command, req.path = words[0], words[1]
	if len(words) == 2 && req.command != "GET" {
		return 400, "Bad HTTP/0.9 request type (" + pyRepr(req.command) + ")"
	}
	// Python folds a leading "//" into "/" (so a path is never taken for
	// a network location).
	if strings.HasPrefix(req.path, "//") {
		req.path = "/" + strings.TrimLeft(req.path, "/")
	}
	return 0, ""
}

// pyIsSpace is python's str.isspace for the latin-1 characters a request
// line decodes to; it has four separators more than Go's unicode.IsSpace.
func pyIsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
		return true
	}
	return false
}

// parseHTTPVersion accepts HTTP/M.N with decimal digits only, at most ten
// of them each, as python does.
func parseHTTPVersion(v string) (major, minor int, ok bool) {
	rest, found := strings.CutPrefix(v, "HTTP/")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, ".")
	if !found || strings.Contains(b, ".") {
		return 0, 0, false
	}
	num := func(s string) (int, bool) {
		if s == "" || len(s) > 10 {
			return 0, false
		}
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	major, ok1 := num(a)
	minor, ok2 := num(b)
	return major, minor, ok1 && ok2
}

// readHeaders reads header lines up to the blank line; the server needs
// none of them, but python's limits apply.
func readHeaders(r *bufio.Reader) (int, string) {
	for n := 0; ; n++ {
		line, tooLong, err := readLine(r, maxHeaderLine)
		if tooLong {
			return 431, "Line too long"
		}
		if len(line) == 0 {
			// The blank line, or the end of the stream: python takes
			// both as the end of the headers.
			return 0, ""
		}
		if n >= maxHeaders {
			return 431, "Too many headers"
		}
		if err != nil {
			return 0, ""
		}
	}
}

// readLine reads up to and without the next LF (and a CR before it). A
// line longer than max is reported as too long.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > max+1 {
			return nil, true, nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return line, false, err
	}
}

// sendError answers with an error status, as python's send_error: the
// message is the reason phrase, the body a short HTML page (none for HEAD).
func (h *webHandler) sendError(w io.Writer, req *webRequest, code int, msg string) {
	h.logf(req, "code %d, message %s", code, msg)
	body := fmt.Sprintf("<!DOCTYPE HTML>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Error response</title></head>\n"+
		"<body>\n<h1>Error response</h1>\n<p>Error code: %d</p>\n<p>Message: %s.</p>\n</body>\n</html>\n", code, htmlEscape(msg))
	h.sendStatus(w, req, code, msg)
	h.header(w, req, "Connection", "close")
	h.header(w, req, "Content-Type", "text/html;charset=utf-8")
	h.header(w, req, "Content-Length", strconv.Itoa(len(body)))
	h.endHeaders(w, req)
	if req.command != "HEAD" {
		io.WriteString(w, body)
	}
}

// sendStatus logs the request and writes the status line and the headers
// every answer has. An HTTP/0.9 request gets no status line and no headers.
func (h *webHandler) sendStatus(w io.Writer, req *webRequest, code int, reason string) {
	h.logf(req, "\"%s\" %d -", req.requestLine, code)
	if req.version == "HTTP/0.9" {
		return
	}
	fmt.Fprintf(w, "HTTP/1.0 %d %s\r\n", code, reason)
	h.header(w, req, "Server", webServerName)
	h.header(w, req, "Date", h.clock().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"))
}

func (h *webHandler) header(w io.Writer, req *webRequest, name, value string) {
	if req.version != "HTTP/0.9" {
		fmt.Fprintf(w, "%s: %s\r\n", name, value)
	}
}

func (h *webHandler) endHeaders(w io.Writer, req *webRequest) {
	if req.version != "HTTP/0.9" {
		io.WriteString(w, "\r\n")
	}
}

// logf writes a line of python's log format to the server's stderr:
// client - - [22/Nov/2026 04:33:54] message, control characters escaped
// so that a request cannot forge log lines.
func (h *webHandler) logf(req *webRequest, format string, args ...any) {
	msg := escapeControls(fmt.Sprintf(format, args...))
	h.log.WriteLine(req.client + " - - [" + h.clock().Format("02/Jan/2006 15:04:05") + "] " + msg)
}

// lineWriter writes whole lines, one Write each, so the lines of
// concurrent connections never interleave in the log.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

func (l *lineWriter) WriteLine(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s+"\n")
}

// escapeControls writes C0 and C1 control characters as \xNN.
func escapeControls(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			fmt.Fprintf(&b, `\x%02x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// latin1 decodes bytes as ISO-8859-1, as python decodes a request line.
func latin1(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		s.WriteRune(rune(c))
	}
	return s.String()
}

// pyRepr quotes a string the way python's repr does for the messages of
// its HTTP errors.
func pyRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\' || r == rune(quote):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || (r >= 0x7f && r <= 0xa0) || r == 0xad:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// htmlEscape escapes what python's html.escape does.
func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#x27;").Replace(s)
}
