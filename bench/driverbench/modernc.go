//go:build modernc

package driverbench

import _ "modernc.org/sqlite"

const driverName, label = "sqlite", "modernc.org/sqlite (pure Go)"
