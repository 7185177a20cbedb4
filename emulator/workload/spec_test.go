package workload

import (
	"strings"
	"testing"

	"github.com/labctl/labctl/emulator/builtin"
	"github.com/labctl/labctl/emulator/cgroups"
)

func TestSpecCheck(t *testing.T) {
	p := PodSpec{
		Lab: "lab", Pod: "pod", Namespace: "/run/netns/x", StateDir: "/tmp/x", PodIP: "10.0.0.300",
		RestartPolicy: "Sometimes",
		Containers: []Container{
			{Name: "Web", Builtin: "nginx"},
			{Name: "a", Args: []string{"x"}},
			{Name: "a", Command: []string{"sleep"}, Env: []EnvVar{{"1X", ""}}, WorkingDir: "tmp",
				Resources: cgroups.Resources{CPURequestMilli: 300, CPULimitMilli: 200, MemoryRequest: 2, MemoryLimit: 1}},
			{Name: "b", Builtin: builtin.WebServer, Command: []string{"x"}, Ports: []Port{{ContainerPort: 70000, Protocol: "SCTP"}}},
		},
	}
	err := p.check()
	if err == nil {
		t.Fatal("check accepted a bad spec")
	}
	for _, want := range []string{
		`pod IP "10.0.0.300" is not an IP address`,
		`restart policy "Sometimes" is not Always, OnFailure or Never`,
		`container "Web": name must be a DNS label`,
		`container "Web": unknown builtin "nginx"`,
		`container "a": args without a command`,
		`container "a": name used twice`,
		`container "a": env name "1X" is not a valid variable name`,
		`container "a": working directory "tmp" is not an absolute path`,
		`container "a": cpu request 300m is above the limit 200m`,
		`container "a": memory request 2 is above the limit 1`,
		`container "b": builtin "web-server" takes no command or args`,
		`container "b": port 70000 is not between 1 and 65535`,
		`container "b": port 70000: protocol "SCTP" is not TCP or UDP`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEnviron(t *testing.T) {
	p := PodSpec{Pod: "pod1a", PodIP: "192.168.1.10"}
	c := Container{Name: "c", Command: []string{"x"}, Env: []EnvVar{
		{"A", "1"}, {"B", "$(A)-$(POD_IP)-$(NOPE)-$$(A)"}, {"HOME", "/home/x"},
	}}
	env := strings.Join(p.environ(&c, "/state/bin"), "\n")
	for _, want := range []string{
		"PATH=" + defaultPath + ":/state/bin", // host tools first for commands
		"HOSTNAME=pod1a", "POD_IP=192.168.1.10", "A=1",
		"B=1-192.168.1.10-$(NOPE)-$(A)", "HOME=/home/x",
	} {
		if !strings.Contains(env+"\n", want+"\n") {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
	web := Container{Name: "w", Builtin: builtin.Client}
	if got := p.environ(&web, "/state/bin")[0]; got != "PATH="+defaultPath+":/state/bin" {
		t.Errorf("builtin PATH = %s, want the host's tools first, then the applets", got)
	}
}
