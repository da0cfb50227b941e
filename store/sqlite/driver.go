package sqlite

import (
	"errors"
	"net/url"

	"github.com/ncruces/go-sqlite3"
	// A pure-Go driver (SQLite translated from WebAssembly to Go): no C compiler, so a first build on an empty
	// cache takes seconds rather than minutes; see README "Design notes".
	_ "github.com/ncruces/go-sqlite3/driver"
)

// DriverName is the database/sql driver every SQLite file in lodestone is opened with.
const DriverName = "sqlite3"

const driverName = DriverName

// URI is the data source name that opens the SQLite file at path: a file: URI carrying SQLite's own URI
// parameters in params (mode=ro, …) and the driver's (_txlock), and running each PRAGMA in pragmas, written
// "name(value)", in order on every new connection. The driver sets a 1-minute busy timeout only when no PRAGMA is
// given, so a caller that gives PRAGMAs and may meet a lock names busy_timeout first.
func URI(path string, params url.Values, pragmas ...string) string {
	q := url.Values{}
	for k, v := range params {
		q[k] = v
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	u := "file:" + (&url.URL{Path: path}).EscapedPath()
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func sqliteCode(err error) (sqlite3.ErrorCode, sqlite3.ExtendedErrorCode, bool) {
	var e *sqlite3.Error
	if !errors.As(err, &e) {
		return 0, 0, false
	}
	return e.Code(), e.ExtendedCode(), true
}
