package chunk

import (
	"math/rand/v2"
	"testing"
)

// bitwiseCRC is §1.2's definition, one bit at a time, to check the table-driven code against.
func bitwiseCRC(crc uint16, b []byte) uint16 {
	for _, v := range b {
		crc ^= uint16(v) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ crcPoly
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func TestCRCMatchesBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 300)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for n := range len(buf) {
		init := uint16(r.Uint32())
		if got, want := crcUpdate(init, buf[:n]), bitwiseCRC(init, buf[:n]); got != want {
			t.Fatalf("crcUpdate(%04X, %d bytes) = %04X, want %04X", init, n, got, want)
		}
	}
}

func TestCRCZeros(t *testing.T) {
	zeros := make([]byte, maxFrame+1)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 8, 63, 64, 255, 256, 1000, 65535, maxFrame, 1<<17 - 1} {
		if n > len(zeros) {
			zeros = make([]byte, n)
		}
		init := uint16(r.Uint32())
		if got, want := crcZeros(init, n), crcUpdate(init, zeros[:n]); got != want {
			t.Fatalf("crcZeros(%04X, %d) = %04X, want %04X", init, n, got, want)
		}
	}
}

func TestStreamCRCRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	body := make([]byte, 70000)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	s := streamCRC{body: body}
	s.failed(len(body) + 1)
	if s.marks == nil {
		t.Fatal("prefix table not built after wasting more than the body")
	}
	for range 5000 {
		i := r.IntN(len(body))
		n := r.IntN(min(len(body)-i, maxFrame) + 1)
		if got, want := s.sum(i, n), CRC16(body[i:i+n]); got != want {
			t.Fatalf("sum(%d, %d) = %04X, want %04X", i, n, got, want)
		}
	}
	if got := s.sum(len(body)-300, 300); got != CRC16(body[len(body)-300:]) {
		t.Fatal("range ending at the end of the body")
	}
}
