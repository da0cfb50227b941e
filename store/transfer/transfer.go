// Package transfer moves a whole lodestone instance from the embedded SQLite database to PostgreSQL: every table,
// ids kept, in one destination transaction, and checked by counting rows on both sides afterwards. Blobs are moved
// by CopyBlobs. Both schemas are the same data model (store/schema), so rows move column for column.
package transfer

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Table is one table that a copy moves. Key is the column rows are paged by, in order, or several ("a, b"), the
// first columns of Cols.
type Table struct {
	Name string
	Key  string
	Cols []string
}

// derived are the tables kept by triggers on the tables before them (migration 00150), which fill them in the
// destination too as those are copied; the copy empties a derived table before copying it, so it ends up holding
// exactly the source's rows.
var derived = map[string]bool{"stability_hours": true, "stability_reboots": true, "device_events": true}

// pageQuery reads the page after a key (nil for the first page); ph writes the n-th placeholder.
func (t Table) pageQuery(after []any, ph func(n int) string) (string, []any) {
	q := `SELECT ` + strings.Join(t.Cols, ", ") + ` FROM ` + t.Name
	if after != nil {
		marks := make([]string, len(after))
		for i := range after {
			marks[i] = ph(i + 1)
		}
		q += ` WHERE (` + t.Key + `) > (` + strings.Join(marks, ", ") + `)`
	}
	return q + ` ORDER BY ` + t.Key + ` LIMIT ` + ph(len(after)+1), append(after, pageSize)
}

// keyOf is the key of a row read by pageQuery.
func (t Table) keyOf(row []any) []any {
	return slices.Clone(row[:strings.Count(t.Key, ",")+1])
}

