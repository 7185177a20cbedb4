package lab

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/labctl/labctl/emulator/helper"
	"github.com/labctl/labctl/emulator/netns"
	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/process"
)

// Every node has a UTS namespace of its own, with the node's name as its
// hostname: a Kubernetes node is a host of its own name, and `labctl exec
// node1 -- hostname` says node1. A UTS namespace lives while a process is
// in it or a bind mount holds it. labctl holds each node's with a small
// idle process, "labctl-node LAB/NODE" (the helper role below): the node's
// kubelet, as far as names go. It is forked from a throwaway thread that
// entered the node's network namespace, unshared its UTS namespace and set
// the hostname, so it is born in a namespace that is ready, and `up` does
// not wait for it to report (a Go program takes milliseconds to come up).
//
// A process rather than a bind mount, because a process in the node's
// network namespace is already everything a lab's namespaces need: down
// ends it with every other process found in the lab's namespaces, also
// when the lab's records are lost; it is proven the lab's by living there
// (and by its pidfd and start time, never its PID alone); and its
// namespace watch (emulator/helper) ends it within a second when the
// node's network namespace is deleted behind labctl's back, so its UTS
// namespace can never outlive the node. A bind mount would be a new kind
// of object to claim, prove and sweep, would need a shared mount point of
// its own so that unmounts reach the mount namespaces of pods (which copy
// every mount that exists when they start), and would not show in `lsns`
// or `ps`. The price is one idle process per node (see `make bench`).
//
// Commands run in a node (`labctl exec NODE`, Manager.Exec, so the
// grader's command checks) join the node's network namespace by its name
// and the holder's UTS namespace through its pidfd. Trace, capture and
// probes only open sockets in a node's network namespace; they start no
// process there, and a hostname means nothing to a socket.

// nodeRole is the helper role of a node's hostname holder.
const nodeRole = "node-uts"

func init() { helper.Register(nodeRole, runNodeHolder) }

// runNodeHolder holds the UTS namespace it was born in until SIGTERM, or
// until the node's network namespace is gone.
func runNodeHolder(ctx context.Context, _ struct{}) int {
	ctx, stop := signal.NotifyContext(ctx, unix.SIGTERM, unix.SIGINT)
	defer stop()
	signal.Ignore(unix.SIGHUP, unix.SIGPIPE)
	// It reports to no one (helper.Ready would let go of these pages):
	// what starting needed of the binary is not kept mapped.
	_ = process.ReleaseStartupPages()
	<-ctx.Done()
	return 0
}

// startNodes starts the hostname holder of every node (with only set,
// just those nodes), several at once, and records each in rec.Hostnames.
// A holder that started is recorded even when another failed, so the
// caller's rollback stops it.
func (m Manager) startNodes(ctx context.Context, rec *Record, only map[string]bool) error {
	exe, err := m.executable()
	if err != nil {
		return err
	}
	var nodes []plan.Namespace
	for _, ns := range rec.Namespaces {
		if ns.Role == plan.RoleNode && (only == nil || only[ns.Object]) {
			nodes = append(nodes, ns)
		}
	}
	if len(nodes) == 0 {
		return nil
	}
	if rec.Hostnames == nil {
		rec.Hostnames = map[string]*Process{}
	}
	var mu sync.Mutex
	errs := make([]error, len(nodes))
	startAll(len(nodes), func(i int) {
		ns := nodes[i]
		id, err := helper.Start(ctx, helper.Options{
			Role:       nodeRole,
			Config:     struct{}{},
			Executable: exe,
			Args:       []string{"labctl-node", rec.Name + "/" + ns.Object},
			// One P is plenty for a process that waits.
			Env:       []string{"GOMAXPROCS=1"},
			Namespace: netns.Path(ns.Name),
			Prepare: func() error {
				if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
					return fmt.Errorf("new UTS namespace: %w", err)
				}
				if err := unix.Sethostname([]byte(ns.Object)); err != nil {
					return fmt.Errorf("set hostname %q: %w", ns.Object, err)
				}
				return nil
			},
			NoReport: true,
		})
		if err != nil {
			errs[i] = fmt.Errorf("node %q: start the holder of its hostname: %w", ns.Object, err)
			return
		}
		mu.Lock()
		rec.Hostnames[ns.Object] = &Process{PID: id.PID, StartTime: id.StartTime}
		mu.Unlock()
	})
	return errors.Join(errs...)
}

// stopNodes stops the hostname holders of the given nodes (nil: all), all
// at once, and forgets them.
func (m Manager) stopNodes(rec *Record, only map[string]bool) error {
	var ps []*Process
	for node, p := range rec.Hostnames {
		if p != nil && (only == nil || only[node]) {
			ps = append(ps, p)
			delete(rec.Hostnames, node)
		}
	}
	return stopAll(ps)
}

// stopAll stops processes (TERM, then KILL after a grace period) all at
// once: a holder exits on SIGTERM at once, but waiting for each in turn
// adds up in a lab of many nodes.
func stopAll(ps []*Process) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.Stop(2 * time.Second) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deadNodes lists the nodes whose recorded hostname holder is not running.
func deadNodes(rec *Record) []string {
	var dead []string
	for node, p := range rec.Hostnames {
		if p != nil && !p.Alive() {
			dead = append(dead, node)
		}
	}
	sort.Strings(dead)
	return dead
}

// nodeJoin says how a command joins a node: its network namespace by name
// and, if the node's hostname holder runs, its UTS namespace. The holder
// must live in the node's network namespace: a record alone proves
// nothing. warn says why the command runs with the host's hostname.
func nodeJoin(t Target) (j joinNode, warn string) {
	j.netns = t.NamespacePath()
	if t.Holder.PID == 0 {
		return j, ""
	}
	if !t.Holder.Alive() || !sameNetns(t.Holder.PID, j.netns) {
		return j, fmt.Sprintf("labctl: the hostname holder of %s (process %d) is not running, so the command has the host's hostname; `labctl up --repair` restores it", t, t.Holder.PID)
	}
	j.holder = t.Holder
	return j, ""
}

// joinNode is where a command in a node starts.
type joinNode struct {
	netns  string
	holder process.ID
}

// sameNetns reports whether process pid lives in the network namespace
// mounted at path.
func sameNetns(pid int, path string) bool {
	var proc, named unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &proc) != nil || unix.Stat(path, &named) != nil {
		return false
	}
	return proc.Dev == named.Dev && proc.Ino == named.Ino
}
