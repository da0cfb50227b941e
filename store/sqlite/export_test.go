package sqlite

// CacheLens reports how many metric key and log source ids the writer has cached.
func (db *DB) CacheLens() (keys, sources int) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if db.logs != nil {
		sources = db.logs.sources.Len()
	}
	return db.keys.Len(), sources
}
