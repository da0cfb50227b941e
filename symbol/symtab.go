package symbol

import (
	"debug/elf"
	"sort"
	"strings"
)

// symCandidate is the symbol addr2line would name for addresses from off up to the next candidate.
type symCandidate struct {
	off  uint64 // address, Thumb bit cleared
	size uint64
	name string
	file string // from a preceding STT_FILE symbol, as binutils assigns it
}

// loadSymbols prepares the symbol-table fallback used where DWARF names no function. It mirrors binutils'
// _bfd_elf_find_function with the ARM rules: function and untyped symbols of the address's section, mapping
// symbols ($t, $a, $d) excluded, the nearest one at or below the address, the larger one on a tie.
func (ix *Index) loadSymbols(f *elf.File) {
	syms, err := f.Symbols()
	if err != nil {
		return
	}
	ix.elfSyms = syms
	ix.syms = map[int][]symCandidate{}
	const (
		nothingSeen = iota
		symbolSeen
		fileAfterSymbolSeen
	)
	state := nothingSeen
	file := ""
	best := map[int]map[uint64]symCandidate{}
	for _, s := range syms {
		typ := elf.ST_TYPE(s.Info)
		if typ == elf.STT_FILE {
			file = s.Name
			if state == symbolSeen {
				state = fileAfterSymbolSeen
			}
			continue
		}
		if c, ok := functionSymbol(s); ok {
			local := elf.ST_BIND(s.Info) == elf.STB_LOCAL
			if file != "" && (local || state != fileAfterSymbolSeen) {
				c.file = file
			}
			sec := int(s.Section)
			m := best[sec]
			if m == nil {
				m = map[uint64]symCandidate{}
				best[sec] = m
			}
			if old, ok := m[c.off]; !ok || c.size > old.size {
				m[c.off] = c
			}
		}
		if state == nothingSeen {
			state = symbolSeen
		}
	}
	for sec, m := range best {
		list := make([]symCandidate, 0, len(m))
		for _, c := range m {
			list = append(list, c)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].off < list[j].off })
		ix.syms[sec] = list
	}
}

func functionSymbol(s elf.Symbol) (symCandidate, bool) {
	if s.Section == elf.SHN_UNDEF || s.Section >= elf.SHN_LORESERVE {
		return symCandidate{}, false
	}
	size := s.Size
	switch elf.ST_TYPE(s.Info) {
	case elf.STT_NOTYPE:
		// Local hidden untyped zero-size symbols are annotation markers, not code.
		if size == 0 && elf.ST_BIND(s.Info) == elf.STB_LOCAL && elf.ST_VISIBILITY(s.Other) == elf.STV_HIDDEN {
			return symCandidate{}, false
		}
	case elf.STT_FUNC:
	default:
		return symCandidate{}, false
	}
	if elf.ST_BIND(s.Info) == elf.STB_LOCAL && isMappingSymbol(s.Name) {
		return symCandidate{}, false
	}
	if size == 0 {
		size = 1
	}
	off := s.Value
	if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
		off &^= 1 // Thumb functions have bit 0 set in st_value
	}
	return symCandidate{off: off, size: size, name: s.Name}, true
}

// isMappingSymbol matches ARM ELF mapping symbols: $a, $t, $d, optionally followed by ".suffix".
func isMappingSymbol(name string) bool {
	if len(name) < 2 || name[0] != '$' || !strings.ContainsRune("atd", rune(name[1])) {
		return false
	}
	return len(name) == 2 || name[2] == '.'
}

// symbolAt returns the fallback symbol for addr in section sec.
func (ix *Index) symbolAt(sec *section, addr uint64) (symCandidate, bool) {
	list := ix.syms[sec.index]
	i := sort.Search(len(list), func(i int) bool { return list[i].off > addr }) - 1
	if i < 0 {
		return symCandidate{}, false
	}
	return list[i], true
}

// fixNames applies binutils' rule for functions named only by DW_AT_name in languages that mangle (a C++
// extern "C" function, say): when a symbol starts exactly where the function does, its name is shown instead.
func (ix *Index) fixNames() {
	for i := range ix.funcs {
		fn := &ix.funcs[i]
		if fn.linkage || !fn.hasRanges {
			continue
		}
		if sec := ix.sectionAt(fn.low); sec != nil {
			if c, ok := ix.symbolAt(sec, fn.low); ok && c.off == fn.low {
				fn.name = c.name
			}
		}
	}
}
