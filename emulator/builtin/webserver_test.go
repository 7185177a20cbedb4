package builtin

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The web server answers as the textbook's python server
// (http.server.BaseHTTPRequestHandler with do_GET, HTTP/1.0) would; the
// expected answers and log lines are python's, but for the Server header
// and the wording of the error pages.
func TestWebServerAnswers(t *testing.T) {
	at := time.Date(2026, 11, 22, 4, 33, 54, 0, time.Local)
	date := "Date: " + at.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") + "\r\n"
	logDate := "10.244.0.7 - - [22/Nov/2026 04:33:54] "
	ok := "HTTP/1.0 200 OK\r\nServer: labctl-web-server\r\n" + date + "Content-type: text/html\r\n\r\n"
	errHead := func(code int, msg string) string {
		return "HTTP/1.0 " + strconv.Itoa(code) + " " + msg + "\r\nServer: labctl-web-server\r\n" + date +
			"Connection: close\r\nContent-Type: text/html;charset=utf-8\r\n"
	}
	long := strings.Repeat("a", maxRequestLine)
	for _, tc := range []struct {
		name, request string
		answer        string // the whole answer; for errors, its head up to Content-Length
		body          string // for errors: a part of the page
		log           []string
	}{
		{
			name:    "curl",
			request: "GET / HTTP/1.1\r\nHost: 10.244.0.2\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
			answer:  ok + "\nHTTP Server IP address: 10.244.0.2\nRequest path: /\n",
			log:     []string{logDate + `"GET / HTTP/1.1" 200 -`},
		},
		{
			name:    "path and query kept as sent",
			request: "GET /some/path?q=1 HTTP/1.0\r\n\r\n",
			answer:  ok + WebBody("10.244.0.2", "/some/path?q=1"),
			log:     []string{logDate + `"GET /some/path?q=1 HTTP/1.0" 200 -`},
		},
		{
			name:    "bare LF line ends",
			request: "GET /lf HTTP/1.1\nHost: x\n\n",
			answer:  ok + WebBody("10.244.0.2", "/lf"),
			log:     []string{logDate + `"GET /lf HTTP/1.1" 200 -`},
		},
		{
			name:    "leading slashes folded",
			request: "GET //evil.example/x HTTP/1.1\r\n\r\n",
			answer:  ok + WebBody("10.244.0.2", "/evil.example/x"),
			log:     []string{logDate + `"GET //evil.example/x HTTP/1.1" 200 -`},
		},
		{
			name:    "HTTP/0.9: the body alone",
			request: "GET /old\r\n",
			answer:  WebBody("10.244.0.2", "/old"),
			log:     []string{logDate + `"GET /old" 200 -`},
		},
		{
			name:    "POST is not implemented",
			request: "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
			answer:  errHead(501, "Unsupported method ('POST')"),
			body:    "<p>Message: Unsupported method (&#x27;POST&#x27;).</p>",
			log: []string{
				logDate + "code 501, message Unsupported method ('POST')",
				logDate + `"POST / HTTP/1.1" 501 -`,
			},
		},
		{
			name:    "HEAD neither, and without a body",
			request: "HEAD / HTTP/1.1\r\n\r\n",
			answer:  errHead(501, "Unsupported method ('HEAD')") + "Content-Length: ",
			log: []string{
				logDate + "code 501, message Unsupported method ('HEAD')",
				logDate + `"HEAD / HTTP/1.1" 501 -`,
			},
		},
		{
			// Python checks the version before it takes it, so these
			// errors go out as to an HTTP/0.9 client: the page alone.
			name:    "HTTP/2 is refused",
			request: "GET / HTTP/2.0\r\n\r\n",
			body:    "<p>Error code: 505</p>",
			log:     []string{logDate + "code 505, message Invalid HTTP version (2.0)", logDate + `"GET / HTTP/2.0" 505 -`},
		},
		{
			name:    "a bad version",
			request: "GET / HTTP/1.x\r\n\r\n",
			body:    "<p>Message: Bad request version (&#x27;HTTP/1.x&#x27;).</p>",
			log:     []string{logDate + "code 400, message Bad request version ('HTTP/1.x')", logDate + `"GET / HTTP/1.x" 400 -`},
		},
		{
			name:    "not a version at all",
			request: "GET / FTP\r\n\r\n",
			body:    "<p>Error code: 400</p>",
			log:     []string{logDate + "code 400, message Bad request version ('FTP')", logDate + `"GET / FTP" 400 -`},
		},
		{
			name:    "four words",
			request: "GET / x HTTP/1.1\r\n\r\n",
			answer:  errHead(400, `Bad request syntax ('GET / x HTTP/1.1')`),
			log:     []string{logDate + "code 400, message Bad request syntax ('GET / x HTTP/1.1')", logDate + `"GET / x HTTP/1.1" 400 -`},
		},
		{
			name:    "one word: an HTTP/0.9 error, the page alone",
			request: "HELLO\r\n",
			body:    "<p>Error code: 400</p>",
			log:     []string{logDate + "code 400, message Bad request syntax ('HELLO')", logDate + `"HELLO" 400 -`},
		},
		{
			name:    "HTTP/0.9 knows only GET",
			request: "PUT /x\r\n",
			body:    "Bad HTTP/0.9 request type (&#x27;PUT&#x27;)",
			log:     []string{logDate + "code 400, message Bad HTTP/0.9 request type ('PUT')", logDate + `"PUT /x" 400 -`},
		},
		{
			name:    "a request line too long",
			request: "GET /" + long + " HTTP/1.1\r\n\r\n",
			answer:  errHead(414, "Request-URI Too Long"),
			log:     []string{logDate + "code 414, message Request-URI Too Long", logDate + `"" 414 -`},
		},
		{
			name:    "a header line too long",
			request: "GET / HTTP/1.1\r\nX: " + long + "\r\n\r\n",
			answer:  errHead(431, "Line too long"),
			log:     []string{logDate + "code 431, message Line too long", logDate + `"GET / HTTP/1.1" 431 -`},
		},
		{
			name:    "too many headers",
			request: "GET / HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", maxHeaders+1) + "\r\n",
			answer:  errHead(431, "Too many headers"),
			log:     []string{logDate + "code 431, message Too many headers", logDate + `"GET / HTTP/1.1" 431 -`},
		},
		{
			name:    "a hundred headers are fine",
			request: "GET / HTTP/1.1\r\n" + strings.Repeat("X: y\r\n", maxHeaders) + "\r\n",
			answer:  ok + WebBody("10.244.0.2", "/"),
			log:     []string{logDate + `"GET / HTTP/1.1" 200 -`},
		},
		{
			name:    "control characters cannot forge log lines",
			request: "GET /a\x1b[2J\x07b HTTP/1.1\r\n\r\n",
			answer:  ok + WebBody("10.244.0.2", "/a\x1b[2J\x07b"),
			log:     []string{logDate + `"GET /a\x1b[2J\x07b HTTP/1.1" 200 -`},
		},
		{
			name:    "python's whitespace splits the request line",
			request: "GET\x1f/\x1c\x0bHTTP/1.0\r\n\r\n",
			answer:  ok + WebBody("10.244.0.2", "/"),
			log:     []string{logDate + `"GET\x1f/\x1c\x0bHTTP/1.0" 200 -`},
		},
		{
			name:    "a quote in the method picks python's other quotes",
			request: "GE'T / HTTP/1.1\r\n\r\n",
			answer:  errHead(501, `Unsupported method ("GE'T")`),
			log:     []string{logDate + `code 501, message Unsupported method ("GE'T")`, logDate + `"GE'T / HTTP/1.1" 501 -`},
		},
		{name: "a blank line: no answer", request: "\r\n"},
		{name: "closed at once: no answer", request: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, log bytes.Buffer
			h := &webHandler{podIP: "10.244.0.2", log: newLineWriter(&log), now: func() time.Time { return at }}
			h.handle(bufio.NewReader(strings.NewReader(tc.request)), &out, "10.244.0.7")
			got := out.String()
			isError := tc.body != "" || strings.Contains(tc.answer, "Connection: close")
			if !isError {
				if got != tc.answer {
					t.Errorf("answer:\n%q\nwant:\n%q", got, tc.answer)
				}
			} else if !strings.HasPrefix(got, tc.answer) || !strings.Contains(got, tc.body) ||
				(tc.answer == "" && strings.HasPrefix(got, "HTTP/")) {
				t.Errorf("answer:\n%q\nwant it to start with %q and contain %q", got, tc.answer, tc.body)
			}
			if strings.HasPrefix(tc.request, "HEAD") && strings.Contains(got, "<html") {
				t.Errorf("HEAD got a body:\n%s", got)
			}
			var want string
			for _, l := range tc.log {
				want += l + "\n"
			}
			if log.String() != want {
				t.Errorf("log:\n%s\nwant:\n%s", log.String(), want)
			}
		})
	}
}

