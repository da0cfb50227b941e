package symbol

import (
	"strings"

	"github.com/ianlancetaylor/demangle"
)

// Demangle turns an Itanium C++ or Rust (legacy and v0) symbol name into its source form, the way
// `addr2line -C` prints it ("geo::Rect::area() const", "core::panicking::panic"). Other names come back
// unchanged. Rust legacy names lose their ::h<hash> suffix, as with c++filt.
func Demangle(name string) string {
	if name == "" {
		return name
	}
	// binutils strips leading dots and dollars and a symbol version ("@...") before demangling.
	core := strings.TrimLeft(name, ".$")
	if i := strings.IndexByte(core, '@'); i > 0 {
		core = core[:i]
	}
	if !strings.HasPrefix(core, "_Z") && !strings.HasPrefix(core, "_R") {
		return name
	}
	s, err := demangle.ToString(core)
	if err != nil {
		return name
	}
	return s
}
