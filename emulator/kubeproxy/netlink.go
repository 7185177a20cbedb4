package kubeproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Limits of one netlink batch. The library asks an ack for every message,
// and the kernel queues all of them before we read one: the receive
// buffer must hold them all, about a kilobyte each. The batch itself is
// sent in one write, a few hundred bytes a message. A set's elements go
// in messages of at most elementsPerMessage, since a netlink attribute
// holds at most 64 KiB.
const (
	bufferPerMessage   = 1024
	minBuffer          = 4 << 20
	elementsPerMessage = 256
)

// messages estimates how many netlink messages the batch of r has.
func (r *Ruleset) messages() int {
	n := 2 * len(r.Absent)
	for _, t := range r.Tables {
		n += 3 + len(t.Chains)
		for _, s := range t.Sets {
			n += 1 + (len(s.Elements)+elementsPerMessage-1)/elementsPerMessage
		}
		for _, c := range t.Chains {
			n += 3 * len(c.Rules) // a rule, and at most one anonymous map of two messages
		}
	}
	return n
}

// Program makes the ruleset the node's nftables state in the network
// namespace at nsPath, in one netlink batch: each of our tables is created
// if missing, deleted and written anew, all or nothing. Programming again
// replaces the rules atomically, so services can change on a live lab;
// counters and affinity sets start again from zero then. Tables that are
// not ours are left alone. The host's own namespace is refused.
func Program(nsPath string, r *Ruleset) error {
	c, closeNS, err := dial(nsPath, r.messages())
	if err != nil {
		return fmt.Errorf("program rules of node %q: %w", r.Node, err)
	}
	defer closeNS()
	if err := r.batch(c); err != nil {
		return fmt.Errorf("program rules of node %q: %w", r.Node, err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("program rules of node %q in %s: %w", r.Node, nsPath, err)
	}
	return nil
}

// Remove deletes our tables from the namespace at nsPath, in one batch,
// whether they exist or not.
func Remove(nsPath string) error {
	c, closeNS, err := dial(nsPath, 4)
	if err != nil {
		return fmt.Errorf("remove service rules: %w", err)
	}
	defer closeNS()
	for _, name := range []string{KubeProxyTable, FlannelTable} {
		t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
		c.AddTable(t)
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("remove service rules in %s: %w", nsPath, err)
	}
	return nil
}

// batch queues the whole ruleset on c: first the tables and their chains
// (map elements name chains, so these must exist first), then the sets,
// the rules, and last the elements.
func (r *Ruleset) batch(c *nftables.Conn) error {
	for _, name := range r.Absent {
		t := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
		c.AddTable(t)
		c.DelTable(t)
	}
	for _, t := range r.Tables {
		a := &assembler{conn: c, sets: map[string]*nftables.Set{}}
		if err := a.assemble(t); err != nil {
			return fmt.Errorf("table %q: %w", t.Name, err)
		}
	}
	return nil
}

// assembler turns one Table into netlink messages on a connection.
type assembler struct {
	conn   *nftables.Conn
	table  *nftables.Table
	sets   map[string]*nftables.Set
	chains map[string]*nftables.Chain
	nextID uint32
	err    error
}

// id numbers a set within the batch, so rules can name sets created in
// the same batch. We number sets ourselves because the library's own
// counter is one global variable that concurrent batches would race on.
func (a *assembler) id() uint32 { a.nextID++; return a.nextID }

func (a *assembler) assemble(t *Table) error {
	a.table = &nftables.Table{Name: t.Name, Family: nftables.TableFamilyIPv4}
	a.conn.AddTable(a.table)
	a.conn.DelTable(a.table)
	a.conn.AddTable(a.table)
	for _, s := range t.Sets {
		if err := a.addSet(s); err != nil {
			return fmt.Errorf("set %q: %w", s.Name, err)
		}
	}
	// The rules of a chain with an anonymous map go in as soon as every
	// chain they name exists, before everything else: each time the
	// kernel binds an anonymous set to its rule it walks the whole
	// transaction so far, so the shorter the batch before, the cheaper.
	// Creation order, hence the listing, stays as the ruleset has it.
	waiting := map[string][]*Chain{}
	missing := map[*Chain]int{}
	for _, ch := range t.Chains {
		if !hasAnonymousMap(ch) {
			continue
		}
		for _, ref := range chainRefs(ch) {
			waiting[ref] = append(waiting[ref], ch)
			missing[ch]++
		}
	}
	a.chains = map[string]*nftables.Chain{}
	emitted := map[*Chain]bool{}
	for _, ch := range t.Chains {
		a.chains[ch.Name] = a.conn.AddChain(a.chain(ch))
		for _, w := range waiting[ch.Name] {
			if missing[w]--; missing[w] == 0 {
				if err := a.rules(w); err != nil {
					return err
				}
				emitted[w] = true
			}
		}
	}
	for _, ch := range t.Chains {
		if !emitted[ch] {
			if err := a.rules(ch); err != nil {
				return err
			}
		}
	}
	for _, s := range t.Sets {
		if err := a.addElements(s); err != nil {
			return fmt.Errorf("set %q: %w", s.Name, err)
		}
	}
	return nil
}

var hooks = map[string]*nftables.ChainHook{
	"prerouting": nftables.ChainHookPrerouting, "input": nftables.ChainHookInput,
	"forward": nftables.ChainHookForward, "output": nftables.ChainHookOutput,
	"postrouting": nftables.ChainHookPostrouting,
}

func (a *assembler) chain(ch *Chain) *nftables.Chain {
	nc := &nftables.Chain{Name: ch.Name, Table: a.table}
	if h := ch.Hook; h != nil {
		nc.Hooknum = hooks[h.Hook]
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(h.Priority))
		nc.Type = nftables.ChainType(h.Type)
	}
	return nc
}

