package scenario

import (
	"testing"
)

func TestParseShipped(t *testing.T) {
	s, err := Load("../../scenarios/two-node-basics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", s.Checks()[0])
}
