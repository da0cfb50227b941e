package symbol

import (
	"debug/dwarf"
	"errors"
	"io"
	"sort"
)

// function is a DWARF subprogram or inlined subroutine.
type function struct {
	name      string // demangled for display
	linkage   bool   // the name is a linkage name or comes from a language without mangling (see fixNames)
	low       uint64 // start of the first range, 0 without ranges
	parent    int32  // for an inlined subroutine: the function it is inlined into; -1 otherwise
	callFile  string
	callLine  int
	hasRanges bool
}

type lineRow struct {
	start, end uint64
	file       string
	line       int
	disc       int
}

type nameInfo struct {
	name    string
	linkage bool
}

// Attribute codes debug/dwarf does not name.
const (
	attrMIPSLinkageName dwarf.Attr = 0x2007
)

type dwarfBuilder struct {
	ix     *Index
	d      *dwarf.Data
	names  map[dwarf.Offset]nameInfo
	ranges []funcRange
	seqs   [][]lineRow
}

type funcRange struct {
	lo, hi uint64
	fn     int32
}

func (b *dwarfBuilder) run() error {
	r := b.d.Reader()
	var files []*dwarf.LineFile
	var mangled bool
	var stack []int32 // per open DIE with children: the nearest enclosing function, -1 for none
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		if e == nil {
			break
		}
		if e.Tag == 0 {
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if e.Tag == dwarf.TagCompileUnit || e.Tag == dwarf.TagPartialUnit {
			stack = stack[:0]
			files = nil
			lang, _ := e.Val(dwarf.AttrLanguage).(int64)
			mangled = mangledLanguage(lang)
			lr, err := b.d.LineReader(e)
			if err != nil {
				return err
			}
			if lr != nil {
				if err := b.addLines(lr); err != nil {
					return err
				}
				files = lr.Files()
			}
			if e.Children {
				stack = append(stack, -1)
			}
			continue
		}
		enclosing := int32(-1)
		if len(stack) > 0 {
			enclosing = stack[len(stack)-1]
		}
		cur := enclosing
		switch e.Tag {
		case dwarf.TagSubprogram, dwarf.TagInlinedSubroutine, dwarf.TagEntryPoint:
			cur = b.addFunction(e, enclosing, files, mangled)
		}
		if e.Children {
			stack = append(stack, cur)
		}
	}
	b.finish()
	return nil
}

func (b *dwarfBuilder) addFunction(e *dwarf.Entry, enclosing int32, files []*dwarf.LineFile, mangled bool) int32 {
	n := b.entryName(e, 0)
	fn := function{name: n.name, linkage: n.linkage || (n.name != "" && !mangled), parent: -1}
	if e.Tag == dwarf.TagInlinedSubroutine {
		fn.parent = enclosing
		if i, ok := e.Val(dwarf.AttrCallFile).(int64); ok && i >= 0 && int(i) < len(files) && files[i] != nil {
			fn.callFile = files[i].Name
		}
		if l, ok := e.Val(dwarf.AttrCallLine).(int64); ok {
			fn.callLine = int(l)
		}
	}
	idx := int32(len(b.ix.funcs))
	rs, err := b.d.Ranges(e)
	if err == nil {
		for _, rg := range rs {
			if rg[0] >= rg[1] || !b.ix.inText(rg[0]) {
				continue // empty, or code discarded by the linker (left at address 0)
			}
			if !fn.hasRanges {
				fn.low, fn.hasRanges = rg[0], true
			}
			b.ranges = append(b.ranges, funcRange{lo: rg[0], hi: rg[1], fn: idx})
		}
	}
	b.ix.funcs = append(b.ix.funcs, fn)
	return idx
}

// entryName finds a DIE's name as binutils does: a linkage name wins, then the name of the abstract origin or
// specification, then DW_AT_name.
func (b *dwarfBuilder) entryName(e *dwarf.Entry, depth int) nameInfo {
	for _, a := range []dwarf.Attr{dwarf.AttrLinkageName, attrMIPSLinkageName} {
		if s, ok := e.Val(a).(string); ok && s != "" {
			return nameInfo{s, true}
		}
	}
	if depth < 8 {
		for _, a := range []dwarf.Attr{dwarf.AttrAbstractOrigin, dwarf.AttrSpecification} {
			if off, ok := e.Val(a).(dwarf.Offset); ok {
				if n := b.nameAt(off, depth+1); n.name != "" {
					return n
				}
			}
		}
	}
	s, _ := e.Val(dwarf.AttrName).(string)
	return nameInfo{s, false}
}

func (b *dwarfBuilder) nameAt(off dwarf.Offset, depth int) nameInfo {
	if n, ok := b.names[off]; ok {
		return n
	}
	r := b.d.Reader()
	r.Seek(off)
	e, err := r.Next()
	var n nameInfo
	if err == nil && e != nil {
		n = b.entryName(e, depth)
	}
	b.names[off] = n
	return n
}

// mangledLanguage reports the DW_AT_language values for which binutils treats a plain DW_AT_name as not being
// the symbol's linkage name (and so prefers the symbol table's name at the same address).
func mangledLanguage(lang int64) bool {
	switch lang {
	case 0x1, 0xd, // Ada83, Ada95
		0x4, 0x19, 0x1a, 0x21, 0x2a, 0x2b, // C++, C++03, C++11, C++14, C++17, C++20
		0xb, 0x13, 0x1c, 0x9000: // Java, D, Rust, Rust (old)
		return true
	}
	return false
}

