// Package ferritedb imports a ferrite-server SQLite database (the schema of spec §4.3) into a lodestone store, so
// a fleet moving from ferrite-server keeps its history: devices with their keys, groups and memberships, faults,
// metrics, reboots and OTA targets. It reads through database/sql; the caller opens the file, read-only.
package ferritedb

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

// ImportedSetting is the settings key under which a finished import is recorded, so the same history is not
// imported twice by accident.
const ImportedSetting = "ferrite_import"

// Progress is reported as rows move.
type Progress struct {
	Step        string // the ferrite table being read
	Rows, Total int64  // rows read so far over all tables, and rows to read
}

// Options tune an import.
type Options struct {
	Progress  func(Progress) // optional
	Force     bool           // import even though the store records an earlier import
	BatchSize int            // telemetry records per write transaction; 0 means 5000
	Now       func() time.Time
}

// Summary counts what was imported. Warnings name rows that were changed or left out, and why.
type Summary struct {
	Devices     int      `json:"devices"`
	Keys        int      `json:"keys"`
	Groups      int      `json:"groups"`
	Memberships int      `json:"memberships"`
	Faults      int      `json:"faults"`
	Metrics     int      `json:"metrics"`
	Reboots     int      `json:"reboots"`
	Targets     int      `json:"targets"`
	Warnings    []string `json:"warnings"`
	Skipped     int      `json:"skipped"` // rows left out, each with a warning
}

// maxWarnings bounds the warnings kept; the rest are only counted.
const maxWarnings = 100

func (s *Summary) warn(skipped bool, format string, args ...any) {
	if skipped {
		s.Skipped++
	}
	if len(s.Warnings) < maxWarnings {
		s.Warnings = append(s.Warnings, fmt.Sprintf(format, args...))
	} else if len(s.Warnings) == maxWarnings {
		s.Warnings = append(s.Warnings, "further warnings left out")
	}
}

// importer is one run of Import.
type importer struct {
	src     *sql.DB
	dst     lodestone.Store
	opts    Options
	sum     Summary
	devices []*lodestone.Device
	byRow   map[int64]string // ferrite devices.id -> device_id
	groups  map[int64]int64  // ferrite group id -> lodestone group id
	done    int64
	total   int64
}

// Import copies the ferrite database src into dst. It refuses a store that already records an import unless
// opts.Force is set. Rows that cannot be read are left out with a warning; a store failure stops the import
// (what was written until then stays, and the import is not recorded).
func Import(ctx context.Context, src *sql.DB, dst lodestone.Store, opts Options) (*Summary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	im := &importer{src: src, dst: dst, opts: opts, byRow: map[int64]string{}, groups: map[int64]int64{},
		sum: Summary{Warnings: []string{}}}
	if err := im.check(ctx); err != nil {
		return nil, err
	}
	steps := []struct {
		table string
		run   func(context.Context) error
	}{
		{"devices", im.importDevices},
		{"device_groups", im.importGroups},
		{"device_group_members", im.importMembers},
		{"ota_targets", im.importTargets},
		{"fault_events", im.importFaults},
		{"metrics", im.importMetrics},
		{"reboot_events", im.importReboots},
	}
	for _, st := range steps {
		var n int64
		if err := src.QueryRowContext(ctx, `SELECT count(*) FROM `+st.table).Scan(&n); err != nil {
			return nil, fmt.Errorf("ferritedb: count %s: %w", st.table, err)
		}
		im.total += n
	}
	im.progress("")
	for _, st := range steps {
		if err := st.run(ctx); err != nil {
			return &im.sum, err
		}
	}
	// Writing telemetry marks devices online, as ingest does; put back the status and contact ferrite recorded.
	for _, d := range im.devices {
		if err := dst.ImportDevice(ctx, d); err != nil {
			return &im.sum, fmt.Errorf("ferritedb: restore device %q: %w", d.DeviceID, err)
		}
	}
	im.progress("")
	record, _ := json.Marshal(map[string]any{"at": opts.Now().UTC().Format(time.RFC3339), "summary": im.sum})
	if _, err := dst.SetSettingIfAbsent(ctx, ImportedSetting, string(record)); err != nil {
		return &im.sum, fmt.Errorf("ferritedb: record the import: %w", err)
	}
	return &im.sum, nil
}

