package doctor

import (
	"context"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// Backups are recorded in the settings table, which only adds keys (SetSettingIfAbsent): one key per UTC day,
// holding the time of that day's first completed backup. The backup check looks at the last eight days' keys.
const backupKeyPrefix = "backup.completed."

func backupKey(t time.Time) string { return backupKeyPrefix + t.UTC().Format(time.DateOnly) }

// BackupSetting is the settings row that records a backup completed at t, for writers without a Settings store.
func BackupSetting(t time.Time) (key, value string) {
	return backupKey(t), t.UTC().Format(time.RFC3339Nano)
}

// RecordBackup notes that a backup completed at t. Later backups the same day keep the first one's time.
func RecordBackup(ctx context.Context, s lodestone.Settings, t time.Time) error {
	k, v := BackupSetting(t)
	_, err := s.SetSettingIfAbsent(ctx, k, v)
	return err
}

// LastBackup returns the newest recorded backup within the last eight days, or the zero time.
func LastBackup(ctx context.Context, s lodestone.Settings, now time.Time) (time.Time, error) {
	for i := 0; i <= 8; i++ {
		v, err := s.Setting(ctx, backupKey(now.AddDate(0, 0, -i)))
		if lodestone.ErrorCode(err) == lodestone.ENOTFOUND {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			continue
		}
		return t, nil
	}
	return time.Time{}, nil
}
