package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// PendingFaults implements lodestone.CrashService.
func (db *DB) PendingFaults(ctx context.Context, limit int) ([]*lodestone.Fault, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+faultColumns+` FROM faults x JOIN devices d ON d.id = x.device_id
		WHERE x.sym_state = 0 ORDER BY x.id LIMIT $1`, lodestone.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: read pending faults: %w", err)
	}
	return collect(rows, "pending fault", func(rows pgx.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
}

// ClaimFaults implements lodestone.CrashService. Claims are timed by the database's clock, which every replica
// shares; SKIP LOCKED lets concurrent claimers pass each other's rows instead of waiting for them.
func (db *DB) ClaimFaults(ctx context.Context, limit int, lease time.Duration) ([]*lodestone.Fault, error) {
	rows, err := db.pool.Query(ctx, `WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8 AS ms),
		x AS (UPDATE faults SET sym_claim = (SELECT ms FROM now) + $1 WHERE id IN (
			SELECT id FROM faults WHERE sym_state = 0 AND (sym_claim IS NULL OR sym_claim <= (SELECT ms FROM now))
			ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING *)
		SELECT `+faultColumns+` FROM x JOIN devices d ON d.id = x.device_id ORDER BY x.id`,
		lease.Milliseconds(), lodestone.ClampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: claim pending faults: %w", err)
	}
	return collect(rows, "pending fault", func(rows pgx.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
}

// FindCrashOccurrences implements lodestone.CrashService.
func (db *DB) FindCrashOccurrences(ctx context.Context, groupID int64, f lodestone.TelemetryFilter) (
	[]*lodestone.Fault, error) {
	rows, err := db.query(ctx, faultColumns, "faults", "", f, func(a *args) string {
		return "x.crash_group_id = " + a.add(groupID)
	})
	if err != nil {
		return nil, err
	}
	return collect(rows, "fault", func(rows pgx.Rows) (*lodestone.Fault, error) { return scanFault(rows) })
}

// SaveSymbolications implements lodestone.CrashService. Replicas may symbolicate the same fault at once: the
// fault row is locked first, so the second one finds it filed already and changes no count.
func (db *DB) SaveSymbolications(ctx context.Context, results []lodestone.Symbolication) (
	[]lodestone.CrashRegression, error) {
	var regs []lodestone.CrashRegression
	var regGroups []int64
	// Faults are locked in id order, as DeleteDevice locks a device's: two transactions that lock several of
	// them in different orders deadlock.
	order := make([]int, len(results))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(results[a].FaultID, results[b].FaultID) })
	err := db.inTx(ctx, "save symbolications", func(tx pgx.Tx) error {
		regs, regGroups = regs[:0], regGroups[:0]
		for _, i := range order {
			reg, gid, err := saveSymbolication(ctx, tx, &results[i])
			if err != nil {
				return fmt.Errorf("fault %d: %w", results[i].FaultID, err)
			}
			if reg != nil {
				regs, regGroups = append(regs, *reg), append(regGroups, gid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range regs {
		if regs[i].Group, err = db.FindCrashGroupByID(ctx, regGroups[i]); err != nil {
			return nil, err
		}
	}
	return regs, nil
}

func saveSymbolication(ctx context.Context, tx pgx.Tx, r *lodestone.Symbolication) (*lodestone.CrashRegression,
	int64, error) {
	var dev, at, pc int64
	var deviceID string
	var fw *string
	var old *int64
	var typ int16
	err := tx.QueryRow(ctx, `SELECT x.device_id, d.device_id, x.crash_group_id, x.received_at,
		x.firmware_version, x.fault_type, x.pc FROM faults x JOIN devices d ON d.id = x.device_id WHERE x.id = $1
		FOR UPDATE OF x`, r.FaultID).Scan(&dev, &deviceID, &old, &at, &fw, &typ, &pc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil // deleted since it was read (retention, device removal): nothing to file
	} else if err != nil {
		return nil, 0, fmt.Errorf("read fault: %w", err)
	}
	bt, err := json.Marshal(r.Backtrace)
	if err != nil {
		return nil, 0, fmt.Errorf("encode backtrace: %w", err)
	}
	causes, err := json.Marshal(r.Causes)
	if err != nil {
		return nil, 0, fmt.Errorf("encode causes: %w", err)
	}
	state := lodestone.SymbolDone
	var elf *int64
	if r.ELFID != 0 {
		elf = &r.ELFID
	} else {
		state = lodestone.SymbolNoELF
	}
	if _, err := tx.Exec(ctx, `UPDATE faults SET symbol = $1, backtrace = $2, causes = $3, elf_id = $4,
		sym_state = $5 WHERE id = $6`, r.Symbol, string(bt), string(causes), elf, int16(state),
		r.FaultID); err != nil {
		return nil, 0, fmt.Errorf("update fault: %w", err)
	}

	// Find the group of the signature (creating it; a replica racing us creates it once), following merges. A
	// crash whose issue was filed under its legacy key gets its key pointed there first, as a merge would.
	if r.LegacySignature != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO crash_groups (signature, pc, fault_type, title, state, first_seen,
			last_seen, merged_into) SELECT $1, $2, $3, $4, 'merged', $5, $5, id FROM crash_groups
			WHERE signature = $6 ON CONFLICT (signature) DO NOTHING`, r.Signature, pc, typ, r.Title, at,
			r.LegacySignature); err != nil {
			return nil, 0, fmt.Errorf("lead crash signature to its legacy group: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO crash_groups (signature, pc, fault_type, title, state, first_seen,
		last_seen) VALUES ($1, $2, $3, $4, 'open', $5, $5) ON CONFLICT (signature) DO NOTHING`, r.Signature, pc, typ,
		r.Title, at); err != nil {
		return nil, 0, fmt.Errorf("create crash group: %w", err)
	}
	var gid int64
	var gstate string
	var resolved *string
	var merged *int64
	err = tx.QueryRow(ctx, `SELECT id, state, resolved_version, merged_into FROM crash_groups
		WHERE signature = $1 FOR UPDATE`, r.Signature).Scan(&gid, &gstate, &resolved, &merged)
	for hops := 0; err == nil && merged != nil && hops < 16; hops++ {
		gid = *merged
		err = tx.QueryRow(ctx, `SELECT state, resolved_version, merged_into FROM crash_groups WHERE id = $1
			FOR UPDATE`, gid).Scan(&gstate, &resolved, &merged)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("find crash group: %w", err)
	}
	if old != nil && *old == gid {
		return nil, gid, nil // symbolicated again into the same group: counted already
	}
	if _, err := tx.Exec(ctx, `UPDATE faults SET crash_group_id = $1 WHERE id = $2`, gid, r.FaultID); err != nil {
		return nil, 0, fmt.Errorf("file fault: %w", err)
	}
	if old != nil {
		// Moved (late symbols gave it a better signature): recount both groups.
		for _, g := range []int64{*old, gid} {
			if err := refreshGroup(ctx, tx, g); err != nil {
				return nil, 0, err
			}
		}
	} else if _, err := tx.Exec(ctx, `UPDATE crash_groups SET occurrence_count = occurrence_count + 1,
		affected_device_count = affected_device_count + CASE WHEN EXISTS (SELECT 1 FROM faults
			WHERE crash_group_id = $1 AND device_id = $2 AND id <> $3) THEN 0 ELSE 1 END,
		first_seen = LEAST(first_seen, $4), last_seen = GREATEST(last_seen, $4) WHERE id = $1`,
		gid, dev, r.FaultID, at); err != nil {
		return nil, 0, fmt.Errorf("count crash: %w", err)
	}
	version, resolvedVersion := deref(fw), deref(resolved)
	if lodestone.CrashState(gstate) != lodestone.CrashResolved ||
		lodestone.CompareVersions(version, resolvedVersion) <= 0 {
		return nil, gid, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE crash_groups SET state = 'open', regression = 1 WHERE id = $1`,
		gid); err != nil {
		return nil, 0, fmt.Errorf("re-open crash group: %w", err)
	}
	return &lodestone.CrashRegression{FaultID: r.FaultID, DeviceID: deviceID, FirmwareVersion: version}, gid, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// refreshGroup recounts a group from its faults.
func refreshGroup(ctx context.Context, tx pgx.Tx, id int64) error {
	_, err := tx.Exec(ctx, `UPDATE crash_groups g SET
		(occurrence_count, affected_device_count, first_seen, last_seen) =
		(SELECT count(*), count(DISTINCT f.device_id), coalesce(min(f.received_at), g.first_seen),
			coalesce(max(f.received_at), g.last_seen) FROM faults f WHERE f.crash_group_id = $1)
		WHERE g.id = $1`, id)
	if err != nil {
		return fmt.Errorf("recount crash group %d: %w", id, err)
	}
	return nil
}

const groupColumns = `id, signature, pc, fault_type, title, state, first_seen, last_seen, occurrence_count,
	affected_device_count, regression, resolved_version, merged_into`

func scanGroup(s pgx.Row) (*lodestone.CrashGroup, error) {
	var g lodestone.CrashGroup
	var resolved *string
	var pc, first, last int64
	var typ, regression int16
	var state string
	if err := s.Scan(&g.ID, &g.Signature, &pc, &typ, &g.Title, &state, &first, &last, &g.Occurrences,
		&g.AffectedDevices, &regression, &resolved, &g.MergedInto); err != nil {
		return nil, err
	}
	g.PC, g.FaultType, g.State, g.Regression = uint32(pc), uint8(typ), lodestone.CrashState(state), regression != 0
	g.ResolvedVersion = deref(resolved)
	g.FirstSeen, g.LastSeen = fromMS(first), fromMS(last)
	return &g, nil
}

// FindCrashGroups implements lodestone.CrashService.
func (db *DB) FindCrashGroups(ctx context.Context, f lodestone.CrashFilter) ([]*lodestone.CrashGroup, int, error) {
	var a args
	cond := `state <> 'merged' AND occurrence_count > 0`
	if f.State != "" {
		cond = `state = ` + a.add(string(f.State))
	}
	var total int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM crash_groups WHERE `+cond, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("postgres: count crash groups: %w", err)
	}
	rows, err := db.pool.Query(ctx, `SELECT `+groupColumns+` FROM crash_groups WHERE `+cond+`
		ORDER BY occurrence_count DESC, id LIMIT `+a.add(lodestone.ClampLimit(f.Limit))+` OFFSET `+
		a.add(max(f.Offset, 0)), a...)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list crash groups: %w", err)
	}
	groups, err := collect(rows, "crash group", func(rows pgx.Rows) (*lodestone.CrashGroup, error) {
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
	ids := make([]int64, len(groups))
	for i, g := range groups {
		byID[g.ID], ids[i] = g, g.ID
		g.FirmwareVersions = []string{}
	}
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT crash_group_id, firmware_version FROM faults
		WHERE crash_group_id = ANY($1::int8[]) AND firmware_version <> '' ORDER BY 1, 2`, ids)
	if err != nil {
		return fmt.Errorf("postgres: read crash group firmware: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			return fmt.Errorf("postgres: scan crash group firmware: %w", err)
		}
		byID[id].FirmwareVersions = append(byID[id].FirmwareVersions, v)
	}
	return rows.Err()
}

// FindCrashGroupByID implements lodestone.CrashService.
func (db *DB) FindCrashGroupByID(ctx context.Context, id int64) (*lodestone.CrashGroup, error) {
	g, err := scanGroup(db.pool.QueryRow(ctx, `SELECT `+groupColumns+` FROM crash_groups WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lodestone.Errorf(lodestone.ENOTFOUND, "crash group not found")
	} else if err != nil {
		return nil, fmt.Errorf("postgres: read crash group %d: %w", id, err)
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
	err := db.audited(ctx, "crash_issue set_state", "crash_issue.set_state", lodestone.AuditCrashIssue, fmt.Sprint(id), func(tx pgx.Tx) (string, error) {
		if err := lockGroup(ctx, tx, id); err != nil {
			return "", err
		}
		var resolved *string
		if state == lodestone.CrashResolved {
			v, err := newestVersion(ctx, tx, id)
			if err != nil {
				return "", err
			}
			resolved = &v
		}
		if _, err := tx.Exec(ctx, `UPDATE crash_groups SET state = $1, regression = 0, resolved_version = $2
			WHERE id = $3`, string(state), resolved, id); err != nil {
			return "", fmt.Errorf("postgres: set crash group state: %w", err)
		}
		return "", nil
	})
	if err != nil {
		return nil, err
	}
	return db.FindCrashGroupByID(ctx, id)
}

// lockGroup locks a group for a change, refusing merged groups.
func lockGroup(ctx context.Context, tx pgx.Tx, id int64) error {
	var state string
	err := tx.QueryRow(ctx, `SELECT state FROM crash_groups WHERE id = $1 FOR UPDATE`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return lodestone.Errorf(lodestone.ENOTFOUND, "crash group %d not found", id)
	} else if err != nil {
		return fmt.Errorf("postgres: read crash group %d: %w", id, err)
	}
	if lodestone.CrashState(state) == lodestone.CrashMerged {
		return lodestone.Errorf(lodestone.ECONFLICT, "crash group %d was merged into another", id)
	}
	return nil
}

func newestVersion(ctx context.Context, tx pgx.Tx, id int64) (string, error) {
	rows, err := tx.Query(ctx, `SELECT DISTINCT firmware_version FROM faults
		WHERE crash_group_id = $1 AND firmware_version <> ''`, id)
	if err != nil {
		return "", fmt.Errorf("postgres: read crash group firmware: %w", err)
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
	err := db.audited(ctx, "crash_issue merge", "crash_issue.merge", lodestone.AuditCrashIssue, fmt.Sprint(from), func(tx pgx.Tx) (string, error) {
		// Lock in id order so two opposite merges cannot deadlock.
		for _, id := range []int64{min(from, into), max(from, into)} {
			if err := lockGroup(ctx, tx, id); err != nil {
				return "", err
			}
		}
		for _, q := range []string{
			`UPDATE faults SET crash_group_id = $2 WHERE crash_group_id = $1`,
			`UPDATE crash_groups SET merged_into = $2 WHERE merged_into = $1`,
			`UPDATE crash_groups SET state = 'merged', merged_into = $2, occurrence_count = 0,
				affected_device_count = 0 WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, from, into); err != nil {
				return "", fmt.Errorf("postgres: merge crash groups: %w", err)
			}
		}
		return "", refreshGroup(ctx, tx, into)
	})
	if err != nil {
		return nil, err
	}
	return db.FindCrashGroupByID(ctx, into)
}
