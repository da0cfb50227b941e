package chunk

import (
	"unicode/utf8"
)

// lossyString decodes device-supplied text exactly as ferrite does with Rust's String::from_utf8_lossy, so that
// a device with a broken id gets the same stored id on both servers. Each maximal invalid subsequence (a byte
// that cannot start a character, or the valid beginning of a character cut short) becomes one U+FFFD. This is
// what Rust does and differs from strings.ToValidUTF8, which would merge a whole run of them into one.
func lossyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		if r, size := utf8.DecodeRune(b[i:]); r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		out = utf8.AppendRune(out, utf8.RuneError)
		i += invalidPrefixLen(b[i:])
	}
	return string(out)
}

// invalidPrefixLen returns how many bytes at the start of b (which does not begin with a valid character) form
// one maximal subpart: the lead byte plus the continuation bytes that were still acceptable for it, at least 1.
func invalidPrefixLen(b []byte) int {
	need, lo, hi := 0, byte(0x80), byte(0xBF) // continuation bytes needed, and the range of the first one
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	}
	n := 1
	for ; n <= need && n < len(b) && b[n] >= lo && b[n] <= hi; n++ {
		lo, hi = 0x80, 0xBF
	}
	return n
}
