package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// PendingFaults implements lodestone.CrashService.
func (db *DB) PendingFaults(ctx context.Context, limit int) ([]*lodestone.Fault, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+faultColumns+` FROM faults x JOIN devices d ON d.id = x.device_id
		WHERE x.sym_state = 0 ORDER BY x.id LIMIT ?`, lodestone.ClampLimit(limit))
	return collect(rows, true, err, "pending fault", func(rows *sql.Rows) (*lodestone.Fault, error) {
		return scanFault(rows)
	})
}

// ClaimFaults implements lodestone.CrashService: the faults are read and claimed in one write transaction.
func (db *DB) ClaimFaults(ctx context.Context, limit int, lease time.Duration) ([]*lodestone.Fault, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin claim: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()
	rows, err := tx.QueryContext(ctx, `SELECT `+faultColumns+` FROM faults x JOIN devices d ON d.id = x.device_id
		WHERE x.sym_state = 0 AND (x.sym_claim IS NULL OR x.sym_claim <= ?) ORDER BY x.id LIMIT ?`, now,
		lodestone.ClampLimit(limit))
	faults, err := collect(rows, true, err, "pending fault", func(rows *sql.Rows) (*lodestone.Fault, error) {
		return scanFault(rows)
	})
	if err != nil || len(faults) == 0 {
		return faults, err
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE faults SET sym_claim = ? WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim faults: %w", err)
	}
	defer stmt.Close()
	for _, f := range faults {
		if _, err := stmt.ExecContext(ctx, now+lease.Milliseconds(), f.ID); err != nil {
			return nil, fmt.Errorf("sqlite: claim fault %d: %w", f.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: commit claim: %w", err)
	}
	return faults, nil
}

// FindCrashOccurrences implements lodestone.CrashService.
func (db *DB) FindCrashOccurrences(ctx context.Context, groupID int64, f lodestone.TelemetryFilter) (
	[]*lodestone.Fault, error) {
	rows, ok, err := db.query(ctx, faultColumns, "faults", "", f, "x.crash_group_id = ?", groupID)
	return collect(rows, ok, err, "fault", func(rows *sql.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
}

// SaveSymbolications implements lodestone.CrashService.
func (db *DB) SaveSymbolications(ctx context.Context, results []lodestone.Symbolication) (
	[]lodestone.CrashRegression, error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: begin symbolication: %w", err)
	}
	defer tx.Rollback()
	var regs []lodestone.CrashRegression
	var regGroups []int64
	for i := range results {
		reg, gid, err := saveSymbolication(ctx, tx, &results[i])
		if err != nil {
			return nil, fmt.Errorf("sqlite: save symbolication of fault %d: %w", results[i].FaultID, err)
		}
		if reg != nil {
			regs, regGroups = append(regs, *reg), append(regGroups, gid)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: commit symbolication: %w", err)
	}
	for i := range regs {
		if regs[i].Group, err = db.FindCrashGroupByID(ctx, regGroups[i]); err != nil {
			return nil, err
		}
	}
	return regs, nil
}

func saveSymbolication(ctx context.Context, tx *sql.Tx, r *lodestone.Symbolication) (*lodestone.CrashRegression,
	int64, error) {
	var dev, at int64
	var deviceID string
	var fw sql.NullString
	var old sql.NullInt64
	var typ uint8
	var pc uint32
	err := tx.QueryRowContext(ctx, `SELECT x.device_id, d.device_id, x.crash_group_id, x.received_at,
		x.firmware_version, x.fault_type, x.pc FROM faults x JOIN devices d ON d.id = x.device_id WHERE x.id = ?`,
		r.FaultID).Scan(&dev, &deviceID, &old, &at, &fw, &typ, &pc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil // deleted since it was read (retention, device removal): nothing to file
	} else if err != nil {
		return nil, 0, fmt.Errorf("read fault: %w", err)
	}
	bt, causes, err := encodeResults(r)
	if err != nil {
		return nil, 0, err
	}
	state, elf := lodestone.SymbolDone, sql.NullInt64{Int64: r.ELFID, Valid: r.ELFID != 0}
	if r.ELFID == 0 {
		state = lodestone.SymbolNoELF
	}
	if _, err := tx.ExecContext(ctx, `UPDATE faults SET symbol = ?, backtrace = ?, causes = ?, elf_id = ?,
		sym_state = ? WHERE id = ?`, r.Symbol, bt, causes, elf, state, r.FaultID); err != nil {
		return nil, 0, fmt.Errorf("update fault: %w", err)
	}

	// Find the group of the signature, following merges. A crash whose issue was filed under its legacy key
	// gets its key pointed there first, as a merge would.
	if r.LegacySignature != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO crash_groups (signature, pc, fault_type, title, state,
			first_seen, last_seen, merged_into) SELECT ?, ?, ?, ?, 'merged', ?, ?, id FROM crash_groups
			WHERE signature = ? ON CONFLICT (signature) DO NOTHING`, r.Signature, pc, typ, r.Title, at, at,
			r.LegacySignature); err != nil {
			return nil, 0, fmt.Errorf("lead crash signature to its legacy group: %w", err)
		}
	}
	var gid int64
	var gstate string
	var resolved sql.NullString
	var merged sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT id, state, resolved_version, merged_into FROM crash_groups
		WHERE signature = ?`, r.Signature).Scan(&gid, &gstate, &resolved, &merged)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, `INSERT INTO crash_groups (signature, pc, fault_type, title, state, first_seen,
			last_seen) VALUES (?, ?, ?, ?, 'open', ?, ?) RETURNING id, state`, r.Signature, pc, typ, r.Title, at,
			at).Scan(&gid, &gstate)
	}
	for hops := 0; err == nil && merged.Valid && hops < 16; hops++ {
		gid = merged.Int64
		err = tx.QueryRowContext(ctx, `SELECT state, resolved_version, merged_into FROM crash_groups WHERE id = ?`,
			gid).Scan(&gstate, &resolved, &merged)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("find crash group: %w", err)
	}
	if old.Valid && old.Int64 == gid {
		return nil, gid, nil // symbolicated again into the same group: counted already
	}
	if _, err := tx.ExecContext(ctx, `UPDATE faults SET crash_group_id = ? WHERE id = ?`, gid,
		r.FaultID); err != nil {
		return nil, 0, fmt.Errorf("file fault: %w", err)
	}
	if old.Valid {
		// Moved (late symbols gave it a better signature): recount both groups.
		for _, g := range []int64{old.Int64, gid} {
			if err := refreshGroup(ctx, tx, g); err != nil {
				return nil, 0, err
			}
		}
	} else if _, err := tx.ExecContext(ctx, `UPDATE crash_groups SET occurrence_count = occurrence_count + 1,
		affected_device_count = affected_device_count +
			NOT EXISTS (SELECT 1 FROM faults WHERE crash_group_id = ?1 AND device_id = ?2 AND id <> ?3),
		first_seen = min(first_seen, ?4), last_seen = max(last_seen, ?4) WHERE id = ?1`,
		gid, dev, r.FaultID, at); err != nil {
		return nil, 0, fmt.Errorf("count crash: %w", err)
	}
	if lodestone.CrashState(gstate) != lodestone.CrashResolved ||
		lodestone.CompareVersions(fw.String, resolved.String) <= 0 {
		return nil, gid, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE crash_groups SET state = 'open', regression = 1 WHERE id = ?`,
		gid); err != nil {
		return nil, 0, fmt.Errorf("re-open crash group: %w", err)
	}
	return &lodestone.CrashRegression{FaultID: r.FaultID, DeviceID: deviceID, FirmwareVersion: fw.String}, gid, nil
}

func encodeResults(r *lodestone.Symbolication) (bt, causes []byte, err error) {
	if bt, err = json.Marshal(r.Backtrace); err != nil {
		return nil, nil, fmt.Errorf("encode backtrace: %w", err)
	}
	if causes, err = json.Marshal(r.Causes); err != nil {
		return nil, nil, fmt.Errorf("encode causes: %w", err)
	}
	return bt, causes, nil
}

// refreshGroup recounts a group from its faults.
func refreshGroup(ctx context.Context, tx *sql.Tx, id int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE crash_groups SET
		(occurrence_count, affected_device_count, first_seen, last_seen) =
		(SELECT count(*), count(DISTINCT f.device_id), coalesce(min(f.received_at), crash_groups.first_seen),
			coalesce(max(f.received_at), crash_groups.last_seen) FROM faults f WHERE f.crash_group_id = ?1)
		WHERE id = ?1`, id)
	if err != nil {
		return fmt.Errorf("recount crash group %d: %w", id, err)
	}
	return nil
}

const groupColumns = `id, signature, pc, fault_type, title, state, first_seen, last_seen, occurrence_count,
	affected_device_count, regression, resolved_version, merged_into`

func scanGroup(s scanner) (*lodestone.CrashGroup, error) {
	var g lodestone.CrashGroup
	var title, resolved sql.NullString
	var merged sql.NullInt64
	var first, last int64
	if err := s.Scan(&g.ID, &g.Signature, &g.PC, &g.FaultType, &title, &g.State, &first, &last, &g.Occurrences,
		&g.AffectedDevices, &g.Regression, &resolved, &merged); err != nil {
		return nil, err
	}
	g.Title, g.ResolvedVersion = nullString(title), resolved.String
	g.FirstSeen, g.LastSeen = fromMS(first), fromMS(last)
	if merged.Valid {
		g.MergedInto = &merged.Int64
	}
	return &g, nil
}

// FindCrashGroups implements lodestone.CrashService.
func (db *DB) FindCrashGroups(ctx context.Context, f lodestone.CrashFilter) ([]*lodestone.CrashGroup, int, error) {
	cond, args := `state <> 'merged' AND occurrence_count > 0`, []any{}
	if f.State != "" {
		cond, args = `state = ?`, []any{string(f.State)}
	}
	var total int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM crash_groups WHERE `+cond, args...).
		Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("sqlite: count crash groups: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+groupColumns+` FROM crash_groups WHERE `+cond+`
		ORDER BY occurrence_count DESC, id LIMIT ? OFFSET ?`,
		append(args, lodestone.ClampLimit(f.Limit), max(f.Offset, 0))...)
	groups, err := collect(rows, true, err, "crash group", func(rows *sql.Rows) (*lodestone.CrashGroup, error) {
		return scanGroup(rows)
	})
	if err != nil {
		return nil, 0, err
	}
	return groups, total, db.groupVersions(ctx, groups)
}

// groupVersions fills in the firmware versions of the groups' faults.
func (db *DB) groupVersions(ctx context.Context, groups []*lodestone.CrashGroup) error {
	if len(groups) == 0 {
		return nil
	}
	byID := make(map[int64]*lodestone.CrashGroup, len(groups))
	args := make([]any, len(groups))
	for i, g := range groups {
		byID[g.ID], args[i] = g, g.ID
		g.FirmwareVersions = []string{}
	}
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT crash_group_id, firmware_version FROM faults
		WHERE crash_group_id IN (?`+strings.Repeat(",?", len(groups)-1)+`) AND firmware_version <> ''
		ORDER BY 1, 2`, args...)
	if err != nil {
		return fmt.Errorf("sqlite: read crash group firmware: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("sqlite: scan crash group firmware: %w", err)
		}
		byID[id].FirmwareVersions = append(byID[id].FirmwareVersions, v)
	}
	return rows.Err()
}

