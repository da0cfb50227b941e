//go:build ncruces

package driverbench

import _ "github.com/ncruces/go-sqlite3/driver"

const driverName, label = "sqlite3", "ncruces/go-sqlite3 (wasm2go, pure Go)"
