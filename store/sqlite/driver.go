package sqlite

import (
	// The cgo driver measured fastest for our write path; see README "Design notes".
	_ "github.com/mattn/go-sqlite3"
)

const driverName = "sqlite3"
