package postgres

// CacheLens reports how many metric key and log source ids this replica has cached.
func (db *DB) CacheLens() (keys, sources int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.keys.Len(), db.sources.Len()
}

// SetSealBatch sets how many series the compactor lists at a time and how many points it seals per transaction;
// it returns the old values.
func SetSealBatch(series, rows int) (int, int) {
	s0, r0 := sealSeriesPerTx, sealRowsPerTx
	sealSeriesPerTx, sealRowsPerTx = series, rows
	return s0, r0
}
