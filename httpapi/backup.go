package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

func (s *Server) routesBackup() {
	s.handle("GET /admin/backup", AccessAdmin, s.backup) // ferrite: any user; the whole database is admin's
	s.handle("GET /report/devices", AccessViewer, s.reportDevices)
}

// backupChunkTimeout bounds each write of a backup stream: a stalled client is cut off, a slow one is not.
const backupChunkTimeout = 60 * time.Second

// backup answers GET /admin/backup with a consistent snapshot of the database as a SQLite file, taken while ingest
// carries on. ferrite's headers are kept (application/x-sqlite3, attachment, Content-Length); unlike ferrite the
// snapshot is streamed from disk, never held in memory, and one backup runs at a time.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Backup == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "backups are not available on this server")
	}
	if !s.backupRunning.TryLock() {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "another backup is running; try again when it is done")
	}
	defer s.backupRunning.Unlock()
	rc := http.NewResponseController(w)
	// Taking the snapshot of a large database outlasts the server's write timeout; lift it until bytes flow.
	rc.SetWriteDeadline(time.Time{})
	// Recorded before the snapshot, so no copy of the database leaves unrecorded (and the copy holds its entry).
	if err := s.audit(r.Context(), "backup.download", lodestone.AuditBackup, "", nil); err != nil {
		return err
	}
	start := time.Now()
	snap, err := s.deps.Backup.Backup(r.Context())
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer snap.Close()
	h := w.Header()
	h.Set("Content-Type", "application/x-sqlite3")
	h.Set("Content-Disposition", `attachment; filename="lodestone-backup-`+snap.Taken.UTC().Format("20060102T150405Z")+`.db"`)
	h.Set("Content-Length", strconv.FormatInt(snap.Size, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Backup-Taken", snap.Taken.UTC().Format(time.RFC3339Nano))
	w.WriteHeader(http.StatusOK)
	n, err := io.CopyBuffer(deadlineWriter{w, rc}, snap, make([]byte, 256<<10))
	log := s.logFor(r)
	if err != nil {
		// The status line is gone; the client sees a short body against Content-Length.
		log.Warn("backup stream ended early", "bytes", n, "size", snap.Size, "err", err)
		return nil
	}
	log.Info("backup served", "bytes", n, "took", time.Since(start).Round(time.Millisecond),
		"user", principalName(r))
	return nil
}

// deadlineWriter extends the write deadline before each write.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(backupChunkTimeout))
	return d.w.Write(p)
}

func principalName(r *http.Request) string {
	if p := PrincipalFrom(r.Context()); p != nil {
		return p.Name
	}
	return ""
}

// deviceReportJSON is a device with its record counts: the rows of ferrite's "report" command.
type deviceReportJSON struct {
	deviceJSON
	FaultCount  int64 `json:"fault_count"`
	MetricCount int64 `json:"metric_count"`
	RebootCount int64 `json:"reboot_count"`
}

// reportDevices answers GET /report/devices: every device (paged like /devices) with how many faults, metrics
// and reboots it has stored, so that "lodestone report --server" needs one request per thousand devices.
func (s *Server) reportDevices(w http.ResponseWriter, r *http.Request) error {
	if s.deps.Reports == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "device reports are not available on this server")
	}
	q := r.URL.Query()
	f := lodestone.DeviceFilter{Status: lodestone.DeviceStatus(q.Get("status"))}
	switch f.Status {
	case "", lodestone.StatusUnknown, lodestone.StatusProvisioned, lodestone.StatusOnline, lodestone.StatusOffline:
	default:
		return lodestone.Errorf(lodestone.EINVALID, "status must be one of unknown, provisioned, online, offline")
	}
	var err error
	if f.Limit, err = uintParam(q, "limit"); err != nil {
		return err
	}
	if f.Offset, err = uintParam(q, "offset"); err != nil {
		return err
	}
	if f.Limit == 0 {
		f.Limit = lodestone.MaxListLimit
	}
	sums, err := s.deps.Reports.DeviceSummaries(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]deviceReportJSON, len(sums))
	for i, d := range sums {
		out[i] = deviceReportJSON{newDeviceJSON(&d.Device), d.Faults, d.Metrics, d.Reboots}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": out})
	return nil
}
