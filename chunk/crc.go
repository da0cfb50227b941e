package chunk

// crcTable is CRC-16/CCITT-FALSE (poly 0x1021, MSB first) one byte at a time.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 is CRC-16/CCITT-FALSE: init 0xFFFF, no reflection, no final XOR. CRC16("123456789") = 0x29B1.
func CRC16(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, v := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^v]
	}
	return crc
}
