package postgres

// CacheLens reports how many metric key and log source ids this replica has cached.
func (db *DB) CacheLens() (keys, sources int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.keys.Len(), db.sources.Len()
}