// Tables lists every table of the data model, parents before children so foreign keys hold at every step. A test
// compares it with both schemas, so a migration that adds a table or a column fails until it is listed here.
var Tables = []Table{
	{"devices", "id", []string{"id", "device_id", "firmware_version", "build_id", "status", "first_seen", "last_seen",
		"device_key", "name", "tags", "provisioned_by", "provisioned_at"}},
	{"device_groups", "id", []string{"id", "name", "description", "created_at"}},
	{"device_group_members", "id", []string{"id", "group_id", "device_id", "added_at"}},
	{"device_tags", "id", []string{"id", "device_id", "tag"}},
	{"metric_keys", "id", []string{"id", "name"}},
	{"metrics", "id", []string{"id", "device_id", "key_id", "type", "value", "max", "raw", "ticks", "received_at"}},
	{"metric_blocks", "id", []string{"id", "device_id", "key_id", "t_min", "t_max", "n", "data"}},
	{"faults", "id", []string{"id", "device_id", "fault_type", "r0", "r1", "r2", "r3", "r12", "lr", "pc", "xpsr", "r4",
		"r5", "r6", "r7", "r8", "r9", "r10", "r11", "sp", "stack", "cfsr", "hfsr", "mmfar", "bfar", "symbol",
		"crash_group_id", "received_at", "firmware_version", "build_id", "sym_state", "elf_id", "backtrace", "causes", "sym_claim"}},
	{"reboots", "id", []string{"id", "device_id", "reason", "extra", "boot_sequence", "uptime_before_reboot",
		"received_at"}},
	{"heartbeats", "id", []string{"id", "device_id", "uptime_ticks", "free_stack", "metrics_count", "frames_lost",
		"device_key", "received_at"}},
	{"trace_fragments", "id", []string{"id", "device_id", "byte_offset", "data", "received_at"}},
	{"traces", "id", []string{"id", "device_id", "data", "received_at"}},
	{"ota_requests", "id", []string{"id", "device_id", "build_id", "max_chunk_size", "ota_capable", "received_at"}},
	{"settings", "key", []string{"key", "value"}},
	{"elfs", "id", []string{"id", "version", "build_id", "build_id64", "sha256", "size", "filename", "created_at"}},
	{"crash_groups", "id", []string{"id", "signature", "pc", "fault_type", "title", "state", "first_seen", "last_seen",
		"occurrence_count", "affected_device_count", "regression", "resolved_version", "merged_into"}},
	{"users", "id", []string{"id", "name", "role", "password_hash", "created_at", "updated_at", "disabled_at"}},
	{"tokens", "id", []string{"id", "kind", "name", "role", "device_id", "hint", "hash", "created_by", "created_at",
		"last_used_at", "revoked_at"}},
	{"firmware_artifacts", "id", []string{"id", "version", "build_id", "sha256", "size", "filename", "signer", "notes",
		"created_at", "origin", "fuota_path", "approved_at", "approved_by"}},
	{"ota_campaigns", "id", []string{"id", "name", "firmware_id", "target_version", "strategy", "target_group_id",
		"target_tags", "rollout_percent", "failure_threshold", "waves", "soak_ms", "health_ratio", "min_device_hours",
		"offer_timeout_ms", "install_timeout_ms", "status", "wave", "wave_started_at", "started_at", "halt_reason",
		"created_at", "updated_at"}},
	{"ota_targets", "id", []string{"id", "device_id", "target_version", "target_build_id", "firmware_url",
		"firmware_id", "from_version", "campaign_id", "created_at", "origin"}},
	{"ota_campaign_devices", "id", []string{"id", "campaign_id", "device_id", "status", "wave", "reason",
		"offered_at", "installed_at", "updated_at", "had_prev", "prev_target_version", "prev_target_build_id",
		"prev_firmware_url", "prev_firmware_id", "prev_from_version", "prev_campaign_id", "prev_origin"}},
	{"log_sources", "id", []string{"id", "project", "device_id"}},
	{"logs", "id", []string{"id", "source_id", "time_ns", "observed_ns", "severity", "severity_text", "body",
		"attributes", "trace_id", "span_id", "event_name", "flags", "received_at"}},
	{"crash_uploads", "id", []string{"id", "project", "install_id", "platform", "version", "kind", "crash_time",
		"metadata", "dump_sha256", "dump_size", "dump_encoding", "dedup", "token_id", "received_at"}},
	{"crash_attachments", "id", []string{"id", "upload_id", "key", "content_type", "sha256", "size",
		"content_encoding", "dedup"}},
	{"otlp_tokens", "id", []string{"id", "name", "project", "source_prefix", "hint", "hash", "created_by",
		"created_at", "revoked_at"}},
	{"alert_deliveries", "id", []string{"id", "kind", "device_id", "url", "body", "dedup_key", "status", "attempts",
		"last_status", "last_error", "created_at", "next_attempt", "claimed_until", "delivered_at"}},
	{"alert_watch", "device_id", []string{"device_id", "offline_at"}},
	{"alert_rules", "id", []string{"id", "name", "condition", "scope_type", "scope_value", "threshold", "window_ms",
		"for_ms", "quiet_ms", "webhooks", "enabled", "origin", "created_at", "updated_at"}},
	{"alert_states", "id", []string{"id", "rule_id", "key", "status", "since", "last_event", "events", "fired_at",
		"resolved_at", "value", "summary"}},
	{"audit_log", "id", []string{"id", "time", "actor_kind", "actor", "actor_id", "action", "target_kind", "target",
		"before_json", "after_json", "client_addr", "request_id", "via", "prev_hash", "hash"}},
	{"audit_head", "id", []string{"id", "last_id", "last_hash"}},
	{"ddi_actions", "id", []string{"id", "device_id", "target_id", "target_created_at", "firmware_id", "campaign_id",
		"version", "status", "result", "execution", "detail", "retrieved_at", "created_at", "updated_at"}},
	{"blob_hashes", "sha256", []string{"sha256", "md5", "sha1", "kind"}},
	{"device_attributes", "id", []string{"id", "device_id", "name", "value", "updated_at"}},
	{"stability_hours", "hour, device_id, version", []string{"hour", "device_id", "version", "observed_ms", "faults",
		"reboots"}},
	{"stability_reboots", "hour, device_id, version, reason", []string{"hour", "device_id", "version", "reason", "n"}},
	{"device_events", "id", []string{"id", "device_id", "kind", "at", "from_value", "to_value", "detail"}},
}

// Progress is reported as rows move.
type Progress struct {
	Table       string
	Rows, Total int64 // rows copied so far over all tables, and rows to copy
}

// Count is one table's rows on both sides after a copy.
type Count struct {
	Table       string
	Source      int64
	Destination int64
}

// pageSize rows are read and sent per step, so memory stays flat however large the instance.
const pageSize = 5000

