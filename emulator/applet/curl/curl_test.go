package curl

import "testing"

func TestCurlArgs(t *testing.T) {
	o, err := parseCurlArgs([]string{"-sSv", "-ofile", "-X", "PUT", "--data", "x=1", "-H", "A: b", "-m", "1.5", "--connect-timeout=2", "127.0.0.1:80", "http://10.0.0.1/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.silent || !o.showError || !o.verbose || o.output != "file" || o.method != "PUT" || o.data != "x=1" ||
		len(o.headers) != 1 || o.maxTime.Seconds() != 1.5 || o.connectTimeout.Seconds() != 2 || len(o.urls) != 2 {
		t.Errorf("parsed %+v", o)
	}
	for _, bad := range [][]string{{}, {"-Z", "x"}, {"--frobnicate", "x"}, {"x", "-o"}, {"-m", "soon", "x"}} {
		if _, err := parseCurlArgs(bad); err == nil {
			t.Errorf("parseCurlArgs(%q) accepted", bad)
		}
	}
}
