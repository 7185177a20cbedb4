package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/kubeproxy"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
)

// Options tune how a plan is applied.
type Options struct {
	// Owner records the namespaces as belonging to lab LabID.
	Owner netns.Ownership
	LabID string
	// Workers is how many units run at once (default: 2 per CPU). The
	// kernel serialises most link changes, so more rarely helps.
	Workers int
	// Progress, if set, is called after each unit with the number of units
	// done and the total. It is called from worker goroutines.
	Progress func(done, total int)
	// Existing names namespaces of this lab that are already up and that
	// the plan's units refer to without creating them (a repair rebuilds
	// some namespaces next to ones that survived). Each must be proven the
	// lab's by its ownership record.
	Existing []string
}

// Result tells what Apply chose where the plan left a choice.
type Result struct {
	// IPIP maps each node namespace with an IPIP device to the datapath
	// serving it.
	IPIP map[string]IPIPDatapath
}

// Apply builds the plan in the kernel. On any error, or when ctx is
// cancelled, it deletes every namespace it created (which removes every
// device, address and route in them) and returns the cause.
func Apply(ctx context.Context, p *plan.Plan, opt Options) (res *Result, err error) {
	if err := netns.EnsureDir(); err != nil {
		return nil, err
	}
	a := &applier{opt: opt, lab: p.Lab, fds: map[string]netns.Handle{}, index: map[string]map[string]int{},
		existing: map[string]bool{}, result: &Result{IPIP: map[string]IPIPDatapath{}}}
	defer a.closeFDs()
	if err := a.openExisting(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := a.rollback(); rerr != nil {
				err = fmt.Errorf("%w (rollback: %v)", err, rerr)
			}
		}
	}()
	total := 0
	for _, s := range p.Stages {
		total += len(s.Units)
	}
	a.total = total
	for _, s := range p.Stages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := a.runStage(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return a.result, nil
}

// Rollback deletes what a successful Apply created, for a caller whose own
// next step failed.
func Rollback(owner netns.Ownership, labID string) error {
	recs, err := owner.List()
	if err != nil {
		return err
	}
	var mine []netns.OwnedNamespace
	for _, r := range recs {
		if r.LabID == labID {
			mine = append(mine, r)
		}
	}
	_, err = DeleteNamespaces(owner, mine)
	return err
}

type applier struct {
	opt   Options
	lab   string
	total int
	done  atomic.Int64

	mu       sync.Mutex
	claimed  []string                  // names this run claimed, for rollback
	created  []netns.OwnedNamespace    // in creation order, for rollback
	fds      map[string]netns.Handle   // namespaces later units refer to
	existing map[string]bool           // of those, the ones this run did not create
	index    map[string]map[string]int // namespace -> bridge name -> ifindex
	result   *Result
}

// openExisting opens the namespaces of Options.Existing, each proven the
// lab's by its ownership record.
func (a *applier) openExisting() error {
	for _, name := range a.opt.Existing {
		rec, err := a.opt.Owner.Get(name)
		if err != nil {
			return fmt.Errorf("namespace %q: no ownership record: %w", name, err)
		}
		if rec.Lab != a.lab {
			return fmt.Errorf("namespace %q belongs to lab %q", name, rec.Lab)
		}
		h, st := rec.Open()
		if st != netns.Ours {
			return fmt.Errorf("namespace %q is %s", name, st)
		}
		a.fds[name] = h
		a.existing[name] = true
	}
	return nil
}

func (a *applier) runStage(ctx context.Context, s plan.Stage) error {
	workers := a.opt.Workers
	if workers <= 0 {
		workers = 2 * runtime.NumCPU()
	}
	if workers > len(s.Units) {
		workers = len(s.Units)
	}
	units := make(chan plan.Unit)
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- a.worker(ctx, units)
		}()
	}
	var firstErr error
feed:
	for _, u := range s.Units {
		select {
		case units <- u:
		case err := <-errc:
			firstErr = err
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(units)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// worker runs units on one locked OS thread, switching it into each unit's
// namespace and back. A thread that cannot get back home is never unlocked,
// so the runtime retires it.
func (a *applier) worker(ctx context.Context, units <-chan plan.Unit) error {
	runtime.LockOSThread()
	home, err := vnetns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("remember current namespace: %w", err)
	}
	defer home.Close()
	for u := range units {
		if ctx.Err() != nil {
			continue // drain; Apply reports the cancellation
		}
		uerr := a.runUnit(u)
		if err := vnetns.Set(home); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			for range units {
			}
			return fmt.Errorf("return from namespace %q: %w", u.Namespace, err)
		}
		if uerr != nil {
			for range units {
			}
			runtime.UnlockOSThread()
			return uerr
		}
		if a.opt.Progress != nil {
			a.opt.Progress(int(a.done.Add(1)), a.total)
		}
	}
	runtime.UnlockOSThread()
	return nil
}