// An error page says how long it is; the answer is exactly that long.
func TestWebServerErrorLength(t *testing.T) {
	var out bytes.Buffer
	h := &webHandler{podIP: "10.0.0.1", log: newLineWriter(io.Discard)}
	h.handle(bufio.NewReader(strings.NewReader("DELETE /x HTTP/1.1\r\n\r\n")), &out, "c")
	head, body, found := strings.Cut(out.String(), "\r\n\r\n")
	if !found || !strings.Contains(head+"\r\n", "\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n") {
		t.Errorf("Content-Length does not match a body of %d bytes:\n%s", len(body), out.String())
	}
}

// Over a connection: the answer, then the server's FIN; a request body
// nobody read does not turn the close into a reset that loses the answer.
func TestWebServerConnection(t *testing.T) {
	server, client := net.Pipe()
	h := &webHandler{podIP: "10.0.0.1", log: newLineWriter(io.Discard)}
	done := make(chan struct{})
	go func() { h.serve(server); close(done) }()
	go io.WriteString(client, "GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.0 200 OK\r\n") || !strings.HasSuffix(string(got), WebBody("10.0.0.1", "/pipe")) {
		t.Errorf("answer %q", got)
	}
	<-done
}

func TestPyRepr(t *testing.T) {
	for in, want := range map[string]string{
		"POST":                 `'POST'`,
		"it's":                 `"it's"`,
		`a'b"c`:                `'a\'b"c'`,
		"a\\b":                 `'a\\b'`,
		"t\tn\n":               `'t\tn\n'`,
		"\x00\x7f\u00a0\u00e9": `'\x00\x7f\xa0é'`,
	} {
		if got := pyRepr(in); got != want {
			t.Errorf("pyRepr(%q) = %s, want %s", in, got, want)
		}
	}
}
