package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
	"github.com/lodestone-fleet/lodestone/store/schema"
	"github.com/lodestone-fleet/lodestone/store/sqlite"
)

// dbSpec is a parsed --db value: a SQLite file or a PostgreSQL URL.
type dbSpec struct {
	dialect schema.Dialect
	target  string // the file path or the postgres:// URL
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

func parseDB(s string) (dbSpec, error) {
	switch {
	case isPostgresURL(s):
		return dbSpec{schema.Postgres, s}, nil
	case strings.HasPrefix(s, "sqlite://"):
		s = strings.TrimPrefix(s, "sqlite://")
	case strings.Contains(s, "://"):
		return dbSpec{}, fmt.Errorf("--db %q: want a SQLite file, sqlite://path or postgres://user@host:5432/db",
			redactURL(s))
	}
	if s == "" {
		return dbSpec{}, fmt.Errorf("--db: empty SQLite path")
	}
	return dbSpec{schema.SQLite, s}, nil
}

// String names the database for logs, without a password.
func (d dbSpec) String() string {
	if d.dialect == schema.Postgres {
		return redactURL(d.target)
	}
	return d.target
}

// redactURL hides the password of a URL's userinfo.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return s
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return s
}

// openedStore is the store serve runs on, with the concrete backend kept for what only it offers.
type openedStore struct {
	lodestone.Store
	spec dbSpec
	pg   *postgres.DB // set for PostgreSQL: the event bus and leadership share its database
}

// openStore opens and migrates the database that spec names.
func openStore(ctx context.Context, spec dbSpec, sqliteSync string) (*openedStore, error) {
	switch spec.dialect {
	case schema.Postgres:
		db, err := postgres.Open(ctx, spec.target, postgres.Options{MaxConns: pgConns, SealAfter: postgres.DefaultSealAfter})
		if err != nil {
			return nil, err
		}
		return &openedStore{Store: db, spec: spec, pg: db}, nil
	default:
		db, err := sqlite.Open(ctx, spec.target, sqlite.Options{Synchronous: sqliteSync, SealAfter: sqlite.DefaultSealAfter})
		if err != nil {
			return nil, err
		}
		return &openedStore{Store: db, spec: spec}, nil
	}
}

// pgConns bounds each replica's PostgreSQL connections: the committers, the readers, the event listener and the
// leadership lock.
const pgConns = 16

// committers is how many group commits may be in flight at once: one for SQLite's single writer; two for
// PostgreSQL, so that one group fills while the other waits on the network and the server's fsync. More made
// smaller groups and measured slower (bench/scale.sh, 1 and 3 replicas), since replicas' commits add up; for the
// same reason a replica that is one of several drops to one (see followReplicas).
func (s *openedStore) committers() int {
	if s.pg != nil {
		return 2
	}
	return 1
}

// Ping lets /readyz check the database (httpapi.Deps.Devices is this store).
func (s *openedStore) Ping(ctx context.Context) error {
	if p, ok := s.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}
