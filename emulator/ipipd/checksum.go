package ipipd

import (
	"encoding/binary"
	"math/bits"
)

// sum16 returns the 16-bit ones' complement sum (RFC 1071) of b, read as
// big-endian words, added to initial; the result is folded but not
// complemented. Segmenting and coalescing TCP in userspace puts every payload
// byte through here once, so the bulk runs on 64-bit little-endian loads with
// carry chains: the ones' complement sum is byte-order independent, so the
// little-endian sum is the byte-swapped big-endian one (RFC 1071 section 2B).
func sum16(b []byte, initial uint32) uint16 {
	var acc, carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), carry)
		b = b[8:]
	}
	// End-around carry: 2^64 is 1 modulo 2^16-1.
	acc, carry = bits.Add64(acc, carry, 0)
	acc += carry
	s := (acc >> 32) + (acc & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	be := uint64(bits.ReverseBytes16(uint16(s)))
	for len(b) >= 2 {
		be += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		be += uint64(b[0]) << 8
	}
	be += uint64(initial)
	be = (be >> 16) + (be & 0xffff)
	be = (be >> 16) + (be & 0xffff)
	return uint16(be)
}

// ipHeaderChecksum computes the checksum of an IPv4 header whose checksum
// field is ignored.
func ipHeaderChecksum(h []byte) uint16 {
	s := uint32(sum16(h[:10], 0))
	return ^sum16(h[12:], s)
}

// pseudoSum is the folded sum of the IPv4 pseudo header (RFC 793, RFC 768)
// for a transport segment of length n with protocol proto.
func pseudoSum(ip []byte, proto uint8, n int) uint32 {
	s := uint32(sum16(ip[12:20], uint32(proto)+uint32(n)))
	return s
}
