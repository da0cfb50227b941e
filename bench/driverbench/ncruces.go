//go:build ncruces

package driverbench

import (
	_ "github.com/ncruces/go-sqlite3/driver"
	_ "github.com/ncruces/go-sqlite3/embed"
)

const driverName, label = "sqlite3", "ncruces/go-sqlite3 (wasm)"
