package sqlite

import "time"

// CacheLens reports how many metric key and log source ids the writer has cached.
func (db *DB) CacheLens() (keys, sources int) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.logs != nil {
		sources = db.logs.sources.Len()
	}
	return db.keys.Len(), sources
}

// SetSealEvery sets how often the compactor runs, for the databases opened afterwards; it returns the old value.
func SetSealEvery(d time.Duration) time.Duration {
	old := sealEvery
	sealEvery = d
	return old
}

// SetSealBatch sets how many devices the compactor lists at a time and how many points it seals per transaction;
// it returns the old values.
func SetSealBatch(devices, rows int) (int, int) {
	s0, r0 := sealDevicesPerList, sealRowsPerTx
	sealDevicesPerList, sealRowsPerTx = devices, rows
	return s0, r0
}
