package curl

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"
)

// response reads one response on c, echoing its header lines as they
// arrived (case, order, line ends), and its body to the output. It
// returns the next URL when -L follows a redirect.
func (x *transfer) response(c *conn, u *urlParts, method string) (*urlParts, error) {
	cfg := x.cfg
	x.applyDeadline(c)
	x.expected = -1
	x.sizeDownload = 0
	x.bodyStarted = false
	x.headers = nil
	x.numHeaders = 0
	x.contentType = nil
	chunked, closing := false, false
	var location string
	got := false // any byte of this response
	status := true
	for {
		line, err := x.readLine(c, &got)
		if err != nil {
			return nil, err
		}
		if status {
			if err := x.statusLine(line, &closing); err != nil {
				return nil, err
			}
			x.t.trace.headerIn(line)
			x.clientHeader(line)
			status = false
			continue
		}
		if line == "\r\n" || line == "\n" {
			if x.code >= 100 && x.code < 200 {
				// A provisional response: another status line follows.
				// curl's trace leaves out its empty line.
				x.clientHeader(line)
				status = true
				continue
			}
			if x.code == 204 || x.code == 304 {
				x.expected = 0 // bodyless by definition
			}
			if x.expected < 0 && !chunked && !closing && x.httpVersion == "1.1" && method != "HEAD" {
				x.info("no chunk, no close, no size. Assume close to signal end")
				closing = true
			}
			x.clientHeader(line)
			if (cfg.fail && !cfg.failWithBody) && x.code >= 400 {
				return nil, failf(curlHTTPReturnedError, "The requested URL returned error: %d", x.code)
			}
			x.t.trace.headerIn(line)
			break
		}
		name, val := splitHeader(line)
		switch strings.ToLower(name) {
		case "content-length":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
				x.expected = n
				x.meter.setDownloadSize(n)
			}
		case "transfer-encoding":
			if strings.Contains(strings.ToLower(val), "chunked") {
				chunked = true
			}
		case "connection":
			switch {
			case strings.EqualFold(val, "close"):
				closing = true
			case strings.EqualFold(val, "keep-alive") && x.httpVersion == "1.0":
				x.info("HTTP/1.0 connection set to keep alive")
				closing = false
			}
		case "proxy-connection":
			if c.viaProxy && strings.EqualFold(val, "close") {
				closing = true
			}
		case "location":
			if x.code >= 300 && x.code < 400 && location == "" {
				location = val
			}
		case "content-type":
			v := val
			x.contentType = &v
		}
		x.headers = append(x.headers, line)
		x.numHeaders++
		x.t.trace.headerIn(line)
		x.clientHeader(line)
	}
	c.closing = closing
	if chunked {
		x.expected = -1
	}

	var next *urlParts
	if location != "" {
		ref, err := u.resolveRef(location)
		if err == nil {
			if cfg.location {
				next = ref
			} else {
				x.redirectURL = ref.String()
			}
		}
	}
	noBody := method == "HEAD" || x.code == 204 || x.code == 304
	if next != nil && closing {
		// Following a redirect on a connection that closes anyway: no
		// need to read its body.
		noBody = true
	}
	if !noBody {
		if err := x.body(c, chunked, next != nil); err != nil {
			return nil, err
		}
	}
	x.meter.done()
	if closing {
		x.closeConn(c)
	} else {
		x.info("Connection #%d to host %s left intact", c.id, c.host)
		if x.t.idle != nil && x.t.idle != c {
			x.t.idle.nc.Close()
		}
		x.t.idle = c
	}
	return next, nil
}

// statusLine reads "HTTP/1.1 200 OK" as curl does.
func (x *transfer) statusLine(line string, closing *bool) error {
	s := strings.TrimRight(line, "\r\n")
	var major, minor, code int
	switch {
	case len(s) >= 12 && strings.HasPrefix(s, "HTTP/") && s[6] == '.' && s[8] == ' ':
		major, minor = int(s[5]-'0'), int(s[7]-'0')
		c, err := strconv.Atoi(s[9:12])
		if err != nil {
			return failf(curlWeirdServerReply, "Unsupported HTTP version in response")
		}
		code = c
	case len(s) >= 10 && strings.HasPrefix(s, "HTTP/2 "):
		major, minor = 2, 0
		c, err := strconv.Atoi(s[7:10])
		if err != nil {
			return failf(curlWeirdServerReply, "Unsupported HTTP version in response")
		}
		code = c
	default:
		return failf(curlUnsupportedProto, "Received HTTP/0.9 when not allowed")
	}
	switch {
	case major == 1 && minor == 0:
		x.httpVersion = "1.0"
		x.info("HTTP 1.0, assume close after body")
		*closing = true
	case major == 1 && minor == 1:
		x.httpVersion = "1.1"
	case major == 2:
		x.httpVersion = "2"
	default:
		return failf(curlUnsupportedProto, "Unsupported HTTP version (%d.%d) in response", major, minor)
	}
	x.code = code
	return nil
}

func splitHeader(line string) (string, string) {
	name, val, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
	return name, strings.TrimSpace(val)
}