// check refuses a database that is not ferrite's, and a second import unless forced.
func (im *importer) check(ctx context.Context) error {
	var n int
	if err := im.src.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
		('devices', 'fault_events', 'metrics', 'reboot_events', 'device_groups', 'device_group_members',
		 'ota_targets')`).Scan(&n); err != nil {
		return fmt.Errorf("ferritedb: read the source schema: %w", err)
	}
	if n != 7 {
		return lodestone.Errorf(lodestone.EINVALID, "not a ferrite-server database: it lacks ferrite's tables "+
			"(devices, fault_events, metrics, reboot_events, device_groups, device_group_members, ota_targets)")
	}
	prev, err := im.dst.Setting(ctx, ImportedSetting)
	switch {
	case err == nil && !im.opts.Force:
		return lodestone.Errorf(lodestone.ECONFLICT, "this lodestone store already holds a ferrite import (%s); "+
			"importing again would duplicate its telemetry (use --force to import anyway)", prev)
	case err != nil && lodestone.ErrorCode(err) != lodestone.ENOTFOUND:
		return fmt.Errorf("ferritedb: read the import record: %w", err)
	}
	return nil
}

func (im *importer) progress(step string) {
	if im.opts.Progress != nil {
		im.opts.Progress(Progress{Step: step, Rows: im.done, Total: im.total})
	}
}

// row counts one source row and reports progress now and then.
func (im *importer) row(step string) {
	im.done++
	if im.done%1000 == 0 {
		im.progress(step)
	}
}

func (im *importer) importDevices(ctx context.Context) error {
	rows, err := im.src.QueryContext(ctx, `SELECT id, device_id, firmware_version, build_id, first_seen, last_seen,
		device_key, name, status, tags, provisioned_by, provisioned_at FROM devices ORDER BY id`)
	if err != nil {
		return fmt.Errorf("ferritedb: read devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		im.row("devices")
		var row int64
		var d lodestone.Device
		var build int64
		var first, last string
		var key sql.NullInt64
		var status, provAt sql.NullString
		if err := rows.Scan(&row, &d.DeviceID, &d.FirmwareVersion, &build, &first, &last, &key, &d.Name, &status,
			&d.Tags, &d.ProvisionedBy, &provAt); err != nil {
			return fmt.Errorf("ferritedb: read devices: %w", err)
		}
		d.BuildID = uint64(build) // ferrite stores u64 build ids as their two's complement, as lodestone does
		d.FirstSeen, d.LastSeen = im.time(first, "device "+d.DeviceID), im.time(last, "device "+d.DeviceID)
		d.Status = lodestone.DeviceStatus(status.String)
		switch d.Status {
		case lodestone.StatusUnknown, lodestone.StatusProvisioned, lodestone.StatusOnline, lodestone.StatusOffline:
		default:
			d.Status = lodestone.StatusUnknown
		}
		if key.Valid {
			if key.Int64 < 0 || key.Int64 > 0xFFFFFFFF {
				im.sum.warn(false, "device %q: device_key %d is not a u32; left out", d.DeviceID, key.Int64)
			} else {
				k := uint32(key.Int64)
				d.DeviceKey = &k
			}
		}
		if provAt.Valid {
			t := im.time(provAt.String, "device "+d.DeviceID)
			d.ProvisionedAt = &t
		}
		err := im.dst.ImportDevice(ctx, &d)
		if lodestone.ErrorCode(err) == lodestone.ECONFLICT && d.DeviceKey != nil {
			im.sum.warn(false, "device %q: %s; imported without its key", d.DeviceID, lodestone.ErrorMessage(err))
			d.DeviceKey = nil
			err = im.dst.ImportDevice(ctx, &d)
		}
		if err != nil {
			return fmt.Errorf("ferritedb: import device %q: %w", d.DeviceID, err)
		}
		im.byRow[row] = d.DeviceID
		im.devices = append(im.devices, &d)
		im.sum.Devices++
		if d.DeviceKey != nil {
			im.sum.Keys++
		}
	}
	return rows.Err()
}

// time parses a ferrite timestamp; an unreadable one becomes the start of the import, with a warning.
func (im *importer) time(s, what string) time.Time {
	t, err := parseTime(s)
	if err != nil {
		im.sum.warn(false, "%s: %v; the import time is used", what, err)
		return im.opts.Now().UTC().Truncate(time.Second)
	}
	return t
}

func (im *importer) importGroups(ctx context.Context) error {
	rows, err := im.src.QueryContext(ctx, `SELECT id, name, description, created_at FROM device_groups ORDER BY id`)
	if err != nil {
		return fmt.Errorf("ferritedb: read groups: %w", err)
	}
	defer rows.Close()
	var existing []*lodestone.Group
	for rows.Next() {
		im.row("device_groups")
		var id int64
		var created string
		g := &lodestone.Group{}
		if err := rows.Scan(&id, &g.Name, &g.Description, &created); err != nil {
			return fmt.Errorf("ferritedb: read groups: %w", err)
		}
		g.CreatedAt = im.time(created, "group "+g.Name)
		err := im.dst.CreateGroup(ctx, g)
		if lodestone.ErrorCode(err) == lodestone.ECONFLICT {
			// A group of that name exists already: its members are added to it.
			if existing == nil {
				if existing, err = im.dst.FindGroups(ctx); err != nil {
					return fmt.Errorf("ferritedb: list groups: %w", err)
				}
			}
			for _, e := range existing {
				if e.Name == g.Name {
					g.ID, err = e.ID, nil
				}
			}
			im.sum.warn(false, "group %q exists already; ferrite's members are added to it", g.Name)
		}
		if err != nil {
			return fmt.Errorf("ferritedb: import group %q: %w", g.Name, err)
		}
		im.groups[id] = g.ID
		im.sum.Groups++
	}
	return rows.Err()
}

func (im *importer) importMembers(ctx context.Context) error {
	rows, err := im.src.QueryContext(ctx, `SELECT group_id, device_id, added_at FROM device_group_members
		ORDER BY group_id, device_id`)
	if err != nil {
		return fmt.Errorf("ferritedb: read group members: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		im.row("device_group_members")
		var group, dev int64
		var added string
		if err := rows.Scan(&group, &dev, &added); err != nil {
			return fmt.Errorf("ferritedb: read group members: %w", err)
		}
		gid, okG := im.groups[group]
		did, okD := im.byRow[dev]
		if !okG || !okD {
			im.sum.warn(true, "membership of device row %d in group %d: no such group or device; left out", dev, group)
			continue
		}
		err := im.dst.AddGroupDevice(ctx, gid, did, im.time(added, "membership of "+did))
		if errors.Is(err, lodestone.ErrAlreadyInGroup) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("ferritedb: add %q to group %d: %w", did, gid, err)
		}
		im.sum.Memberships++
	}
	return rows.Err()
}

func (im *importer) importTargets(ctx context.Context) error {
	rows, err := im.src.QueryContext(ctx, `SELECT device_id, target_version, target_build_id, firmware_url,
		created_at FROM ota_targets ORDER BY id`)
	if err != nil {
		return fmt.Errorf("ferritedb: read OTA targets: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		im.row("ota_targets")
		var t lodestone.OTATarget
		var build int64
		var created string
		if err := rows.Scan(&t.DeviceID, &t.TargetVersion, &build, &t.FirmwareURL, &created); err != nil {
			return fmt.Errorf("ferritedb: read OTA targets: %w", err)
		}
		t.TargetBuildID, t.CreatedAt = uint64(build), im.time(created, "OTA target of "+t.DeviceID)
		if _, err := im.dst.FindTarget(ctx, t.DeviceID); err == nil {
			im.sum.warn(true, "OTA target of %q: lodestone has one already; ferrite's left out", t.DeviceID)
			continue
		} else if lodestone.ErrorCode(err) != lodestone.ENOTFOUND {
			return fmt.Errorf("ferritedb: find OTA target of %q: %w", t.DeviceID, err)
		}
		// ferrite's URLs name its own artifact ids (/ota/firmware/N/download), which are not imported: here they
		// would point at whatever lodestone artifact has that id.
		if t.FirmwareURL != nil && strings.HasPrefix(*t.FirmwareURL, "/") {
			im.sum.warn(false, "OTA target of %q: firmware_url %s names a ferrite artifact, which is not imported; "+
				"the target keeps its version only", t.DeviceID, *t.FirmwareURL)
			t.FirmwareURL = nil
		}
		if err := im.dst.SetTarget(ctx, &t); err != nil {
			return fmt.Errorf("ferritedb: set OTA target of %q: %w", t.DeviceID, err)
		}
		im.sum.Targets++
	}
	return rows.Err()
}

// batcher groups telemetry rows into device batches (one per device and receive time, as ingest writes them)
// and writes them opts.BatchSize records at a time.
type batcher struct {
	im      *importer
	batches []*lodestone.DeviceBatch
	records int
}

func (b *batcher) batch(ctx context.Context, deviceID string, at time.Time) (*lodestone.DeviceBatch, error) {
	if n := len(b.batches); n > 0 {
		last := b.batches[n-1]
		if last.DeviceID == deviceID && last.ReceivedAt.Equal(at) {
			b.records++
			return last, nil
		}
	}
	if b.records >= b.im.opts.BatchSize {
		if err := b.flush(ctx); err != nil {
			return nil, err
		}
	}
	nb := &lodestone.DeviceBatch{DeviceID: deviceID, ReceivedAt: at}
	b.batches = append(b.batches, nb)
	b.records++
	return nb, nil
}

func (b *batcher) flush(ctx context.Context) error {
	if len(b.batches) == 0 {
		return nil
	}
	if err := b.im.dst.WriteTelemetry(ctx, b.batches); err != nil {
		return fmt.Errorf("ferritedb: write telemetry: %w", err)
	}
	b.batches, b.records = nil, 0
	return nil
}

// telemetry reads one telemetry table in id order and adds each row to a batch with add.
func (im *importer) telemetry(ctx context.Context, table, query string, scan func(*sql.Rows) (int64, string,
	func(*lodestone.DeviceBatch) error, error)) error {
	rows, err := im.src.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("ferritedb: read %s: %w", table, err)
	}
	defer rows.Close()
	b := &batcher{im: im}
	for rows.Next() {
		im.row(table)
		dev, created, add, err := scan(rows)
		if err != nil {
			return fmt.Errorf("ferritedb: read %s: %w", table, err)
		}
		id, ok := im.byRow[dev]
		if !ok {
			im.sum.warn(true, "%s row of device row %d: no such device; left out", table, dev)
			continue
		}
		if add == nil { // unreadable row, warned about by scan
			continue
		}
		batch, err := b.batch(ctx, id, im.time(created, table+" row of "+id))
		if err != nil {
			return err
		}
		if err := add(batch); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ferritedb: read %s: %w", table, err)
	}
	return b.flush(ctx)
}

func (im *importer) importFaults(ctx context.Context) error {
	return im.telemetry(ctx, "fault_events", `SELECT id, device_rowid, fault_type, pc, lr, cfsr, hfsr, mmfar, bfar,
		sp, stack_snapshot, created_at FROM fault_events ORDER BY id`,
		func(rows *sql.Rows) (int64, string, func(*lodestone.DeviceBatch) error, error) {
			var id, dev int64
			var f lodestone.Fault
			var typ, pc, lr, cfsr, hfsr, mmfar, bfar, sp int64
			var stack, created string
			if err := rows.Scan(&id, &dev, &typ, &pc, &lr, &cfsr, &hfsr, &mmfar, &bfar, &sp, &stack,
				&created); err != nil {
				return 0, "", nil, err
			}
			f.FaultType, f.CFSR, f.HFSR, f.MMFAR, f.BFAR = uint8(typ), uint32(cfsr), uint32(hfsr), uint32(mmfar),
				uint32(bfar)
			f.Registers.PC, f.Registers.LR, f.Registers.SP = uint32(pc), uint32(lr), uint32(sp)
			s, err := stackSnapshot(stack)
			if err != nil {
				im.sum.warn(false, "fault %d: %v; stored without its stack", id, err)
			}
			f.Stack = s
			return dev, created, func(b *lodestone.DeviceBatch) error {
				b.Faults = append(b.Faults, f)
				im.sum.Faults++
				return nil
			}, nil
		})
}

func (im *importer) importMetrics(ctx context.Context) error {
	return im.telemetry(ctx, "metrics", `SELECT id, device_rowid, key, metric_type, value_json, timestamp_ticks,
		created_at FROM metrics ORDER BY id`,
		func(rows *sql.Rows) (int64, string, func(*lodestone.DeviceBatch) error, error) {
			var id, dev, typ, ticks int64
			var m lodestone.Metric
			var value, created string
			if err := rows.Scan(&id, &dev, &m.Key, &typ, &value, &ticks, &created); err != nil {
				return 0, "", nil, err
			}
			m.Ticks = uint64(ticks)
			if err := metricValue(uint8(typ), value, &m); err != nil {
				im.sum.warn(true, "metric %d: %v; left out", id, err)
				return dev, created, nil, nil
			}
			return dev, created, func(b *lodestone.DeviceBatch) error {
				b.Metrics = append(b.Metrics, m)
				im.sum.Metrics++
				return nil
			}, nil
		})
}

func (im *importer) importReboots(ctx context.Context) error {
	return im.telemetry(ctx, "reboot_events", `SELECT device_rowid, reason, extra, boot_sequence,
		uptime_before_reboot, created_at FROM reboot_events ORDER BY id`,
		func(rows *sql.Rows) (int64, string, func(*lodestone.DeviceBatch) error, error) {
			var dev, reason, extra, boot, uptime int64
			var created string
			if err := rows.Scan(&dev, &reason, &extra, &boot, &uptime, &created); err != nil {
				return 0, "", nil, err
			}
			r := lodestone.Reboot{Reason: uint8(reason), Extra: uint8(extra), BootSequence: uint32(boot),
				UptimeBeforeReboot: uint32(uptime)}
			return dev, created, func(b *lodestone.DeviceBatch) error {
				b.Reboots = append(b.Reboots, r)
				im.sum.Reboots++
				return nil
			}, nil
		})
}
