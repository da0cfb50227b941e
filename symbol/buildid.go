package symbol

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"unicode/utf8"
)

const ntGNUBuildID = 3

// readBuildID returns the descriptor of the NT_GNU_BUILD_ID note, nil without one.
func readBuildID(f *elf.File) []byte {
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		if id := findBuildIDNote(data); id != nil {
			return id
		}
	}
	return nil
}

// findBuildIDNote walks ELF notes: namesz, descsz, type, then name and descriptor, each padded to 4 bytes.
func findBuildIDNote(data []byte) []byte {
	for len(data) >= 12 {
		namesz := uint64(binary.LittleEndian.Uint32(data[0:]))
		descsz := uint64(binary.LittleEndian.Uint32(data[4:]))
		typ := binary.LittleEndian.Uint32(data[8:])
		data = data[12:]
		nameEnd := (namesz + 3) &^ 3
		descEnd := nameEnd + (descsz+3)&^3
		if descEnd > uint64(len(data)) || namesz > uint64(len(data)) || nameEnd+descsz > uint64(len(data)) {
			return nil
		}
		if typ == ntGNUBuildID && string(data[:namesz]) == "GNU\x00" && descsz > 0 {
			return bytes.Clone(data[nameEnd : nameEnd+descsz])
		}
		data = data[descEnd:]
	}
	return nil
}

// BuildID returns the GNU build id (the .note.gnu.build-id descriptor, usually 20 bytes of SHA-1), or nil when
// the ELF was linked without --build-id.
func (ix *Index) BuildID() []byte { return bytes.Clone(ix.buildID) }

// BuildIDHex returns the build id as lowercase hex, as `readelf -n` and `file` print it; "" without one.
func (ix *Index) BuildIDHex() string { return hex.EncodeToString(ix.buildID) }

// BuildID64 returns the first 8 bytes of the build id read big-endian, so that its hex form is the first 16 hex
// digits of BuildIDHex. A device that reports this value as its u64 build_id can be matched to the ELF. It is 0
// without a build id.
func (ix *Index) BuildID64() uint64 {
	var b [8]byte
	copy(b[:], ix.buildID)
	return binary.BigEndian.Uint64(b[:])
}

// VersionSymbols are the symbol names FirmwareVersion looks for, in order.
var VersionSymbols = []string{"firmware_version", "FIRMWARE_VERSION", "g_firmware_version", "fw_version",
	"FW_VERSION", "app_version", "APP_VERSION"}

// FirmwareVersion returns the version string the firmware embeds under one of VersionSymbols (a C string array,
// a pointer to a C string, or a Rust &str), and whether one was found. It lets an upload without a version
// header still be filed under the version the devices report.
func (ix *Index) FirmwareVersion() (string, bool) {
	for _, want := range VersionSymbols {
		for _, s := range ix.elfSyms {
			if s.Name != want || elf.ST_TYPE(s.Info) != elf.STT_OBJECT {
				continue
			}
			if v, ok := ix.versionAt(s.Value, s.Size); ok {
				return v, true
			}
		}
	}
	return "", false
}

func (ix *Index) versionAt(addr, size uint64) (string, bool) {
	raw, ok := ix.read(addr, size)
	if !ok {
		return "", false
	}
	if v, ok := printable(raw); ok {
		return v, true
	}
	switch size {
	case 4: // const char *
		if p, ok := ix.read(uint64(binary.LittleEndian.Uint32(raw)), 0); ok {
			return printable(p)
		}
	case 8: // Rust &str: pointer, length
		p, n := binary.LittleEndian.Uint32(raw), binary.LittleEndian.Uint32(raw[4:])
		if n > 0 && n <= 128 {
			if b, ok := ix.read(uint64(p), uint64(n)); ok {
				return printable(b)
			}
		}
	}
	return "", false
}

// read returns size bytes at addr from the file image (size 0: up to 128 bytes, for a C string).
func (ix *Index) read(addr, size uint64) ([]byte, bool) {
	sec := ix.sectionAt(addr)
	if sec == nil || sec.data == nil {
		return nil, false
	}
	off := addr - sec.addr
	if size == 0 {
		size = min(128, uint64(len(sec.data))-off)
	}
	if size > 128 || off+size > uint64(len(sec.data)) {
		return nil, false
	}
	return sec.data[off : off+size], true
}

// printable accepts a NUL-terminated or unterminated run of printable UTF-8 of 1 to 127 bytes.
func printable(b []byte) (string, bool) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	if len(b) == 0 || len(b) > 127 || !utf8.Valid(b) {
		return "", false
	}
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			return "", false
		}
	}
	return string(b), true
}
