package netns_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/internal/nstest"
)

func TestMarkerRoundTrip(t *testing.T) {
	m := netns.Marker{Lab: "two-node", LabID: "0123456789abcdef", State: "feedfacecafebeef"}
	got, ok := netns.ParseMarker(m.String())
	if !ok || got != m {
		t.Fatalf("ParseMarker(%q) = %+v, %v", m.String(), got, ok)
	}
	for _, alias := range []string{"", "my loopback", "labctl lab=x", "labctl id=1 state=2"} {
		if _, ok := netns.ParseMarker(alias); ok {
			t.Errorf("ParseMarker(%q) accepted an alias that is not a whole marker", alias)
		}
	}
}

func TestStateTag(t *testing.T) {
	dir := t.TempDir()
	if netns.StateTag(dir) != netns.StateTag(dir+"/") || netns.StateTag(dir) != netns.StateTag(dir+"/x/..") {
		t.Error("one directory, spelled differently, has different tags")
	}
	if netns.StateTag(dir) == netns.StateTag(dir+"2") {
		t.Error("two directories share a tag")
	}
}

// A claim on a name is exclusive, names its holder when refused, and only
// the run that made it releases it.
func TestClaimAndRelease(t *testing.T) {
	owner := netns.Ownership{Dir: filepath.Join(t.TempDir(), "netns")}
	a := netns.OwnedNamespace{Name: "lab-node1", Lab: "a", LabID: "aaaa", Cookie: 7}
	if err := owner.Claim(a); err != nil {
		t.Fatal(err)
	}
	err := owner.Claim(netns.OwnedNamespace{Name: "lab-node1", Lab: "b", LabID: "bbbb", Cookie: 8})
	if !errors.Is(err, netns.ErrClaimed) || !strings.Contains(err.Error(), `lab "a"`) {
		t.Fatalf("second claim: %v, want ErrClaimed naming lab \"a\"", err)
	}
	if got, err := owner.Get("lab-node1"); err != nil || got != a {
		t.Fatalf("record = %+v, %v; want the first claim's", got, err)
	}
	if err := owner.Release("lab-node1", "bbbb"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Get("lab-node1"); err != nil {
		t.Fatalf("another run released the claim: %v", err)
	}
	if err := owner.Release("lab-node1", "aaaa"); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Get("lab-node1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after release: %v, want no record", err)
	}
	if err := owner.Release("lab-node1", "aaaa"); err != nil {
		t.Errorf("releasing a released claim: %v", err)
	}
}

// List reads only whole records: temporary files of a write in progress
// and files that are not records are skipped, and CleanTemp removes only
// temporary files old enough to be a killed run's.
func TestListAndCleanTemp(t *testing.T) {
	owner := netns.Ownership{Dir: t.TempDir()}
	for _, name := range []string{"x-a", "x-b"} {
		if err := owner.Claim(netns.OwnedNamespace{Name: name, Lab: "x", LabID: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, data string, age time.Duration) string {
		path := filepath.Join(owner.Dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		return path
	}
	stale := write(".tmp-stale", `{"name":"x-c"}`, time.Hour)
	fresh := write(".tmp-fresh", `{"name":"x-d"}`, 0)
	write("x-e", `{"name":"not-x-e"}`, 0) // a record must carry its own name
	write("x-f", "garbage", 0)
	recs, err := owner.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"x-a", "x-b"}) {
		t.Errorf("List = %v, want [x-a x-b]", names)
	}
	owner.CleanTemp()
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a stale temporary file survived: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file (another run's write) was removed: %v", err)
	}
}

// What is at a recorded name now: the recorded namespace (by cookie, or by
// inode for a record from before cookies), another namespace, nothing, or
// the empty mount point of a create that was interrupted.
func TestNamespaceState(t *testing.T) {
	ns, h := newNamespace(t)
	cookie, err := netns.Cookie(h)
	if err != nil || cookie == 0 {
		t.Fatalf("Cookie = %d, %v", cookie, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		t.Fatal(err)
	}
	plain := nstest.Unique(prefix)
	if err := os.WriteFile(netns.Path(plain), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(netns.Path(plain)) })

	tests := []struct {
		what string
		rec  netns.OwnedNamespace
		want netns.NamespaceState
	}{
		{"its cookie", netns.OwnedNamespace{Name: ns, Cookie: cookie}, netns.Ours},
		{"another cookie", netns.OwnedNamespace{Name: ns, Cookie: cookie + 1}, netns.Foreign},
		{"an old record's inode", netns.OwnedNamespace{Name: ns, Dev: st.Dev, Ino: st.Ino}, netns.Ours},
		{"an old record's other inode", netns.OwnedNamespace{Name: ns, Dev: st.Dev, Ino: st.Ino + 1}, netns.Foreign},
		{"a record proving nothing", netns.OwnedNamespace{Name: ns}, netns.Foreign},
		{"a name that is gone", netns.OwnedNamespace{Name: nstest.Unique(prefix), Cookie: cookie}, netns.Gone},
		{"an empty mount point", netns.OwnedNamespace{Name: plain, Cookie: cookie}, netns.Unmounted},
		{"an empty file no create of ours left", netns.OwnedNamespace{Name: plain}, netns.Foreign},
	}
	for _, tt := range tests {
		if got := tt.rec.State(); got != tt.want {
			t.Errorf("%s: state %v, want %v", tt.what, got, tt.want)
		}
	}
	// The handle of Open pins the namespace it proved.
	if h2, state := (netns.OwnedNamespace{Name: ns, Cookie: cookie}).Open(); state != netns.Ours {
		t.Errorf("Open = %v, want ours", state)
	} else if c, err := netns.Cookie(h2); err != nil || c != cookie {
		t.Errorf("the handle Open returned is namespace %d (%v), want %d", c, err, cookie)
	} else {
		h2.Close()
	}
}

// Discover finds the namespaces that carry this state directory's marker,
// among the names asked for, and leaves every other alone.
func TestDiscover(t *testing.T) {
	nstest.NeedRoot(t)
	owner := netns.Ownership{Dir: t.TempDir(), Tag: netns.StateTag(t.TempDir())}
	other := netns.Ownership{Dir: t.TempDir(), Tag: netns.StateTag(t.TempDir())}
	marked := nstest.AddNamespace(t, nstest.Unique(prefix))
	nstest.IP(t, "-n", marked, "link", "set", "lo", "alias", owner.Marker("lab", "id1").String())
	bare := nstest.AddNamespace(t, nstest.Unique(prefix))
	theirs := nstest.AddNamespace(t, nstest.Unique(prefix))
	nstest.IP(t, "-n", theirs, "link", "set", "lo", "alias", other.Marker("lab", "id2").String())
	notAsked := nstest.AddNamespace(t, nstest.Unique(prefix))
	nstest.IP(t, "-n", notAsked, "link", "set", "lo", "alias", owner.Marker("lab", "id3").String())

	asked := map[string]bool{marked: true, bare: true, theirs: true}
	found, err := owner.Discover(func(name string) bool { return asked[name] })
	if err != nil {
		t.Fatal(err)
	}
	id, err := netns.IdentifyPath(netns.Path(marked))
	if err != nil {
		t.Fatal(err)
	}
	want := []netns.OwnedNamespace{{Name: marked, Lab: "lab", LabID: "id1", Cookie: id.Cookie}}
	if !slices.Equal(found, want) {
		t.Errorf("Discover = %+v, want %+v", found, want)
	}
}
