package cgroups

import "testing"

// The textbook's table: request 100m / 100Mi, limit 200m / 200Mi.
func TestSettings(t *testing.T) {
	r := Resources{CPURequestMilli: 100, CPULimitMilli: 200, MemoryRequest: 100 << 20, MemoryLimit: 200 << 20}
	v2 := Driver{Name: V2}.settings(r)
	wantV2 := []Setting{
		{"cpu.weight", "4"}, // shares 102 -> 1 + (100*9999)/262142
		{"cpu.max", "20000 100000"},
		{"memory.low", "104857600"},
		{"memory.max", "209715200"},
		{"memory.swap.max", "0"},
		{"memory.oom.group", "1"},
	}
	if !equalSettings(v2, wantV2) {
		t.Errorf("v2 settings = %v, want %v", v2, wantV2)
	}
	v1 := Driver{Name: V1}.settings(r)
	wantV1 := []Setting{
		{"cpu.shares", "102"},
		{"cpu.cfs_period_us", "100000"},
		{"cpu.cfs_quota_us", "20000"},
		{"memory.limit_in_bytes", "209715200"},
		{"memory.memsw.limit_in_bytes", "209715200"},
		{"memory.soft_limit_in_bytes", "104857600"},
	}
	if !equalSettings(v1, wantV1) {
		t.Errorf("v1 settings = %v, want %v", v1, wantV1)
	}
	// A limit alone requests the limit; nothing at all is BestEffort.
	limitOnly := Driver{Name: V1}.settings(Resources{CPULimitMilli: 500})
	if limitOnly[0] != (Setting{"cpu.shares", "512"}) {
		t.Errorf("limit-only shares = %v, want 512", limitOnly[0])
	}
	if got := (Driver{Name: V1}).settings(Resources{}); !equalSettings(got, []Setting{{"cpu.shares", "2"}}) {
		t.Errorf("best effort = %v", got)
	}
	for _, tc := range []struct{ milli, shares, weight, quota int64 }{
		{0, 2, 1, 1000},
		{1, 2, 1, 1000}, // quota floor of 1ms
		{250, 256, 10, 25000},
		{1000, 1024, 39, 100000},
		{4000, 4096, 157, 400000},
		{1000000, 262144, 10000, 100000000},
	} {
		if s := cpuShares(tc.milli); s != tc.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tc.milli, s, tc.shares)
		}
		if w := cpuWeight(cpuShares(tc.milli)); w != tc.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", cpuShares(tc.milli), w, tc.weight)
		}
		if q := cpuQuota(tc.milli); q != tc.quota {
			t.Errorf("cpuQuota(%d) = %d, want %d", tc.milli, q, tc.quota)
		}
	}
}

func equalSettings(a, b []Setting) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
