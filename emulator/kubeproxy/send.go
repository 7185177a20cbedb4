package kubeproxy

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why Program does not let google/nftables send its batch: the library
// asks the kernel to acknowledge every message and then reads the acks one
// by one. For a thousand services that is some fifteen thousand acks and twelve thousand rules, which
// the kernel must build and queue and we must receive and parse: about a
// third of the time programming a node took. The kernel handles a batch
// synchronously, inside the sendmsg that carries it, and reports every
// message that fails whether an ack was asked for or not. So labctl uses
// the library only to marshal the messages (through its test dialer, which
// hands them over instead of sending them), asks an ack of the last one
// alone, sends the batch itself in one write, and reads until that ack:
// anything before it is an error of the batch, which the kernel then
// aborted as a whole. This is what `nft -f` amounts to as well, one batch
// and one transaction.

// replyTimeout bounds the wait for the kernel's answer to a batch, which
// it has queued by the time the batch's sendmsg returns: only a kernel bug
// would make us wait at all.
const replyTimeout = 10 * time.Second

// marshal runs queue on a connection that sends nothing, and returns the
// netlink messages of the batches its Flushes would have sent (queue may
// flush; marshal flushes what it leaves), each framed by its begin and end
// messages.
func marshal(queue func(*nftables.Conn) error) ([][]netlink.Message, error) {
	var batches [][]netlink.Message
	c, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) > 0 {
			batches = append(batches, req)
		}
		// EOF: no reply will come, so the library's wait for each ack
		// ends at once.
		return nil, io.EOF
	}))
	if err != nil {
		return nil, err
	}
	if err := queue(c); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return batches, nil
}

// sendBatch sends a marshalled batch to nftables in the network namespace
// at nsPath, with an ack asked of its last message only, and returns once
// the kernel has committed it, or the error that made it abort.
func sendBatch(nsPath string, msgs []netlink.Message) error {
	if len(msgs) < 3 {
		return nil // begin and end only: nothing to do
	}
	// The messages may be shared with other nodes' batches: change the
	// headers of a copy only.
	msgs = slices.Clone(msgs)
	f, err := openNamespace(nsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return fmt.Errorf("open nftables in %s: %w", nsPath, err)
	}
	defer c.Close()
	size := 0
	for _, m := range msgs {
		size += int(m.Header.Length)
	}
	// The whole batch goes in one write, which must fit the send buffer;
	// the kernel would refuse a larger one (EMSGSIZE).
	if err := c.SetWriteBuffer(max(minBuffer, 2*size)); err != nil {
		return fmt.Errorf("size the send buffer: %w", err)
	}
	// With extended acks the kernel says which attribute it refused.
	_ = c.SetOption(netlink.ExtendedAcknowledge, true)
	last := len(msgs) - 2 // the message before the batch's end
	for i := range msgs {
		// The test dialer's port id and sequence numbers: the real socket
		// fills in its own port id; the numbers stay, unique in the batch.
		msgs[i].Header.PID = 0
		// The library also asks the kernel to echo every rule back (to
		// learn its handle, which we never use): more work for both.
		msgs[i].Header.Flags &^= netlink.Echo
		if i != last {
			msgs[i].Header.Flags &^= netlink.Acknowledge
		} else {
			msgs[i].Header.Flags |= netlink.Acknowledge
		}
	}
	want := msgs[last].Header.Sequence
	if _, err := c.SendMessages(msgs); err != nil {
		return fmt.Errorf("send batch of %d messages: %w", len(msgs), err)
	}
	if err := c.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return err
	}
	for {
		replies, err := c.Receive()
		if err != nil {
			// An error message: the kernel aborted the batch.
			return fmt.Errorf("the kernel refused a batch of %d messages: %w", len(msgs), err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == want {
				return nil
			}
		}
		if len(replies) == 0 {
			return errors.New("batch: the kernel answered nothing")
		}
	}
}