// Copy moves every row of src (a SQLite database at the newest schema) into dst (a PostgreSQL database at the
// newest schema, with no rows). It reads one consistent snapshot of src and writes in one transaction, so a
// failed copy leaves dst empty. It returns the row counts of both sides, which must agree.
func Copy(ctx context.Context, src *sql.DB, dst *pgxpool.Pool, progress func(Progress)) ([]Count, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	for _, t := range Tables {
		var any bool
		if err := dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.Name+`)`).Scan(&any); err != nil {
			return nil, fmt.Errorf("transfer: inspect destination table %s: %w", t.Name, err)
		}
		if any {
			return nil, fmt.Errorf("transfer: the destination already holds data (table %s is not empty); copy "+
				"into a new, empty database", t.Name)
		}
	}

	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("transfer: open a snapshot of the source: %w", err)
	}
	defer stx.Rollback()
	counts := make([]Count, len(Tables))
	var total int64
	for i, t := range Tables {
		counts[i].Table = t.Name
		if err := stx.QueryRowContext(ctx, `SELECT count(*) FROM `+t.Name).Scan(&counts[i].Source); err != nil {
			return nil, fmt.Errorf("transfer: count source table %s: %w", t.Name, err)
		}
		total += counts[i].Source
	}

	dtx, err := dst.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("transfer: begin destination transaction: %w", err)
	}
	defer dtx.Rollback(context.WithoutCancel(ctx))
	var done int64
	progress(Progress{Rows: 0, Total: total})
	for _, t := range Tables {
		n, err := copyTable(ctx, stx, dtx, t, func(n int64) { progress(Progress{Table: t.Name, Rows: done + n, Total: total}) })
		if err != nil {
			return nil, err
		}
		done += n
		if t.Key == "id" {
			// Rows kept their ids; new rows must be numbered after them.
			if _, err := dtx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+t.Name+`', 'id'), max(id))
				FROM `+t.Name+` HAVING max(id) IS NOT NULL`); err != nil {
				return nil, fmt.Errorf("transfer: advance the id sequence of %s: %w", t.Name, err)
			}
			// SQLite keeps the largest id retention deleted from the top of a table as "<table>.id_floor" in
			// settings (copied before this table), so that no id is handed out twice; PostgreSQL's sequence
			// starts after it too.
			if _, err := dtx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('`+t.Name+`', 'id'), floor_id)
				FROM (SELECT CAST(value AS bigint) AS floor_id FROM settings WHERE key = $1) f
				WHERE floor_id > (SELECT coalesce(max(id), 0) FROM `+t.Name+`)`, t.Name+".id_floor"); err != nil {
				return nil, fmt.Errorf("transfer: advance the id sequence of %s past its floor: %w", t.Name, err)
			}
		}
	}
	if err := dtx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("transfer: commit: %w", err)
	}

	var bad []string
	for i, t := range Tables {
		if err := dst.QueryRow(ctx, `SELECT count(*) FROM `+t.Name).Scan(&counts[i].Destination); err != nil {
			return counts, fmt.Errorf("transfer: count destination table %s: %w", t.Name, err)
		}
		if counts[i].Destination != counts[i].Source {
			bad = append(bad, fmt.Sprintf("%s: %d rows in the source, %d in the destination", t.Name,
				counts[i].Source, counts[i].Destination))
		}
	}
	if len(bad) > 0 {
		return counts, fmt.Errorf("transfer: counts differ after the copy: %s", strings.Join(bad, "; "))
	}
	return counts, nil
}

// copyTable pages through one table by its key and streams each page into the destination with COPY.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, t Table, progress func(int64)) (int64, error) {
	var copied int64
	var after []any
	if derived[t.Name] {
		if _, err := dst.Exec(ctx, `DELETE FROM `+t.Name); err != nil {
			return 0, fmt.Errorf("transfer: empty derived table %s: %w", t.Name, err)
		}
	}
	for {
		q, args := t.pageQuery(after, func(int) string { return "?" })
		rows, err := src.QueryContext(ctx, q, args...)
		if err != nil {
			return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
		}
		var page [][]any
		for rows.Next() {
			vals := make([]any, len(t.Cols))
			ptrs := make([]any, len(t.Cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
			}
			page = append(page, vals)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return copied, fmt.Errorf("transfer: read %s: %w", t.Name, err)
		}
		if len(page) == 0 {
			return copied, nil
		}
		if _, err := dst.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Cols, pgx.CopyFromRows(page)); err != nil {
			return copied, fmt.Errorf("transfer: write %s: %w", t.Name, err)
		}
		copied += int64(len(page))
		progress(copied)
		after = t.keyOf(page[len(page)-1])
		if len(page) < pageSize {
			return copied, nil
		}
	}
}