// runUnit enters (or creates) the unit's namespace on the current locked
// thread and performs its operations through one netlink socket there.
func (a *applier) runUnit(u plan.Unit) error {
	ops := u.Ops
	if len(ops) > 0 {
		if add, ok := ops[0].(plan.AddNamespace); ok && add.Name == u.Namespace {
			if err := a.createNamespace(u.Namespace); err != nil {
				return fmt.Errorf("create namespace %q: %w", u.Namespace, err)
			}
			ops = ops[1:]
		} else if err := a.enter(u.Namespace); err != nil {
			return err
		}
	}
	c, err := openRTNL()
	if err != nil {
		return fmt.Errorf("namespace %q: %w", u.Namespace, err)
	}
	defer c.Close()
	for _, op := range ops {
		if err := a.runOp(c, u.Namespace, op); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) enter(name string) error {
	a.mu.Lock()
	fd, ok := a.fds[name]
	a.mu.Unlock()
	if ok {
		return vnetns.Set(fd)
	}
	h, err := vnetns.GetFromPath(netns.Path(name))
	if err != nil {
		return fmt.Errorf("open namespace %q: %w", name, err)
	}
	defer h.Close()
	return vnetns.Set(h)
}

// createNamespace moves the current thread into a new network namespace,
// marks it, claims its name with its cookie, then names it under /run/netns
// like `ip netns add`. Until it is named the namespace dies with the
// thread, so a crash before the claim leaves nothing behind.
func (a *applier) createNamespace(name string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	c, err := openRTNL()
	if err != nil {
		return err
	}
	rec := netns.OwnedNamespace{Name: name, Lab: a.lab, LabID: a.opt.LabID}
	rec.Cookie, err = c.cookie()
	if err == nil {
		err = c.setMarker(a.opt.Owner.Marker(a.lab, a.opt.LabID))
	}
	c.Close()
	if err != nil {
		return err
	}
	if err := a.opt.Owner.Claim(rec); err != nil {
		return err
	}
	a.mu.Lock()
	a.claimed = append(a.claimed, name)
	a.mu.Unlock()
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	fd, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	path := netns.Path(name)
	mp, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s already exists", path)
		}
		return err
	}
	unix.Close(mp)
	a.mu.Lock()
	a.created = append(a.created, rec)
	a.mu.Unlock()
	if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
		unix.Close(fd)
		return fmt.Errorf("bind mount %s: %w", path, err)
	}
	a.mu.Lock()
	a.fds[name] = netns.Handle(fd)
	a.mu.Unlock()
	return nil
}

func (a *applier) nsFD(name string) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fd, ok := a.fds[name]
	if !ok {
		return -1, fmt.Errorf("namespace %q is not part of this lab", name)
	}
	return int(fd), nil
}

func (a *applier) bridgeIndex(ns, name string) (int, error) {
	a.mu.Lock()
	i, ok := a.index[ns][name]
	fd, existing := a.fds[ns], a.existing[ns]
	a.mu.Unlock()
	if ok {
		return i, nil
	}
	if !existing {
		return 0, fmt.Errorf("bridge %q in namespace %q was not created by this plan", name, ns)
	}
	// A bridge of a namespace that survived (a repair): ask its kernel.
	var c *rtnl
	if err := netns.DoHandle(fd, func() (err error) { c, err = openRTNL(); return err }); err != nil {
		return 0, err
	}
	defer c.Close()
	if i, err := c.linkIndex(name); err != nil {
		return 0, err
	} else {
		a.mu.Lock()
		if a.index[ns] == nil {
			a.index[ns] = map[string]int{}
		}
		a.index[ns][name] = i
		a.mu.Unlock()
		return i, nil
	}
}

// runOp performs one operation from namespace here, through c: groups one
// operation at a time, each checked to be planned from here, and worded in
// errors as its description says.
func (a *applier) runOp(c *rtnl, here string, op plan.Op) error {
	if g, ok := op.(plan.Group); ok {
		for sub := range g.Expand() {
			if err := a.runOp(c, here, sub); err != nil {
				return err
			}
		}
		return nil
	}
	if where := op.Where(); where != here {
		return fmt.Errorf("%s: planned from namespace %q, performed from %q", op.Describe(), where, here)
	}
	if across, ok := op.(plan.Across); ok {
		return a.across(here, across)
	}
	if err := a.perform(c, here, op); err != nil {
		return fmt.Errorf("%s: %w", op.Describe(), err)
	}
	return nil
}

