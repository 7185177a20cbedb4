package curl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// curl's exit codes.
const (
	curlOK              = 0
	curlUnsupported     = 1
	curlUsage           = 2
	curlBadURL          = 3
	curlResolve         = 6
	curlConnect         = 7
	curlHTTPError       = 22
	curlWriteError      = 23
	curlReadError       = 26
	curlTimeout         = 28
	curlTooManyRedirect = 47
	curlEmptyReply      = 52
	curlRecvError       = 56
)

type curlOpts struct {
	silent, showError, verbose, include, head, fail, location, insecure bool
	output, method, data, writeOut, userAgent                           string
	headers                                                             []string
	maxTime, connectTimeout                                             time.Duration
	urls                                                                []string
}

const curlUsageText = `Usage: curl [options...] <url>...
labctl's curl applet. Options:
 -d, --data <data>           send data (POST unless -X says otherwise); @file reads a file
 -f, --fail                  exit 22 on HTTP errors, printing no body
 -H, --header <header>       add a request header
 -i, --include               print the response headers too
 -I, --head                  send HEAD and print the headers
 -k, --insecure              do not verify TLS certificates
 -L, --location              follow redirects
 -m, --max-time <seconds>    give up after this long
     --connect-timeout <s>   give up connecting after this long
 -o, --output <file>         write the body to a file
 -s, --silent                no error messages
 -S, --show-error            error messages even with -s
 -v, --verbose               show the request and response headers on stderr
 -w, --write-out <format>    print %{http_code}, %{remote_ip}, %{time_total}... after the body
 -X, --request <method>      use this method
 -A, --user-agent <name>     send this User-Agent
`

func parseCurlArgs(args []string) (*curlOpts, error) {
	o := &curlOpts{userAgent: "curl/labctl"}
	takesValue := map[string]*string{
		"-o": &o.output, "--output": &o.output, "-X": &o.method, "--request": &o.method,
		"-d": &o.data, "--data": &o.data, "--data-raw": &o.data, "--data-binary": &o.data,
		"-w": &o.writeOut, "--write-out": &o.writeOut, "-A": &o.userAgent, "--user-agent": &o.userAgent,
	}
	flags := map[string]*bool{
		"-s": &o.silent, "--silent": &o.silent, "-S": &o.showError, "--show-error": &o.showError,
		"-v": &o.verbose, "--verbose": &o.verbose, "-i": &o.include, "--include": &o.include,
		"-I": &o.head, "--head": &o.head, "-f": &o.fail, "--fail": &o.fail,
		"-L": &o.location, "--location": &o.location, "-k": &o.insecure, "--insecure": &o.insecure,
	}
	ignored := map[string]bool{"-4": true, "--ipv4": true, "-#": true, "--progress-bar": true, "--no-progress-meter": true}
	value := func(i *int, name, attached string) (string, error) {
		if attached != "" {
			return attached, nil
		}
		if *i+1 >= len(args) {
			return "", fmt.Errorf("option %s: requires parameter", name)
		}
		*i++
		return args[*i], nil
	}
	seconds := func(name, v string) (time.Duration, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("option %s: expected a proper numerical parameter", name)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			return nil, errHelp
		case a == "-V" || a == "--version":
			return nil, errVersion
		case strings.HasPrefix(a, "--"):
			name, attached, _ := strings.Cut(a, "=")
			switch {
			case flags[name] != nil:
				*flags[name] = true
			case takesValue[name] != nil:
				v, err := value(&i, name, attached)
				if err != nil {
					return nil, err
				}
				*takesValue[name] = v
			case name == "--header":
				v, err := value(&i, name, attached)
				if err != nil {
					return nil, err
				}
				o.headers = append(o.headers, v)
			case name == "--max-time" || name == "--connect-timeout":
				v, err := value(&i, name, attached)
				if err != nil {
					return nil, err
				}
				d, err := seconds(name, v)
				if err != nil {
					return nil, err
				}
				if name == "--max-time" {
					o.maxTime = d
				} else {
					o.connectTimeout = d
				}
			case ignored[name]:
			default:
				return nil, fmt.Errorf("option %s: is unknown", name)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// Short options combine: -sS, -sv, -o file or -ofile.
		chars:
			for j := 1; j < len(a); j++ {
				name := "-" + string(a[j])
				rest := a[j+1:]
				switch {
				case flags[name] != nil:
					*flags[name] = true
				case ignored[name]:
				case takesValue[name] != nil || name == "-H" || name == "-m":
					v, err := value(&i, name, rest)
					if err != nil {
						return nil, err
					}
					switch name {
					case "-H":
						o.headers = append(o.headers, v)
					case "-m":
						if o.maxTime, err = seconds(name, v); err != nil {
							return nil, err
						}
					default:
						*takesValue[name] = v
					}
					break chars // the rest of the word was the value
				case name == "-h":
					return nil, errHelp
				default:
					return nil, fmt.Errorf("option %s: is unknown", name)
				}
			}
		default:
			o.urls = append(o.urls, a)
		}
	}
	if len(o.urls) == 0 {
		return nil, errors.New("no URL specified")
	}
	return o, nil
}

