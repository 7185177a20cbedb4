package ipipd

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// The steering program: a tc (TCX) ingress program on the underlay device
// that sends IPIP packets (IPv4 protocol 4, addressed to this host's MAC,
// untagged) to the offload pair (gro.go) and leaves every other packet to
// the normal path, untouched (TCX_NEXT). It counts both, packets and bytes
// as the device received them (a GSO super-packet counts once), in a
// per-CPU array; it drops nothing itself.
//
//	r6 = skb
//	r7 = slotPassed
//	if skb->pkt_type != PACKET_HOST goto count
//	if skb->protocol != htons(ETH_P_IP) goto count
//	if skb->vlan_present goto count
//	if data + 24 > data_end goto slow     // Ethernet header + IP header up to the protocol
//	r5 = data[23]; goto check
//	slow: if bpf_skb_load_bytes(skb, 23, &fp[-8], 1) != 0 goto count
//	r5 = fp[-8]
//	check: if r5 != IPPROTO_IPIP goto count
//	r7 = slotSteered
//	count: v = map[r7]; v.packets++; v.bytes += skb->len
//	if r7 == slotSteered return bpf_redirect(target, 0)   // to target's egress: TCX_REDIRECT
//	return TCX_NEXT

const (
	slotPassed  = 0
	slotSteered = 1
	steerSlots  = 2
	steerValue  = 16 // per slot and CPU: packets, bytes (u64 each)

	tcxNext = -1 // TCX_NEXT: continue with the next program, or the normal path

	// struct __sk_buff offsets (include/uapi/linux/bpf.h).
	skbLen         = 0
	skbPktType     = 4
	skbProtocol    = 16
	skbVlanPresent = 20
	skbData        = 76
	skbDataEnd     = 80

	ethHeaderLen = 14
	ipProtoOff   = ethHeaderLen + 9 // the IPv4 protocol field, from the MAC header
)

// asm builds a program with forward jumps to named labels.
type asm struct {
	prog   []insn
	labels map[string]int
	jumps  map[int]string // instruction -> label it jumps to
}

func (a *asm) i(code, dst, src uint8, off int16, imm int32) {
	a.prog = append(a.prog, insn{code: code, dst: dst, src: src, off: off, imm: imm})
}

func (a *asm) jump(code, dst, src uint8, imm int32, label string) {
	if a.jumps == nil {
		a.jumps = map[int]string{}
	}
	a.jumps[len(a.prog)] = label
	a.i(code, dst, src, 0, imm)
}

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *asm) assemble() ([]insn, error) {
	for at, name := range a.jumps {
		to, ok := a.labels[name]
		if !ok || to <= at {
			return nil, fmt.Errorf("bpf assembly: bad jump to %q", name)
		}
		a.prog[at].off = int16(to - at - 1)
	}
	return a.prog, nil
}

// steerProgram assembles the program for the counters map countersFD and
// the device target (ifindex) IPIP is sent to.
func steerProgram(countersFD, target int) ([]insn, error) {
	const r0, r1, r2, r3, r4, r5, r6, r7, fp = 0, 1, 2, 3, 4, 5, 6, 7, 10
	ethPIP := int32(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, unix.ETH_P_IP)))
	var a asm
	a.i(opMovX, r6, r1, 0, 0)
	a.i(opMovK, r7, 0, 0, slotPassed)
	a.i(opLdxW, r2, r6, skbPktType, 0)
	a.jump(opJneK, r2, 0, unix.PACKET_HOST, "count")
	a.i(opLdxW, r2, r6, skbProtocol, 0)
	a.jump(opJneK, r2, 0, ethPIP, "count")
	a.i(opLdxW, r2, r6, skbVlanPresent, 0)
	a.jump(opJneK, r2, 0, 0, "count")
	a.i(opLdxW, r2, r6, skbData, 0)
	a.i(opLdxW, r3, r6, skbDataEnd, 0)
	a.i(opMovX, r4, r2, 0, 0)
	a.i(opAddK, r4, 0, 0, ipProtoOff+1)
	a.jump(opJgtX, r4, r3, 0, "slow")
	a.i(opLdxB, r5, r2, ipProtoOff, 0)
	a.jump(opJa, 0, 0, 0, "check")
	// The header is not all in the linear part: read the byte without
	// changing the packet (bpf_skb_pull_data would).
	a.label("slow")
	a.i(opMovX, r1, r6, 0, 0)
	a.i(opMovK, r2, 0, 0, ipProtoOff)
	a.i(opMovX, r3, fp, 0, 0)
	a.i(opAddK, r3, 0, 0, -8)
	a.i(opMovK, r4, 0, 0, 1)
	a.i(opCall, 0, 0, 0, fnSkbLoadBytes)
	a.jump(opJneK, r0, 0, 0, "count")
	a.i(opLdxB, r5, fp, -8, 0)
	a.label("check")
	a.jump(opJneK, r5, 0, unix.IPPROTO_IPIP, "count")
	a.i(opMovK, r7, 0, 0, slotSteered)
	a.label("count")
	a.i(opStxW, fp, r7, -4, 0)
	a.i(opLdImm64, r1, unix.BPF_PSEUDO_MAP_FD, 0, int32(countersFD))
	a.i(0, 0, 0, 0, 0) // second half of the 64-bit immediate
	a.i(opMovX, r2, fp, 0, 0)
	a.i(opAddK, r2, 0, 0, -4)
	a.i(opCall, 0, 0, 0, fnMapLookupElem)
	a.jump(opJeqK, r0, 0, 0, "act")
	a.i(opLdxDW, r1, r0, 0, 0)
	a.i(opAddK, r1, 0, 0, 1)
	a.i(opStxDW, r0, r1, 0, 0)
	a.i(opLdxW, r1, r6, skbLen, 0)
	a.i(opLdxDW, r2, r0, 8, 0)
	a.i(opAddX, r2, r1, 0, 0)
	a.i(opStxDW, r0, r2, 8, 0)
	a.label("act")
	a.jump(opJeqK, r7, 0, slotSteered, "redirect")
	a.i(opMovK, r0, 0, 0, tcxNext)
	a.i(opExit, 0, 0, 0, 0)
	a.label("redirect")
	a.i(opMovK, r1, 0, 0, int32(target))
	a.i(opMovK, r2, 0, 0, 0)
	a.i(opCall, 0, 0, 0, fnRedirect)
	a.i(opExit, 0, 0, 0, 0)
	return a.assemble()
}

// steerCounts is what the steering program counted, summed over CPUs.
type steerCounts struct {
	passedPackets, passedBytes   uint64
	steeredPackets, steeredBytes uint64
}

func readSteerCounts(fd, cpus int) (steerCounts, error) {
	var c steerCounts
	for slot, dst := range [steerSlots][2]*uint64{
		{&c.passedPackets, &c.passedBytes},
		{&c.steeredPackets, &c.steeredBytes},
	} {
		vals, err := lookupPerCPU(fd, uint32(slot), steerValue, cpus)
		if err != nil {
			return c, fmt.Errorf("read steering counters: %w", err)
		}
		for v := vals; len(v) >= steerValue; v = v[steerValue:] {
			*dst[0] += binary.NativeEndian.Uint64(v[0:8])
			*dst[1] += binary.NativeEndian.Uint64(v[8:16])
		}
	}
	return c, nil
}
