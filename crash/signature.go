// Package crash symbolicates faults in the background and files them into crash groups: workers take faults that
// lack symbols from the store, resolve them against the ELF of the firmware their device ran, and save the
// backtrace, the decoded causes and a signature over the function names of the faulting frame and its caller.
package crash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
	"github.com/lodestone-fleet/lodestone/symbol"
)

// signatureFrames is how many certain frames (pc, lr, cfi) make a signature: the faulting function and its
// caller, enough to tell apart two callers of a common helper. Deeper frames stay on each fault's backtrace as
// context but are left out of the key, because whether CFI reaches them depends on how much stack a device's
// snapshot holds (an SDK that records its handler's SP spends half of the 16 words on the exception frame), and
// the same crash must not become two issues because of that.
const signatureFrames = 2

// legacyFrames is how many frames signatures covered before: a crash whose old key differs from its new one
// carries the old key too (Symbolication.LegacySignature), so its existing issue keeps collecting it.
const legacyFrames = 3

// Symbolicate turns a fault into what the store keeps. ix may be nil when no ELF matched: the fault then gets its
// decoded causes and ferrite's signature over fault type and PC.
func Symbolicate(f *lodestone.Fault, ix *symbol.Index, elfID int64) lodestone.Symbolication {
	out := lodestone.Symbolication{FaultID: f.ID, ELFID: elfID}
	for _, c := range symbol.DecodeFault(f.CFSR, f.HFSR, f.MMFAR, f.BFAR) {
		out.Causes = append(out.Causes, lodestone.FaultCause{Name: c.Name, Register: c.Register, Text: c.Text,
			Address: c.Address, AddressValid: c.AddressValid})
	}
	if ix != nil {
		for _, sf := range ix.Backtrace(f) {
			bf := lodestone.BacktraceFrame{Address: sf.Address, Method: string(sf.Method)}
			for _, fr := range sf.Frames {
				bf.Frames = append(bf.Frames, lodestone.SourceFrame{Function: fr.Function, File: fr.File,
					Line: fr.Line, Inlined: fr.Inlined})
			}
			out.Backtrace = append(out.Backtrace, bf)
		}
		if len(out.Backtrace) > 0 && len(out.Backtrace[0].Frames) > 0 && out.Backtrace[0].Frames[0].Function != "" {
			top := out.Backtrace[0].Frames[0]
			s := symbol.Frame{Function: top.Function, File: top.File, Line: top.Line}.String()
			out.Symbol = &s
		}
	}
	out.Signature, out.Title = Signature(f.FaultType, f.Registers.PC, out.Backtrace)
	out.LegacySignature = LegacySignature(f.FaultType, f.Registers.PC, out.Backtrace)
	if out.Title == nil {
		out.Title = out.Symbol
	}
	return out
}

// Signature returns the crash group key of a fault and, when it has symbols, a title. With symbols the key is a
// hash over the fault type and the function names (inline chains included) of the faulting frame and its caller,
// so the same crash in two builds, or unwound to different depths, is one issue; without, it is ferrite's fault
// type and PC ("%02x%08x").
func Signature(faultType uint8, pc uint32, bt []lodestone.BacktraceFrame) (string, *string) {
	return signature(faultType, pc, bt, signatureFrames)
}

// LegacySignature returns the key that lodestone gave the fault before keys stopped at the caller (three frames),
// or "" when it is the same as Signature's (no third certain frame). The hash is the same over fewer names, so
// the issues of crashes unwound to two frames or fewer keep their keys unchanged.
func LegacySignature(faultType uint8, pc uint32, bt []lodestone.BacktraceFrame) string {
	old, _ := signature(faultType, pc, bt, legacyFrames)
	if cur, _ := signature(faultType, pc, bt, signatureFrames); old == cur {
		return ""
	}
	return old
}

func signature(faultType uint8, pc uint32, bt []lodestone.BacktraceFrame, frames int) (string, *string) {
	var names []string
	var title string
	n := 0
	for _, f := range bt {
		if f.Method == string(symbol.MethodScan) || n == frames {
			break
		}
		var chain []string
		for _, sf := range f.Frames {
			if sf.Function != "" {
				chain = append(chain, sf.Function)
			}
		}
		if n == 0 && len(chain) == 0 {
			break // the faulting function is unknown: nothing to name the crash by
		}
		if n == 0 {
			title = fmt.Sprintf("%s in %s", chunk.FaultTypeName(faultType), strings.Join(chain, " < "))
		}
		names = append(names, strings.Join(chain, "<"))
		n++
	}
	if len(names) == 0 {
		return fmt.Sprintf("%02x%08x", faultType, pc&^1), nil
	}
	// "v1" is kept: a key over the same names is the same key it always was.
	h := sha256.Sum256([]byte(fmt.Sprintf("v1|%d|%s", faultType, strings.Join(names, "|"))))
	return hex.EncodeToString(h[:10]), &title
}