var (
	errHelp    = errors.New("help")
	errVersion = errors.New("version")
)

// curlError is a failure with curl's exit code.
type curlError struct {
	code int
	msg  string
}

func (e *curlError) Error() string { return fmt.Sprintf("(%d) %s", e.code, e.msg) }

// Main runs curl with args (without the program name) and returns its exit
// code.
func Main(args []string) int {
	o, err := parseCurlArgs(args)
	switch {
	case errors.Is(err, errHelp):
		fmt.Print(curlUsageText)
		return curlOK
	case errors.Is(err, errVersion):
		fmt.Println("curl (labctl applet): HTTP GET, HEAD, POST and friends; no DNS inside labs")
		return curlOK
	case err != nil:
		fmt.Fprintf(os.Stderr, "curl: %v\ncurl: try 'curl --help' for more information\n", err)
		return curlUsage
	}
	out := io.Writer(os.Stdout)
	if o.output != "" && o.output != "-" {
		f, err := os.Create(o.output)
		if err != nil {
			fmt.Fprintf(os.Stderr, "curl: (%d) Failed to open the file %s: %v\n", curlWriteError, o.output, err)
			return curlWriteError
		}
		defer f.Close()
		out = f
	}
	code := curlOK
	for _, u := range o.urls {
		if err := curlOne(o, u, out); err != nil {
			var ce *curlError
			if !errors.As(err, &ce) {
				ce = &curlError{curlRecvError, err.Error()}
			}
			if !o.silent || o.showError {
				fmt.Fprintf(os.Stderr, "curl: %v\n", ce)
			}
			code = ce.code
		}
	}
	return code
}

