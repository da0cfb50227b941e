//go:build mattn

package driverbench

import _ "github.com/mattn/go-sqlite3"

const driverName, label = "sqlite3", "mattn/go-sqlite3 (cgo)"
