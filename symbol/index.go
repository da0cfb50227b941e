// Package symbol turns Cortex-M firmware addresses into functions, files and lines, unwinds crash backtraces and
// decodes fault status registers. It reads ELF files with debug/elf and debug/dwarf only: no network, no store,
// no external addr2line. An Index is built once per ELF and is safe for concurrent use.
package symbol

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// Index answers address queries for one ELF file. Build it once with New or Open and share it: every method is
// safe for concurrent use, and Resolve keeps a bounded cache of its answers.
type Index struct {
	sections []section // SHF_ALLOC sections with a size, sorted by address
	funcs    []function
	funcMap  partition // address -> innermost DWARF function (index into funcs)
	lines    []lineRow // sorted, non-overlapping
	syms     map[int][]symCandidate
	cfi      *frameTable // nil without .debug_frame
	buildID  []byte
	elfSyms  []elf.Symbol
	cache    resolveCache
}

type section struct {
	index      int // ELF section header index, to match symbols' st_shndx
	name       string
	addr, size uint64
	exec       bool
	data       []byte // contents of PROGBITS sections: instructions to decode, version strings
}

// Open builds the index of the ELF file at path.
func Open(path string) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("symbol: open ELF: %w", err)
	}
	defer f.Close()
	return New(f)
}

// ErrNotARM is returned for ELF files that are not 32-bit little-endian ARM.
var ErrNotARM = errors.New("symbol: not a 32-bit little-endian ARM ELF file")

// New builds the index of the ELF file read from r. The index keeps no reference to r. Files without DWARF are
// accepted: addresses then resolve through the symbol table only.
func New(r io.ReaderAt) (ix *Index, err error) {
	// debug/elf and debug/dwarf can panic on some corrupt inputs; an upload must never take the server down.
	defer func() {
		if p := recover(); p != nil {
			ix, err = nil, fmt.Errorf("symbol: corrupt ELF file: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("symbol: read ELF: %w", err)
	}
	if f.Class != elf.ELFCLASS32 || f.Data != elf.ELFDATA2LSB || f.Machine != elf.EM_ARM {
		return nil, ErrNotARM
	}
	ix = &Index{}
	if err := ix.loadSections(f); err != nil {
		return nil, err
	}
	ix.loadSymbols(f)
	ix.buildID = readBuildID(f)
	if d, err := f.DWARF(); err == nil {
		if err := ix.loadDWARF(d); err != nil {
			return nil, err
		}
		ix.fixNames()
		for i := range ix.funcs {
			ix.funcs[i].name = Demangle(ix.funcs[i].name)
		}
	}
	if s := f.Section(".debug_frame"); s != nil {
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("symbol: read .debug_frame: %w", err)
		}
		if ix.cfi, err = parseFrameTable(data); err != nil {
			return nil, err
		}
	}
	ix.cache.init(defaultCacheSize)
	return ix, nil
}

func (ix *Index) loadSections(f *elf.File) error {
	for i, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Size == 0 {
			continue
		}
		sec := section{index: i, name: s.Name, addr: s.Addr, size: s.Size, exec: s.Flags&elf.SHF_EXECINSTR != 0}
		if s.Type == elf.SHT_PROGBITS {
			data, err := s.Data()
			if err != nil {
				return fmt.Errorf("symbol: read section %s: %w", s.Name, err)
			}
			sec.data = data
		}
		ix.sections = append(ix.sections, sec)
	}
	sort.SliceStable(ix.sections, func(i, j int) bool { return ix.sections[i].addr < ix.sections[j].addr })
	return nil
}

// sectionAt returns the allocated section containing addr, as addr2line chooses it.
func (ix *Index) sectionAt(addr uint64) *section {
	for i := range ix.sections {
		s := &ix.sections[i]
		if addr >= s.addr && addr-s.addr < s.size {
			return s
		}
	}
	return nil
}

// inText reports whether addr lies in an executable section.
func (ix *Index) inText(addr uint64) bool {
	s := ix.sectionAt(addr)
	return s != nil && s.exec
}

// halfword reads the 16-bit instruction word at addr from an executable section.
func (ix *Index) halfword(addr uint64) (uint16, bool) {
	s := ix.sectionAt(addr)
	if s == nil || !s.exec || addr&1 != 0 {
		return 0, false
	}
	off := addr - s.addr
	if off+2 > uint64(len(s.data)) {
		return 0, false
	}
	return uint16(s.data[off]) | uint16(s.data[off+1])<<8, true
}

// loadDWARF indexes functions, inline chains and line tables.
func (ix *Index) loadDWARF(d *dwarf.Data) error {
	b := dwarfBuilder{ix: ix, d: d, names: map[dwarf.Offset]nameInfo{}}
	if err := b.run(); err != nil {
		return fmt.Errorf("symbol: read DWARF: %w", err)
	}
	return nil
}