func curlOne(o *curlOpts, raw string, out io.Writer) error {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return &curlError{curlBadURL, "URL rejected: Malformed input to a URL function"}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return &curlError{curlUnsupported, fmt.Sprintf("Protocol %q not supported", u.Scheme)}
	}
	method := "GET"
	var body io.Reader
	if o.data != "" {
		method = "POST"
		data := o.data
		if strings.HasPrefix(data, "@") {
			b, err := os.ReadFile(data[1:])
			if err != nil {
				return &curlError{curlReadError, fmt.Sprintf("Failed to open %s", data[1:])}
			}
			data = string(b)
		}
		body = strings.NewReader(data)
	}
	if o.head {
		method = "HEAD"
	}
	if o.method != "" {
		method = o.method
	}
	ctx := context.Background()
	if o.maxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.maxTime)
		defer cancel()
	}
	start := time.Now()
	var remote string
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectStart: func(_, addr string) {
			if o.verbose {
				fmt.Fprintf(os.Stderr, "*   Trying %s...\n", addr)
			}
		},
		GotConn: func(info httptrace.GotConnInfo) {
			remote = info.Conn.RemoteAddr().String()
			if o.verbose {
				host, port, _ := net.SplitHostPort(remote)
				fmt.Fprintf(os.Stderr, "* Connected to %s (%s) port %s\n", u.Hostname(), host, port)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return &curlError{curlBadURL, err.Error()}
	}
	req.Header.Set("User-Agent", o.userAgent)
	req.Header.Set("Accept", "*/*")
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	connectTimeout := o.connectTimeout
	if connectTimeout == 0 {
		connectTimeout = 300 * time.Second // curl's default
	}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil, // a lab namespace reaches no proxy
			DialContext:       (&net.Dialer{Timeout: connectTimeout}).DialContext,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: o.insecure},
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if !o.location {
				return http.ErrUseLastResponse
			}
			if len(via) >= 50 {
				return &curlError{curlTooManyRedirect, "Maximum (50) redirects followed"}
			}
			return nil
		},
	}
	if o.verbose {
		fmt.Fprintf(os.Stderr, "> %s %s HTTP/1.1\n> Host: %s\n", method, req.URL.RequestURI(), u.Host)
		printHeaders(os.Stderr, "> ", req.Header)
		fmt.Fprintln(os.Stderr, ">")
	}
	resp, err := client.Do(req)
	if err != nil {
		return curlErr(err, u, time.Since(start))
	}
	defer resp.Body.Close()
	if o.verbose {
		fmt.Fprintf(os.Stderr, "< %s %s\n", resp.Proto, resp.Status)
		printHeaders(os.Stderr, "< ", resp.Header)
		fmt.Fprintln(os.Stderr, "<")
	}
	if o.fail && resp.StatusCode >= 400 {
		return &curlError{curlHTTPError, fmt.Sprintf("The requested URL returned error: %d", resp.StatusCode)}
	}
	if o.include || o.head {
		fmt.Fprintf(out, "%s %s\r\n", resp.Proto, resp.Status)
		printHeaders(out, "", resp.Header)
		fmt.Fprint(out, "\r\n")
	}
	n, err := io.Copy(out, resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return &curlError{curlTimeout, fmt.Sprintf("Operation timed out after %d milliseconds", time.Since(start).Milliseconds())}
		}
		return &curlError{curlRecvError, "Failure when receiving data from the peer"}
	}
	if o.writeOut != "" {
		// Like curl: the body may go to -o, the write-out always to stdout.
		fmt.Fprint(os.Stdout, writeOut(o.writeOut, resp, remote, n, time.Since(start)))
	}
	return nil
}

func printHeaders(w io.Writer, prefix string, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			fmt.Fprintf(w, "%s%s: %s\r\n", prefix, k, v)
		}
	}
}

// curlErr maps a failed request to curl's exit code and message.
func curlErr(err error, u *url.URL, took time.Duration) error {
	var ce *curlError
	if errors.As(err, &ce) {
		return ce
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return &curlError{curlResolve, "Could not resolve host: " + host}
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return &curlError{curlTimeout, fmt.Sprintf("Connection timed out after %d milliseconds", took.Milliseconds())}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &curlError{curlConnect, fmt.Sprintf("Failed to connect to %s port %s after %d ms: %s", host, port, took.Milliseconds(), connectReason(err))}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &curlError{curlEmptyReply, "Empty reply from server"}
	case errors.Is(err, syscall.ECONNRESET):
		return &curlError{curlRecvError, "Recv failure: Connection reset by peer"}
	}
	return &curlError{curlRecvError, err.Error()}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func connectReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "Couldn't connect to server"
	case errors.Is(err, syscall.ENETUNREACH):
		return "Network is unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "No route to host"
	}
	return "Couldn't connect to server"
}

// writeOut expands the -w variables labs use.
func writeOut(format string, resp *http.Response, remote string, size int64, took time.Duration) string {
	ip, port, _ := net.SplitHostPort(remote)
	r := strings.NewReplacer(
		"%{http_code}", fmt.Sprintf("%03d", resp.StatusCode),
		"%{response_code}", fmt.Sprintf("%03d", resp.StatusCode),
		"%{remote_ip}", ip,
		"%{remote_port}", port,
		"%{size_download}", strconv.FormatInt(size, 10),
		"%{time_total}", fmt.Sprintf("%.6f", took.Seconds()),
		"%{url_effective}", resp.Request.URL.String(),
		"%{content_type}", resp.Header.Get("Content-Type"),
		`\n`, "\n", `\t`, "\t", `\r`, "\r",
	)
	return r.Replace(format)
}
