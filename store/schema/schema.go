// Package schema holds the migrations of both storage backends in one place, so a change to the data model is
// written for SQLite and PostgreSQL side by side, under the same version number. Migrations are plain SQL run by
// goose and embedded in the binary.
package schema

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// Dialect names a backend's SQL dialect.
type Dialect string

// The dialects lodestone stores data in.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// FS returns the migration files of one dialect.
func FS(d Dialect) (fs.FS, error) {
	switch d {
	case SQLite, Postgres:
		return fs.Sub(files, string(d))
	}
	return nil, fmt.Errorf("schema: unknown dialect %q", d)
}

// Provider returns a goose provider that migrates db, which must be a database of dialect d.
func Provider(d Dialect, db *sql.DB) (*goose.Provider, error) {
	fsys, err := FS(d)
	if err != nil {
		return nil, err
	}
	gd := goose.DialectSQLite3
	if d == Postgres {
		gd = goose.DialectPostgres
	}
	// Versions are handed out in ranges to features built side by side, so a database already at a later version
	// may lack an earlier one that merged afterwards; each migration depends only on older tables, so apply it.
	p, err := goose.NewProvider(gd, db, fsys, goose.WithAllowOutofOrder(true))
	if err != nil {
		return nil, fmt.Errorf("schema: load %s migrations: %w", d, err)
	}
	return p, nil
}

// Status is where a database stands against the migrations built into this binary.
type Status struct {
	Current int64   // newest applied version; 0 for an empty database
	Latest  int64   // newest version this binary knows
	Pending []int64 // versions not yet applied
}

// StatusOf reads the status of the database behind p.
func StatusOf(ctx context.Context, p *goose.Provider) (Status, error) {
	var st Status
	all, err := p.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("schema: read migration status: %w", err)
	}
	for _, m := range all {
		st.Latest = max(st.Latest, m.Source.Version)
		if m.State == goose.StateApplied {
			st.Current = max(st.Current, m.Source.Version)
		} else {
			st.Pending = append(st.Pending, m.Source.Version)
		}
	}
	return st, nil
}

// Rebind writes a query's ? placeholders the way dialect d numbers them: unchanged for SQLite, $1, $2, … for
// PostgreSQL. The stores that keep one SQL text for both backends (otasql, opsql) use it; their queries hold no
// literal question mark.
func Rebind(d Dialect, query string) string {
	if d != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}
