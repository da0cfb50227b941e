package chunk

// CRC-16/CCITT-FALSE parameters (§1.2): polynomial 0x1021 processed MSB first, initial register 0xFFFF, no
// reflection, no final XOR.
const (
	crcPoly = 0x1021
	crcInit = 0xFFFF
)

// crcTables is a slicing-by-8 table set: crcTables[k][x] is the register after feeding byte x followed by k zero
// bytes into a zero register. Eight bytes then cost eight independent lookups instead of a chain of eight, which
// is what keeps CRC checking (the bulk of DecodeStream's work) fast.
var crcTables = func() (t [8][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ crcPoly
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for k := 1; k < len(t); k++ {
		for i := range t[k] {
			c := t[k-1][i]
			t[k][i] = c<<8 ^ t[0][c>>8]
		}
	}
	return t
}()

// CRC16 is the frame checksum ferrite uses: CRC-16/CCITT-FALSE, so CRC16("123456789") = 0x29B1 and
// CRC16(nil) = 0xFFFF. A frame stores it little-endian after the payload.
func CRC16(b []byte) uint16 { return crcUpdate(crcInit, b) }

// crcUpdate continues a CRC register over b. Because the register is linear in its input, XORing it into the
// first two message bytes lets eight bytes be folded with one lookup per byte.
func crcUpdate(crc uint16, b []byte) uint16 {
	t := &crcTables
	for len(b) >= 8 {
		crc = t[7][byte(crc>>8)^b[0]] ^ t[6][byte(crc)^b[1]] ^ t[5][b[2]] ^ t[4][b[3]] ^
			t[3][b[4]] ^ t[2][b[5]] ^ t[1][b[6]] ^ t[0][b[7]]
		b = b[8:]
	}
	for _, v := range b {
		crc = crc<<8 ^ t[0][byte(crc>>8)^v]
	}
	return crc
}

// crcZeroPow[k] is the linear map "feed 2^k zero bytes into the register", tabulated per register byte:
// crcZeroPow[k][0][lo] ^ crcZeroPow[k][1][hi]. With it crcZeros advances a register over n zero bytes in
// O(log n) lookups, which is how streamCRC gets the CRC of any range of a body without reading the range.
var crcZeroPow = func() (m [17][2][256]uint16) {
	var bits [16]uint16 // images of the sixteen register bits under the current power
	for bit := range bits {
		c := uint16(1) << bit
		bits[bit] = c<<8 ^ crcTables[0][c>>8]
	}
	for k := range m {
		for x := range 256 {
			m[k][0][x] = applyBits(&bits, uint16(x))
			m[k][1][x] = applyBits(&bits, uint16(x)<<8)
		}
		for bit := range bits { // square the map for the next power of two
			bits[bit] = m[k][0][byte(bits[bit])] ^ m[k][1][bits[bit]>>8]
		}
	}
	return m
}()

// applyBits applies a linear map given as the images of the sixteen register bits.
func applyBits(images *[16]uint16, v uint16) uint16 {
	var out uint16
	for bit := 0; v != 0; bit, v = bit+1, v>>1 {
		if v&1 != 0 {
			out ^= images[bit]
		}
	}
	return out
}

// crcZeros returns the register after feeding n zero bytes into crc; n must be below 2^17, which covers any
// frame (at most 8 + 65535 + 2 bytes).
func crcZeros(crc uint16, n int) uint16 {
	for k := 0; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			crc = crcZeroPow[k][0][byte(crc)] ^ crcZeroPow[k][1][crc>>8]
		}
	}
	return crc
}