// perform does what op says in namespace here, where runOp found it
// planned.
func (a *applier) perform(c *rtnl, here string, op plan.Op) error {
	switch o := op.(type) {
	case plan.SetSysctl:
		for _, kv := range o.Settings {
			path := "/proc/sys/" + strings.ReplaceAll(kv.Key, ".", "/")
			if err := os.WriteFile(path, []byte(kv.Value+"\n"), 0o644); err != nil {
				return err
			}
		}
		return nil
	case plan.SetLinkUp:
		return c.setUp(o.Device)
	case plan.AddBridge:
		if err := c.addBridge(o.Name, o.MTU); err != nil {
			return err
		}
		idx, err := c.linkIndex(o.Name)
		if err != nil {
			return err
		}
		a.mu.Lock()
		if a.index[here] == nil {
			a.index[here] = map[string]int{}
		}
		a.index[here][o.Name] = idx
		a.mu.Unlock()
		return nil
	case plan.AddVeth:
		// Performed from the peer's namespace; the first end is made
		// straight into its own.
		end := vethEnd{name: o.Name, nsFD: -1, up: true, mac: o.MAC}
		peer := vethPeer{name: o.PeerName, nsFD: -1}
		var err error
		if o.Master != "" {
			if end.master, err = a.bridgeIndex(o.Namespace, o.Master); err != nil {
				return err
			}
		}
		if o.Namespace != here {
			if end.nsFD, err = a.nsFD(o.Namespace); err != nil {
				return err
			}
		}
		return c.addVeth(end, peer, o.MTU)
	case plan.AddAddress:
		return c.addAddress(o.Device, o.Address)
	case plan.AddRoute:
		return c.addRouteSpec(o.Device, routeSpec{dst: o.Dst, via: o.Via, onlink: o.OnLink, proto: o.Protocol, mtu: o.MTU})
	case plan.AddBlackhole:
		return c.addRouteSpec("", routeSpec{dst: o.Dst, proto: o.Protocol, blackhole: true})
	case plan.SetLinkMAC:
		return c.setMAC(o.Device, o.MAC)
	case plan.SetHairpin:
		return c.setHairpin(o.Device)
	case plan.AddVXLAN:
		link, err := c.linkIndex(o.Underlay)
		if err != nil {
			return err
		}
		v := vxlanSpec{name: o.Name, vni: o.VNI, port: o.Port, local: o.Local, link: link,
			learning: o.Learning, group: o.Group, mac: o.MAC, mtu: o.MTU}
		if o.Master != "" {
			if v.master, err = a.bridgeIndex(here, o.Master); err != nil {
				return err
			}
		}
		return c.addVXLAN(v)
	case plan.AddNeighbor:
		return c.addNeighbor(o.Device, o.IP, o.MAC)
	case plan.AddFDB:
		return c.addFDB(o.Device, o.MAC, o.Dst, o.Append)
	case plan.AddIPIPTunnel:
		dp, err := addIPIPTunnel(c, o)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.result.IPIP[here] = dp
		a.mu.Unlock()
		return nil
	case plan.DeleteRoute:
		return c.delRoute(o.Dst, o.Via, o.Device)
	case plan.ReplaceRoute:
		return c.replaceRoute(o.Dst, o.Via, o.Device, o.OnLink)
	case plan.SetLinkDown:
		return c.setDown(o.Device)
	case plan.SetMTU:
		return c.setMTU(o.Device, o.MTU)
	case plan.AddDropRule:
		return addDropRule(o)
	case plan.ProgramRuleset:
		return programRuleset(here, o) // services.go
	case plan.DeleteNeighbor:
		return c.delNeighbor(o.Device, o.IP)
	case plan.DeleteFDB:
		return c.delFDB(o.Device, o.MAC, o.Dst)
	case plan.ProgramMasquerade:
		return kubeproxy.Program(netns.Path(here), o.Rules)
	case plan.AddNamespace:
		return fmt.Errorf("namespace %q must be created first in its own unit", o.Name)
	}
	return fmt.Errorf("unknown operation %T", op)
}

// across performs o's operations in their namespace, from the current
// locked thread, which it then takes back to here: a pod's unit reaching
// the node end of its veth (sysctls are the thread's namespace's, so a
// socket opened elsewhere would not do).
func (a *applier) across(here string, o plan.Across) error {
	if err := a.enter(o.Namespace); err != nil {
		return err
	}
	c, err := openRTNL()
	if err == nil {
		for _, op := range o.Ops {
			if err = a.runOp(c, o.Namespace, op); err != nil {
				break
			}
		}
		c.Close()
	} else {
		err = fmt.Errorf("namespace %q: %w", o.Namespace, err)
	}
	if berr := a.enter(here); berr != nil {
		return errors.Join(err, fmt.Errorf("return to namespace %q: %w", here, berr))
	}
	return err
}

func (a *applier) closeFDs() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, fd := range a.fds {
		fd.Close()
		delete(a.fds, name)
	}
}

// rollback deletes the namespaces this run created and releases every
// claim it made; nothing another run claimed is touched.
func (a *applier) rollback() error {
	a.closeFDs()
	a.mu.Lock()
	recs := append([]netns.OwnedNamespace(nil), a.created...)
	claimed := append([]string(nil), a.claimed...)
	a.mu.Unlock()
	_, err := DeleteNamespaces(a.opt.Owner, recs)
	for _, name := range claimed {
		if rerr := a.opt.Owner.Release(name, a.opt.LabID); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}