// rules queues the rules of ch, in order.
func (a *assembler) rules(ch *Chain) error {
	for _, r := range ch.Rules {
		var exprs []expr.Any
		for _, st := range r.Stmts {
			exprs = append(exprs, st.exprs(a)...)
		}
		if a.err != nil {
			return fmt.Errorf("chain %q: %w", ch.Name, a.err)
		}
		rule := &nftables.Rule{Table: a.table, Chain: a.chains[ch.Name], Exprs: exprs}
		if r.Comment != "" {
			rule.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
		}
		a.conn.AddRule(rule)
	}
	return nil
}

func hasAnonymousMap(ch *Chain) bool {
	for _, r := range ch.Rules {
		for _, st := range r.Stmts {
			if _, ok := st.(numgenVmap); ok {
				return true
			}
		}
	}
	return false
}

// chainRefs is the chain itself and every chain its rules send packets to.
func chainRefs(ch *Chain) []string {
	refs := []string{ch.Name}
	for _, r := range ch.Rules {
		for _, st := range r.Stmts {
			switch st := st.(type) {
			case decide:
				if st.v.chain != "" {
					refs = append(refs, st.v.chain)
				}
			case numgenVmap:
				refs = append(refs, st.chains...)
			}
		}
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

var setTypes = map[keyType]nftables.SetDatatype{
	typeIPv4:  nftables.TypeIPAddr,
	typeProto: nftables.TypeInetProto,
	typePort:  nftables.TypeInetService,
}

func (a *assembler) addSet(s *Set) error {
	ns := &nftables.Set{
		Table:      a.table,
		ID:         a.id(),
		Name:       s.Name,
		IsMap:      s.Map,
		Dynamic:    s.Dynamic,
		HasTimeout: s.Timeout != 0,
		Timeout:    s.Timeout,
		Size:       s.Size,
		Comment:    s.Comment,
	}
	if len(s.Key) == 1 {
		ns.KeyType = setTypes[s.Key[0]]
		ns.KeyByteOrder = binaryutil.BigEndian
	} else {
		types := make([]nftables.SetDatatype, len(s.Key))
		for i, k := range s.Key {
			types[i] = setTypes[k]
		}
		kt, err := nftables.ConcatSetType(types...)
		if err != nil {
			return err
		}
		ns.KeyType = kt
	}
	if s.Map {
		ns.DataType = nftables.TypeVerdict
	}
	if err := a.conn.AddSet(ns, nil); err != nil {
		return err
	}
	a.sets[s.Name] = ns
	return nil
}

func (a *assembler) addElements(s *Set) error {
	ns := a.sets[s.Name]
	elems := make([]nftables.SetElement, 0, len(s.Elements))
	for _, e := range s.Elements {
		var key []byte
		if len(e.Key) == 1 {
			key = e.Key[0].bytes()
		} else {
			key = concatBytes(e.Key)
		}
		el := nftables.SetElement{Key: key, Comment: e.Comment}
		if e.Verdict.kind != noVerdict {
			el.VerdictData = e.Verdict.expr()
		}
		elems = append(elems, el)
	}
	for len(elems) > 0 {
		n := min(len(elems), elementsPerMessage)
		if err := a.conn.SetAddElements(ns, elems[:n]); err != nil {
			return err
		}
		elems = elems[n:]
	}
	return nil
}

// set returns the set a rule names; an unknown name is a bug in the
// builder, reported when the rule is assembled.
func (a *assembler) set(name string) *nftables.Set {
	s, ok := a.sets[name]
	if !ok {
		a.err = errors.Join(a.err, fmt.Errorf("no set %q", name))
		return &nftables.Set{Name: name}
	}
	return s
}

// anonymousMap creates the constant map of a `numgen ... vmap { }`: from
// the numbers 0..n-1 (big-endian; see numgenVmap) to goto each chain.
func (a *assembler) anonymousMap(chains []string) *nftables.Set {
	id := a.id()
	s := &nftables.Set{
		Table:        a.table,
		ID:           id,
		Name:         "__map%d",
		Anonymous:    true,
		Constant:     true,
		IsMap:        true,
		KeyType:      nftables.TypeInteger,
		DataType:     nftables.TypeVerdict,
		KeyByteOrder: binaryutil.BigEndian,
	}
	elems := make([]nftables.SetElement, len(chains))
	for i, c := range chains {
		elems[i] = nftables.SetElement{
			Key:         binary.BigEndian.AppendUint32(nil, uint32(i)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: c},
		}
	}
	if err := a.conn.AddSet(s, elems); err != nil {
		a.err = errors.Join(a.err, err)
	}
	return s
}

// dial opens an nftables connection whose socket lives in the network
// namespace at nsPath, with buffers for a batch of about messages
// messages. It refuses the process's own namespace: that is the host's,
// which labctl never changes.
func dial(nsPath string, messages int) (*nftables.Conn, func(), error) {
	f, err := openNamespace(nsPath)
	if err != nil {
		return nil, nil, err
	}
	c, err := nftables.New(
		nftables.WithNetNSFd(int(f.Fd())),
		nftables.AsLasting(),
		nftables.WithSockOptions(func(nc *netlink.Conn) error {
			size := max(minBuffer, messages*bufferPerMessage)
			if err := nc.SetReadBuffer(size); err != nil {
				return err
			}
			return nc.SetWriteBuffer(size)
		}),
	)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open nftables in %s: %w", nsPath, err)
	}
	return c, func() { _ = c.CloseLasting(); f.Close() }, nil
}

// openNamespace opens a network namespace file and makes sure it is not
// the one this process runs in: the host's. A descriptor of 0 would make
// the netlink library stay in the current namespace, so it is refused too.
func openNamespace(nsPath string) (*os.File, error) {
	f, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open namespace: %w", err)
	}
	var target unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &target); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat namespace %s: %w", nsPath, err)
	}
	home, err := homeNamespace()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat own namespace: %w", err)
	}
	if target.Dev == home.Dev && target.Ino == home.Ino {
		f.Close()
		return nil, fmt.Errorf("%s is this process's own network namespace (the host's): refusing to change it", nsPath)
	}
	if f.Fd() == 0 {
		f.Close()
		return nil, errors.New("namespace opened as descriptor 0, which the netlink library takes for none")
	}
	return f, nil
}

// homeNamespace is the namespace this process runs in. It is read from a
// thread no goroutine holds: one locked into a lab namespace to build it
// is never given back unless it returned home first, so every other
// thread is at home. (/proc/self/ns/net names the main thread's namespace,
// and the main thread may be one locked into a lab namespace right now.)
func homeNamespace() (unix.Stat_t, error) {
	var st unix.Stat_t
	errc := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		errc <- unix.Stat("/proc/thread-self/ns/net", &st)
	}()
	return st, <-errc
}