// clientHeader passes a header line where curl's header callback puts it:
// to the output with -i (and -I), to the -D file.
func (x *transfer) clientHeader(line string) {
	x.sizeHeader += int64(len(line))
	if x.cfg.include {
		_, _ = io.WriteString(x.out, line)
	}
	if x.hdr != nil {
		_, _ = io.WriteString(x.hdr, line)
	}
}

// readLine returns the next line of the response head, line end
// included, reading as curl does (readSize at a time).
func (x *transfer) readLine(c *conn, got *bool) (string, error) {
	for {
		if i := bytes.IndexByte(c.buf, '\n'); i >= 0 {
			line := string(c.buf[:i+1])
			c.buf = c.buf[i+1:]
			return line, nil
		}
		n, err := x.read(c)
		if n > 0 {
			if !*got {
				*got = true
				x.tStartTx = time.Since(x.start)
			}
			continue
		}
		if err == io.EOF {
			if !*got {
				return "", failf(curlGotNothing, "Empty reply from server")
			}
			return "", failf(curlRecvError, "Connection died, tried 1 times before giving up")
		}
		if err != nil {
			return "", x.ioError(err, false)
		}
	}
}

// read appends one read's worth to c.buf.
func (x *transfer) read(c *conn) (int, error) {
	buf := make([]byte, readSize)
	n, err := c.nc.Read(buf)
	c.buf = append(c.buf, buf[:n]...)
	return n, err
}

// body reads the body: Content-Length bytes, chunks, or all until the
// server closes. While following a redirect it is read and dropped.
func (x *transfer) body(c *conn, chunked, ignore bool) error {
	var dec *chunkDecoder
	if chunked {
		dec = &chunkDecoder{}
	}
	for {
		if len(c.buf) == 0 {
			if x.expected >= 0 && x.sizeDownload >= x.expected {
				return nil
			}
			if dec != nil && dec.done {
				return nil
			}
			n, err := x.read(c)
			if n == 0 {
				switch {
				case err == io.EOF && dec != nil:
					return failf(curlPartialFile, "transfer closed with outstanding read data remaining")
				case err == io.EOF && x.expected >= 0:
					return failf(curlPartialFile, "transfer closed with %d bytes remaining to read", x.expected-x.sizeDownload)
				case err == io.EOF:
					c.closing = true
					return nil
				case err != nil:
					return x.ioError(err, false)
				}
				continue
			}
		}
		chunk := c.buf
		if x.expected >= 0 && dec == nil {
			// Reads stop at the announced length (curl caps each read).
			if left := x.expected - x.sizeDownload; int64(len(chunk)) > left {
				chunk = chunk[:left]
			}
		}
		if !x.bodyStarted {
			x.bodyStarted = true
			if ignore {
				x.info("Ignoring the response-body")
			}
		}
		x.t.trace.data('{', len(chunk))
		c.buf = c.buf[len(chunk):]
		payload := chunk
		if dec != nil {
			var err error
			payload, err = dec.feed(chunk, c)
			if err != nil {
				return err
			}
		}
		x.sizeDownload += int64(len(payload))
		x.meter.downloaded(x.sizeDownload)
		if !ignore && len(payload) > 0 {
			if _, err := x.out.Write(payload); err != nil {
				if x.out.err != nil {
					warnf(x.cfg, "Failed to open the file %s: %s\n", x.out.name, strerror(x.out.err))
				}
				return failf(curlWriteError, "Failure writing output to destination")
			}
		}
		if dec != nil && dec.done {
			return nil
		}
	}
}

// chunkDecoder undoes chunked transfer coding as bytes arrive.
type chunkDecoder struct {
	state   int // 0 size line, 1 data, 2 CRLF after data, 3 trailers
	line    []byte
	left    int64
	done    bool
	payload []byte
}

func (d *chunkDecoder) feed(b []byte, c *conn) ([]byte, error) {
	d.payload = d.payload[:0]
	for len(b) > 0 && !d.done {
		switch d.state {
		case 0, 2, 3:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				d.line = append(d.line, b...)
				return d.payload, nil
			}
			line := strings.TrimRight(string(append(d.line, b[:i]...)), "\r")
			d.line, b = d.line[:0], b[i+1:]
			switch d.state {
			case 0:
				size, _, _ := strings.Cut(line, ";")
				n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
				if err != nil || n < 0 {
					return nil, failf(curlRecvError, "Illegal or missing hexadecimal sequence in chunked-encoding")
				}
				d.left = n
				d.state = 1
				if n == 0 {
					d.state = 3
				}
			case 2:
				d.state = 0
			case 3:
				if line == "" {
					d.done = true
				}
			}
		case 1:
			n := min(int64(len(b)), d.left)
			d.payload = append(d.payload, b[:n]...)
			b = b[n:]
			d.left -= n
			if d.left == 0 {
				d.state = 2
			}
		}
	}
	if d.done && len(b) > 0 {
		c.buf = append(append([]byte(nil), b...), c.buf...) // what follows belongs to the next response
	}
	return d.payload, nil
}
