package sqlite

import (
	"io/fs"

	// The cgo driver measured fastest for our write path; see README "Design notes".
	_ "github.com/mattn/go-sqlite3"
)

const driverName = "sqlite3"

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded directory is fixed at build time
	}
	return sub
}