// FindCrashGroupByID implements lodestone.CrashService.
func (db *DB) FindCrashGroupByID(ctx context.Context, id int64) (*lodestone.CrashGroup, error) {
	g, err := scanGroup(db.r.QueryRowContext(ctx, `SELECT `+groupColumns+` FROM crash_groups WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "crash group not found")
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: read crash group %d: %w", id, err)
	}
	return g, db.groupVersions(ctx, []*lodestone.CrashGroup{g})
}

// SetCrashGroupState implements lodestone.CrashService.
func (db *DB) SetCrashGroupState(ctx context.Context, id int64, state lodestone.CrashState) (
	*lodestone.CrashGroup, error) {
	switch state {
	case lodestone.CrashOpen, lodestone.CrashResolved, lodestone.CrashMuted:
	default:
		return nil, lodestone.Errorf(lodestone.EINVALID, "state must be open, resolved or muted, got %q", state)
	}
	if err := db.audited(ctx, "crash_issue set_state", "crash_issue.set_state", lodestone.AuditCrashIssue, fmt.Sprint(id), func(tx *sql.Tx) (string, error) {
		if _, err := lockGroup(ctx, tx, id); err != nil {
			return "", err
		}
		var resolved sql.NullString
		if state == lodestone.CrashResolved {
			v, err := newestVersion(ctx, tx, id)
			if err != nil {
				return "", err
			}
			resolved = sql.NullString{String: v, Valid: true}
		}
		_, err := tx.ExecContext(ctx, `UPDATE crash_groups SET state = ?, regression = 0, resolved_version = ?
			WHERE id = ?`, string(state), resolved, id)
		return "", err
	}); err != nil {
		return nil, err
	}
	return db.FindCrashGroupByID(ctx, id)
}

// lockGroup reads a group's state for a change, refusing merged groups.
func lockGroup(ctx context.Context, tx *sql.Tx, id int64) (lodestone.CrashState, error) {
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM crash_groups WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", lodestone.Errorf(lodestone.ENOTFOUND, "crash group %d not found", id)
	} else if err != nil {
		return "", fmt.Errorf("read crash group %d: %w", id, err)
	}
	if lodestone.CrashState(state) == lodestone.CrashMerged {
		return "", lodestone.Errorf(lodestone.ECONFLICT, "crash group %d was merged into another", id)
	}
	return lodestone.CrashState(state), nil
}

func newestVersion(ctx context.Context, tx *sql.Tx, id int64) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT firmware_version FROM faults
		WHERE crash_group_id = ? AND firmware_version <> ''`, id)
	if err != nil {
		return "", fmt.Errorf("read crash group firmware: %w", err)
	}
	defer rows.Close()
	newest := ""
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return "", err
		}
		if lodestone.CompareVersions(v, newest) > 0 {
			newest = v
		}
	}
	return newest, rows.Err()
}

