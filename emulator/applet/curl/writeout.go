package curl

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// writeOut expands a -w format after the transfer as curl's ourWriteOut
// does: %{variable}, %header{name}, %% and \n \r \t; unknown variables are
// reported on stderr and skipped. %{stderr} and %{stdout} switch where the
// rest goes, %{onerror} stops here unless the transfer failed.
func (x *transfer) writeOut(format string, result int) {
	var w io.Writer = os.Stdout
	var b strings.Builder
	flush := func() {
		_, _ = io.WriteString(w, b.String())
		b.Reset()
	}
	for i := 0; i < len(format); {
		ch := format[i]
		switch {
		case ch == '%' && i+1 < len(format):
			switch {
			case format[i+1] == '%':
				b.WriteByte('%')
				i += 2
			case format[i+1] == '{':
				end := strings.IndexByte(format[i:], '}')
				if end < 0 {
					b.WriteString("%{")
					i += 2
					continue
				}
				name := format[i+2 : i+end]
				i += end + 1
				switch strings.ToLower(name) {
				case "onerror":
					if result == 0 {
						flush()
						return
					}
				case "stdout":
					flush()
					w = os.Stdout
				case "stderr":
					flush()
					w = os.Stderr
				default:
					v, ok := x.variable(strings.ToLower(name), result)
					if !ok {
						flush()
						fmt.Fprintf(os.Stderr, "curl: unknown --write-out variable: '%s'\n", name)
						continue
					}
					b.WriteString(v)
				}
			case strings.HasPrefix(format[i+1:], "header{"):
				rest := format[i+8:]
				end := strings.IndexByte(rest, '}')
				if end < 0 {
					b.WriteString("%header{")
					i += 8
					continue
				}
				b.WriteString(x.header(rest[:end]))
				i += 8 + end + 1
			default:
				b.WriteByte('%')
				b.WriteByte(format[i+1])
				i += 2
			}
		case ch == '\\' && i+1 < len(format):
			switch format[i+1] {
			case 'r':
				b.WriteByte('\r')
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte('\\')
				b.WriteByte(format[i+1])
			}
			i += 2
		default:
			b.WriteByte(ch)
			i++
		}
	}
	flush()
}

// header is the value of the last response's header name, the first of
// its name (%header{name}).
func (x *transfer) header(name string) string {
	for _, line := range x.headers {
		n, v := splitHeader(line)
		if strings.EqualFold(n, name) {
			return v
		}
	}
	return ""
}

func seconds(d time.Duration) string {
	us := d.Microseconds()
	return fmt.Sprintf("%d.%06d", us/1000000, us%1000000)
}

// variable is one -w variable as curl prints it, and whether curl knows
// the name.
func (x *transfer) variable(name string, result int) (string, bool) {
	str := func(s string) (string, bool) { return s, true }
	num := func(n int64) (string, bool) { return fmt.Sprint(n), true }
	switch name {
	case "http_code", "response_code":
		return fmt.Sprintf("%03d", x.code), true
	case "http_connect":
		return "000", true
	case "http_version":
		if x.httpVersion == "" {
			return str("0")
		}
		return str(x.httpVersion)
	case "content_type":
		if x.contentType == nil {
			return str("")
		}
		return str(*x.contentType)
	case "errormsg":
		if result == 0 {
			return str("")
		}
		return str(x.errmsg)
	case "exitcode":
		return num(int64(result))
	case "filename_effective":
		return str(x.out.name)
	case "local_ip":
		return str(x.localIP)
	case "local_port":
		return num(int64(x.localPort))
	case "remote_ip":
		return str(x.remoteIP)
	case "remote_port":
		return num(int64(x.remotePort))
	case "method":
		return str(x.method)
	case "num_connects":
		return num(int64(x.numConnects))
	case "num_headers":
		return num(int64(x.numHeaders))
	case "num_redirects":
		return num(int64(x.numRedirects))
	case "redirect_url":
		return str(x.redirectURL)
	case "referer":
		return str(x.referer)
	case "scheme":
		return str(strings.ToUpper(x.scheme))
	case "size_download":
		return num(x.sizeDownload)
	case "size_upload":
		return num(x.sizeUpload)
	case "size_header":
		return num(x.sizeHeader)
	case "size_request":
		return num(x.sizeRequest)
	case "speed_download":
		return num(trspeed(x.sizeDownload, x.tTotal.Microseconds()))
	case "speed_upload":
		return num(trspeed(x.sizeUpload, x.tTotal.Microseconds()))
	case "time_namelookup":
		return str(seconds(x.tNamelookup))
	case "time_connect":
		return str(seconds(x.tConnect))
	case "time_appconnect":
		return str(seconds(0))
	case "time_pretransfer":
		return str(seconds(x.tPretransfer))
	case "time_starttransfer":
		return str(seconds(x.tStartTx))
	case "time_redirect":
		return str(seconds(x.tRedirect))
	case "time_total":
		return str(seconds(x.tTotal))
	case "url":
		return str(x.input)
	case "url_effective":
		return str(x.effURL)
	case "urlnum":
		return num(int64(x.urlnum))
	case "ssl_verify_result", "proxy_ssl_verify_result", "num_certs":
		return num(0)
	case "certs":
		return str("")
	}
	return "", false
}
