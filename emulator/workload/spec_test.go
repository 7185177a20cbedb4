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

// Which directory of applets ends a container's PATH: the pod's links
// without a root filesystem, RootFSAppletDir in one, none in one when the
// labctl binary cannot run there.
func TestAppletsFor(t *testing.T) {
	plain := Container{Name: "p", Command: []string{"x"}}
	rooted := Container{Name: "r", Command: []string{"x"}, RootFS: "/srv/alpine"}
	static := podConfig{AppletDir: "/state/bin"}
	dynamic := podConfig{AppletDir: "/state/bin", NoRootFSApplets: "/labctl is dynamically linked"}
	for _, tt := range []struct {
		name string
		pc   podConfig
		c    Container
		want string
	}{
		{"no root filesystem", static, plain, "/state/bin"},
		{"no root filesystem, dynamic labctl", dynamic, plain, "/state/bin"},
		{"a root filesystem", static, rooted, RootFSAppletDir},
		{"a root filesystem, dynamic labctl", dynamic, rooted, ""},
	} {
		if got := tt.pc.appletsFor(&tt.c); got != tt.want {
			t.Errorf("%s: appletsFor = %q, want %q", tt.name, got, tt.want)
		}
	}
	p := PodSpec{Pod: "pod1a"}
	if got := p.environ(&rooted, RootFSAppletDir)[0]; got != "PATH="+defaultPath+":"+RootFSAppletDir {
		t.Errorf("PATH in a root filesystem = %s, want the image's directories first, then the applets", got)
	}
}

// SearchPath agrees with the PATH StartPod gives a container: whether it
// reaches the applets, and the directories besides.
func TestSearchPath(t *testing.T) {
	for _, tt := range []struct {
		name    string
		rootfs  string
		path    *string // the container's own PATH, if any
		want    string
		applets bool
	}{
		{"the default", "", nil, defaultPath, true},
		{"the default in a root filesystem", "/srv/alpine", nil, defaultPath, true},
		{"a PATH of its own", "", ptr("/opt/bin:/bin"), "/opt/bin:/bin", false},
		{"a PATH that extends the default", "", ptr("$(PATH):/opt/bin"), defaultPath + ":/opt/bin", true},
		{"the applet directory named in a root filesystem", "/srv/alpine", ptr("/bin:/dev/.labctl/"), "/bin", true},
		{"the same name on the host is just a directory", "", ptr("/bin:/dev/.labctl"), "/bin:/dev/.labctl", false},
		{"an empty PATH, which execvp reads as the default", "", ptr(""), defaultPath, false},
	} {
		c := Container{Name: "c", Command: []string{"x"}, RootFS: tt.rootfs}
		if tt.path != nil {
			c.Env = []EnvVar{{"PATH", *tt.path}}
		}
		if got, applets := c.SearchPath(); got != tt.want || applets != tt.applets {
			t.Errorf("%s: SearchPath = %q, %v; want %q, %v", tt.name, got, applets, tt.want, tt.applets)
		}
	}
}

func ptr(s string) *string { return &s }
