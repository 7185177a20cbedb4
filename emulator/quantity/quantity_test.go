package quantity

import (
	"strings"
	"testing"
)

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "100m", want: 100},
		{in: "200m", want: 200},
		{in: "0.5", want: 500},
		{in: ".5", want: 500},
		{in: "5.", want: 5000},
		{in: "2", want: 2000},
		{in: "+1", want: 1000},
		{in: "1e-1", want: 100},
		{in: "1E1", want: 10000},
		{in: "0.0001", want: 1}, // rounded up to a millicore, as Kubernetes does
		{in: "1500u", want: 2},
		{in: "1k", want: 1000000},
		{in: "0", want: 0},
		{in: "", err: "empty"},
		{in: "-1", err: "negative"},
		{in: "1.5.3", err: "not a number"},
		{in: "100 m", err: "spaces"},
		{in: " 1", err: "spaces"},
		{in: "m", err: "no number"},
		{in: "1x", err: `unknown suffix "x"`},
		{in: "1mi", err: `unknown suffix "mi"`},
		{in: "1e", err: `exponent "" is not an integer`},
		{in: "1e99", err: "out of range"},
		{in: "1/2", err: "unknown suffix"},
		{in: "99999999999999999999", err: "too large"},
	} {
		got, err := ParseCPU(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseCPU(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{in: "100Mi", want: 100 << 20},
		{in: "200Mi", want: 200 << 20},
		{in: "128Mi", want: 134217728},
		{in: "1Gi", want: 1 << 30},
		{in: "0.5Ki", want: 512},
		{in: "500M", want: 500000000},
		{in: "1e3", want: 1000},
		{in: "1E3", want: 1000},
		{in: "4096", want: 4096},
		{in: "1k", want: 1000},
		{in: "1Ei", want: 1 << 60},
		{in: "1.5", want: 2}, // a fraction of a byte rounds up
		{in: "8Ei", err: "too large"},
		{in: "100m", err: "did you mean 100Mi"},
		{in: "1K", err: `unknown suffix "K"`},
		{in: "1MB", err: `unknown suffix "MB"`},
		{in: "Mi", err: "no number"},
		{in: "-5Mi", err: "negative"},
	} {
		got, err := ParseMemory(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMemory(%q) = %d, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	_, err := ParseMemory("12 Mi")
	if want := `memory quantity "12 Mi": contains spaces (examples: 128Mi, 1Gi, 500M)`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{100: "100m", 2000: "2", 1500: "1500m"} {
		if got := FormatCPU(in); got != want {
			t.Errorf("FormatCPU(%d) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[int64]string{200 << 20: "200Mi", 1 << 30: "1Gi", 1000: "1000", 1536: "1536"} {
		if got := FormatMemory(in); got != want {
			t.Errorf("FormatMemory(%d) = %s, want %s", in, got, want)
		}
	}
}