// MergeCrashGroups implements lodestone.CrashService.
func (db *DB) MergeCrashGroups(ctx context.Context, from, into int64) (*lodestone.CrashGroup, error) {
	if from == into {
		return nil, lodestone.Errorf(lodestone.EINVALID, "cannot merge crash group %d into itself", from)
	}
	if err := db.audited(ctx, "crash_issue merge", "crash_issue.merge", lodestone.AuditCrashIssue, fmt.Sprint(from), func(tx *sql.Tx) (string, error) {
		for _, id := range []int64{from, into} {
			if _, err := lockGroup(ctx, tx, id); err != nil {
				return "", err
			}
		}
		for _, q := range []string{
			`UPDATE faults SET crash_group_id = ?2 WHERE crash_group_id = ?1`,
			`UPDATE crash_groups SET merged_into = ?2 WHERE merged_into = ?1`,
			`UPDATE crash_groups SET state = 'merged', merged_into = ?2, occurrence_count = 0,
				affected_device_count = 0 WHERE id = ?1`,
		} {
			if _, err := tx.ExecContext(ctx, q, from, into); err != nil {
				return "", fmt.Errorf("merge crash groups: %w", err)
			}
		}
		return "", refreshGroup(ctx, tx, into)
	}); err != nil {
		return nil, err
	}
	return db.FindCrashGroupByID(ctx, into)
}

// inWriteTx runs fn in a write transaction on the writer connection.
func (db *DB) inWriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		if lodestone.ErrorCode(err) == lodestone.EINTERNAL {
			return fmt.Errorf("sqlite: %w", err)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}
