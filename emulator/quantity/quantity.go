// Package quantity reads and writes CPU and memory amounts in Kubernetes
// notation ("100m", "0.5", "128Mi"), for the topology (spec) and the
// cgroup settings (workload) alike.
package quantity

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// ParseCPU reads a CPU quantity in Kubernetes notation ("100m", "0.5", "2",
// "1e-1") and returns millicores. As in Kubernetes, a fraction of a millicore
// rounds up.
func ParseCPU(s string) (int64, error) {
	v, err := parseQuantity(s, true)
	if err != nil {
		return 0, fmt.Errorf("cpu quantity %q: %w (examples: 100m, 0.5, 2)", s, err)
	}
	return v, nil
}

// ParseMemory reads a memory quantity in Kubernetes notation ("128Mi",
// "1Gi", "500M", "1e3", "4096") and returns bytes. The milli suffix is
// refused: "100m" of memory means a tenth of a byte and is always a typo.
func ParseMemory(s string) (int64, error) {
	v, err := parseQuantity(s, false)
	if err != nil {
		return 0, fmt.Errorf("memory quantity %q: %w (examples: 128Mi, 1Gi, 500M)", s, err)
	}
	return v, nil
}

// FormatCPU writes millicores the way Kubernetes prints them: "100m", "2".
func FormatCPU(milli int64) string {
	if milli%1000 == 0 {
		return strconv.FormatInt(milli/1000, 10)
	}
	return strconv.FormatInt(milli, 10) + "m"
}

// FormatMemory writes bytes with the largest binary suffix that divides them.
func FormatMemory(b int64) string {
	for _, s := range []struct {
		suffix string
		shift  uint
	}{{"Ei", 60}, {"Pi", 50}, {"Ti", 40}, {"Gi", 30}, {"Mi", 20}, {"Ki", 10}} {
		if b != 0 && b%(1<<s.shift) == 0 {
			return strconv.FormatInt(b>>s.shift, 10) + s.suffix
		}
	}
	return strconv.FormatInt(b, 10)
}

var (
	binarySuffix = map[string]uint{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
	// decimalSuffix maps to powers of ten.
	decimalSuffix = map[string]int{"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
)

// parseQuantity follows the grammar of Kubernetes' resource.Quantity
// (<number><suffix>, suffix binary, decimal or an e-exponent) and returns the
// value in millis for CPU or in units for memory, rounded up.
func parseQuantity(s string, milli bool) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t") {
		return 0, fmt.Errorf("contains spaces")
	}
	num, suffix := splitQuantity(s)
	if num == "" || num == "+" || num == "." || num == "+." {
		return 0, fmt.Errorf("no number")
	}
	if num[0] == '-' {
		return 0, fmt.Errorf("negative")
	}
	v, ok := new(big.Rat).SetString(strings.TrimPrefix(num, "+"))
	if !ok || !isPlainDecimal(strings.TrimPrefix(num, "+")) {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	switch {
	case binarySuffix[suffix] > 0:
		v.Mul(v, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), binarySuffix[suffix])))
	case isDecimalSuffix(suffix):
		exp := decimalSuffix[suffix]
		if !milli && exp < 0 {
			return 0, fmt.Errorf("suffix %q is a fraction of a byte; did you mean %sMi or %sM?", suffix, num, num)
		}
		v.Mul(v, pow10(exp))
	case suffix[0] == 'e' || suffix[0] == 'E':
		exp, err := strconv.Atoi(suffix[1:])
		if err != nil || suffix[1:] == "" || strings.HasPrefix(suffix[1:], "+-") {
			return 0, fmt.Errorf("exponent %q is not an integer", suffix[1:])
		}
		if exp < -30 || exp > 30 {
			return 0, fmt.Errorf("exponent %d is out of range", exp)
		}
		v.Mul(v, pow10(exp))
	default:
		return 0, fmt.Errorf("unknown suffix %q (binary: Ki Mi Gi Ti Pi Ei; decimal: m k M G T P E)", suffix)
	}
	if milli {
		v.Mul(v, big.NewRat(1000, 1))
	}
	// Round up, as Kubernetes does for values finer than its precision.
	q, r := new(big.Int).QuoRem(v.Num(), v.Denom(), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("too large")
	}
	return q.Int64(), nil
}

// splitQuantity separates the number from the suffix at the first character
// that cannot belong to a number.
func splitQuantity(s string) (num, suffix string) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}

// isPlainDecimal refuses what big.Rat accepts beyond Kubernetes' grammar:
// fractions such as 1/2 and more than one dot.
func isPlainDecimal(s string) bool {
	return strings.Count(s, ".") <= 1 && strings.Trim(s, "0123456789.") == "" && strings.Trim(s, ".") != ""
}

func isDecimalSuffix(s string) bool {
	_, ok := decimalSuffix[s]
	return ok
}

func pow10(exp int) *big.Rat {
	p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
	if exp < 0 {
		return new(big.Rat).SetFrac(big.NewInt(1), p)
	}
	return new(big.Rat).SetInt(p)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
