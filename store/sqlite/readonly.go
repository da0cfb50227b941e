package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lodestone-fleet/lodestone/internal/lru"
	"github.com/lodestone-fleet/lodestone/store/auditsql"
	"github.com/lodestone-fleet/lodestone/store/opsql"
	"github.com/lodestone-fleet/lodestone/store/otasql"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// OpenReadOnly opens an existing database for reading only, beside a server that may be writing it: no
// migration, no writer, no checkpoints, and every connection query-only. It refuses a file whose schema is not
// the one this build knows, since the queries would not match it.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err) // never create an empty database by reading
	}
	r, err := sql.Open(driverName, dsn(path, "FULL", true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	p, err := schema.Provider(schema.SQLite, r)
	if err != nil {
		r.Close()
		return nil, err
	}
	st, err := schema.StatusOf(ctx, p)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sqlite: read schema version of %s: %w", path, err)
	}
	if st.Current != st.Latest {
		r.Close()
		return nil, fmt.Errorf("sqlite: %s is at schema version %d, this lodestone reads version %d; start the "+
			"server or run 'lodestone migrate up' once", path, st.Current, st.Latest)
	}
	db := &DB{path: path, r: r, rq: &readStmts{db: r}, keys: lru.New[string, int64](KeyCacheSize), now: time.Now,
		log: slog.Default()}
	db.Store = otasql.NewSQLite(nil, r, &db.wmu)
	db.Ops = opsql.NewSQLite(nil, r, &db.wmu) // counts and alert history read; a write would fail on the nil writer
	db.Log = auditsql.NewSQLite(nil, r, &db.wmu)
	return db, nil
}