func (b *dwarfBuilder) addLines(lr *dwarf.LineReader) error {
	var seq []lineRow
	var le dwarf.LineEntry
	for {
		err := lr.Next(&le)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		row := lineRow{start: le.Address, line: le.Line, disc: le.Discriminator}
		if le.File != nil {
			row.file = le.File.Name
		}
		end := le.EndSequence
		// binutils keeps only the last row at one address (PR ld/4986); an end-of-sequence row is separate.
		if n := len(seq); n > 0 && seq[n-1].start == row.start && (seq[n-1].end == 1) == end {
			seq = seq[:n-1]
		}
		if end {
			row.end = 1 // marks the end-of-sequence row until finish
		}
		seq = append(seq, row)
		if end {
			b.seqs = append(b.seqs, seq)
			seq = nil
		}
	}
	return nil
}

// finish builds the address partitions. Line sequences come in arbitrary order (one per section with
// -ffunction-sections), so they are sorted and trimmed like binutils does, rather than trusting
// dwarf.LineReader.SeekPC, which assumes sorted sequences.
func (b *dwarfBuilder) finish() {
	ix := b.ix
	type seqInfo struct {
		rows    []lineRow
		lo, hi  uint64
		ordinal int
	}
	var seqs []seqInfo
	for i, s := range b.seqs {
		if len(s) < 2 || !ix.inText(s[0].start) {
			continue
		}
		seqs = append(seqs, seqInfo{s, s[0].start, s[len(s)-1].start, i})
	}
	sort.Slice(seqs, func(i, j int) bool {
		a, c := seqs[i], seqs[j]
		if a.lo != c.lo {
			return a.lo < c.lo
		}
		if a.hi != c.hi {
			return a.hi > c.hi
		}
		return a.ordinal < c.ordinal
	})
	var lastHigh uint64
	for n, s := range seqs {
		lo := s.lo
		if n > 0 && lo < lastHigh {
			if s.hi <= lastHigh {
				continue // nested in the previous sequence
			}
			lo = lastHigh
		}
		lastHigh = s.hi
		for i := 0; i+1 < len(s.rows); i++ {
			r := s.rows[i]
			r.end = s.rows[i+1].start
			if r.start < lo {
				r.start = lo
			}
			if r.start < r.end {
				ix.lines = append(ix.lines, r)
			}
		}
	}
	ix.funcMap = buildPartition(b.ranges)
	b.ranges = nil
	b.seqs = nil
}

// lineAt returns the line-table row covering addr.
func (ix *Index) lineAt(addr uint64) (lineRow, bool) {
	i := sort.Search(len(ix.lines), func(i int) bool { return ix.lines[i].start > addr }) - 1
	if i >= 0 && addr < ix.lines[i].end {
		return ix.lines[i], true
	}
	return lineRow{}, false
}

// partition maps every address to the innermost function containing it.
type partition struct {
	starts []uint64 // starts[i] begins span i; the last element ends the final span
	owner  []int32  // owner of span i, -1 for none
}

// buildPartition picks, for every address, the function whose range containing it is the smallest; among equal
// sizes the later DIE wins. This is binutils' best-fit rule, and for properly nested ranges it is the innermost
// inlined subroutine.
func buildPartition(ranges []funcRange) partition {
	if len(ranges) == 0 {
		return partition{}
	}
	bounds := make([]uint64, 0, 2*len(ranges))
	for _, r := range ranges {
		bounds = append(bounds, r.lo, r.hi)
	}
	sort.Slice(bounds, func(i, j int) bool { return bounds[i] < bounds[j] })
	uniq := bounds[:1]
	for _, v := range bounds[1:] {
		if v != uniq[len(uniq)-1] {
			uniq = append(uniq, v)
		}
	}
	owner := make([]int32, len(uniq)-1)
	for i := range owner {
		owner[i] = -1
	}
	// Give each span to the smallest range covering it (the later DIE on a tie): visit ranges smallest first
	// and claim only spans still free. next[i] leads to the first free span at or after i (union-find with
	// path halving), so every span is claimed once and hostile DWARF cannot make this quadratic.
	order := make([]int, len(ranges))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, c := ranges[order[i]], ranges[order[j]]
		if la, lc := a.hi-a.lo, c.hi-c.lo; la != lc {
			return la < lc
		}
		return a.fn > c.fn
	})
	next := make([]int, len(owner)+1)
	for i := range next {
		next[i] = i
	}
	find := func(i int) int {
		for next[i] != i {
			next[i] = next[next[i]]
			i = next[i]
		}
		return i
	}
	for _, k := range order {
		r := ranges[k]
		i := sort.Search(len(uniq), func(i int) bool { return uniq[i] >= r.lo })
		if i >= len(owner) {
			continue
		}
		i = find(i)
		for ; i < len(owner) && uniq[i] < r.hi; i = find(i + 1) {
			owner[i] = r.fn
			next[i] = i + 1
		}
	}
	// Merge neighbouring spans with the same owner.
	p := partition{starts: []uint64{uniq[0]}, owner: []int32{owner[0]}}
	for i := 1; i < len(owner); i++ {
		if owner[i] != p.owner[len(p.owner)-1] {
			p.starts = append(p.starts, uniq[i])
			p.owner = append(p.owner, owner[i])
		}
	}
	p.starts = append(p.starts, uniq[len(uniq)-1])
	return p
}

func (p *partition) lookup(addr uint64) int32 {
	if len(p.owner) == 0 || addr < p.starts[0] || addr >= p.starts[len(p.starts)-1] {
		return -1
	}
	i := sort.Search(len(p.owner), func(i int) bool { return p.starts[i+1] > addr })
	return p.owner[i]
}
