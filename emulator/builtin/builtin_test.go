package builtin

import (
	"context"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
	if got := Names(); !slices.Equal(got, []Name{WebServer, EchoServer, Client, DNS}) {
		t.Errorf("Names() = %v", got)
	}
	for _, tc := range []struct {
		name  Name
		known bool
		port  int
	}{
		{WebServer, true, 80},
		{EchoServer, true, 7},
		{Client, true, 0},
		{DNS, true, 53},
		{"nginx", false, 0},
		{"", false, 0},
	} {
		if tc.name.Known() != tc.known || tc.name.DefaultPort() != tc.port {
			t.Errorf("%q: known %v, port %d; want %v, %d", tc.name, tc.name.Known(), tc.name.DefaultPort(), tc.known, tc.port)
		}
	}
	if err := Run(context.Background(), "nginx", Config{}, func() { t.Error("serving") }); err == nil || err.Error() != `unknown builtin "nginx"` {
		t.Errorf("Run(nginx) = %v", err)
	}
}
