package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCacheSize bounds the read pool's cached statements. Series statements come in a few shapes per plan kind;
// one naming a device list has a shape per list length, so the bound keeps such shapes from growing without end.
const stmtCacheSize = 128

// readStmts caches prepared statements of the read pool by their text. A series answer runs two to four
// statements; preparing each anew cost about a tenth of a fleet series' time.
type readStmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// QueryContext implements queryer: a cached statement when there is room, else a one-off query.
func (c *readStmts) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	c.mu.Lock()
	st, ok := c.m[q]
	if !ok && len(c.m) < stmtCacheSize {
		var err error
		// database/sql prepares it again on each connection that runs it, once.
		if st, err = c.db.PrepareContext(context.WithoutCancel(ctx), q); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		c.m[q], ok = st, true
	}
	c.mu.Unlock()
	if !ok {
		return c.db.QueryContext(ctx, q, args...)
	}
	return st.QueryContext(ctx, args...)
}

// close closes every cached statement; the pool is closed after.
func (c *readStmts) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}
