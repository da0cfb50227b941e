package symbol

import (
	"fmt"
	"strconv"
	"sync"
)

// Frame is one function in the chain Resolve returns for an address.
type Frame struct {
	// Function is the demangled function name, "" when unknown (addr2line's "??").
	Function string
	// File is the source path as recorded in the debug info, "" when unknown.
	File string
	// Line is the 1-based source line, 0 when unknown.
	Line int
	// Discriminator tells apart blocks on one line (loop bodies); only the innermost frame has one.
	Discriminator int
	// Inlined is true when this function was inlined into the next frame of the chain.
	Inlined bool
}

// Location formats File and Line as addr2line does: "file:line", with "??" and "?" for unknown parts.
func (f Frame) Location() string {
	file := f.File
	if file == "" {
		file = "??"
	}
	if f.Line == 0 {
		return file + ":?"
	}
	return file + ":" + strconv.Itoa(f.Line)
}

// String formats the frame as `addr2line -f -C -p` does: "function at file:line".
func (f Frame) String() string {
	fn := f.Function
	if fn == "" {
		fn = "??"
	}
	return fmt.Sprintf("%s at %s", fn, f.Location())
}

// Resolve returns the functions at addr, innermost first, as `addr2line -f -i -C` lists them: the function
// (possibly inlined) containing the address with the line of the address, then each function it was inlined
// into with the line of the inlined call, ending with the out-of-line function. The Thumb bit of addr is
// ignored. An address outside every section yields one frame with nothing known.
//
// The result is cached and shared: callers must not modify it.
func (ix *Index) Resolve(addr uint64) []Frame {
	addr &^= 1
	if frames, ok := ix.cache.get(addr); ok {
		return frames
	}
	frames := ix.resolve(addr)
	ix.cache.put(addr, frames)
	return frames
}

func (ix *Index) resolve(addr uint64) []Frame {
	sec := ix.sectionAt(addr)
	if sec == nil {
		return []Frame{{}}
	}
	fi := ix.funcMap.lookup(addr)
	row, haveLine := ix.lineAt(addr)
	first := Frame{File: row.file, Line: row.line, Discriminator: row.disc}
	if fi >= 0 && ix.funcs[fi].name != "" {
		first.Function = ix.funcs[fi].name
	} else if c, ok := ix.symbolAt(sec, addr); ok {
		first.Function = Demangle(c.name)
		if fi < 0 && !haveLine {
			first.File = c.file
		}
	}
	frames := []Frame{first}
	for fi >= 0 {
		fn := &ix.funcs[fi]
		if fn.parent < 0 {
			break
		}
		frames[len(frames)-1].Inlined = true
		frames = append(frames, Frame{Function: ix.funcs[fn.parent].name, File: fn.callFile, Line: fn.callLine})
		fi = fn.parent
	}
	return frames
}

// defaultCacheSize bounds the resolve cache: fault addresses come from devices and must not grow memory
// without limit.
const defaultCacheSize = 1 << 16

// resolveCache is a bounded map safe for concurrent use. When full it is emptied and refilled: symbolication
// traffic concentrates on few addresses, so a simple reset keeps hot entries cheaply.
type resolveCache struct {
	mu  sync.RWMutex
	max int
	m   map[uint64][]Frame
}

func (c *resolveCache) init(max int) {
	c.max = max
	c.m = make(map[uint64][]Frame)
}

func (c *resolveCache) get(addr uint64) ([]Frame, bool) {
	c.mu.RLock()
	f, ok := c.m[addr]
	c.mu.RUnlock()
	return f, ok
}

func (c *resolveCache) put(addr uint64, f []Frame) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		c.m = make(map[uint64][]Frame)
	}
	c.m[addr] = f
	c.mu.Unlock()
}
