package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for database/sql
	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/postgres"
)

// runPostgres fills a fresh schema through the PostgreSQL store, measures it, seals it, and measures again; it
// drops the schema at the end.
func runPostgres(ctx context.Context, c config, batches []*lodestone.DeviceBatch, cutoff int64,
	report func(string, []object)) error {
	admin, err := sql.Open("pgx", c.pgURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	var r [6]byte
	rand.Read(r[:])
	schema := "storagebench_" + hex.EncodeToString(r[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	u, err := url.Parse(c.pgURL)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	if err := fillPostgres(ctx, u.String(), batches); err != nil {
		return err
	}
	db, err := sql.Open("pgx", u.String())
	if err != nil {
		return err
	}
	defer db.Close()
	sizes := func() ([]object, error) {
		rows, err := db.QueryContext(ctx, `SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname IN ('metrics', 'metric_keys', 'metric_blocks')
			ORDER BY 1`, schema)
		if err != nil {
			return nil, fmt.Errorf("postgres sizes: %w", err)
		}
		defer rows.Close()
		var out []object
		for rows.Next() {
			var o object
			if err := rows.Scan(&o.name, &o.bytes); err != nil {
				return nil, err
			}
			out = append(out, o)
		}
		return out, rows.Err()
	}
	step := func(name, stmt string) error {
		if stmt != "" {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("postgres %s: %w", stmt, err)
			}
		}
		objs, err := sizes()
		if err != nil {
			return err
		}
		report(name, objs)
		return nil
	}
	if err := step("PostgreSQL, lodestone rows (as written)", ""); err != nil {
		return err
	}
	if err := step("PostgreSQL, lodestone rows (VACUUM FULL)", "VACUUM FULL metrics"); err != nil {
		return err
	}
	store, err := postgres.Open(ctx, u.String(), postgres.Options{})
	if err != nil {
		return err
	}
	_, err = store.SealMetrics(ctx, time.UnixMilli(cutoff))
	store.Close()
	if err != nil {
		return err
	}
	if err := step("PostgreSQL, store-sealed blocks + recent rows", ""); err != nil {
		return err
	}
	if err := step("PostgreSQL, blocks + recent rows (VACUUM)", "VACUUM metrics"); err != nil {
		return err
	}
	return step("PostgreSQL, blocks + recent rows (VACUUM FULL)", "VACUUM FULL metrics")
}
