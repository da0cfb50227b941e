package leader

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config tunes a PG elector.
type Config struct {
	// Retry is how often a follower tries to take the lock, and how often the leader checks a silent connection;
	// default 5 s. A dead leader's connection is usually seen at once, since the leader always reads it.
	Retry  time.Duration
	Logger *slog.Logger
}

// PG elects a leader among replicas sharing a PostgreSQL database: the one whose dedicated connection holds the
// session-level advisory lock Key(name, schema). PostgreSQL releases the lock when that connection ends for any
// reason, so leadership moves when the leader dies, is partitioned away, or stops.
type PG struct {
	conn    *pgx.ConnConfig
	name    string
	cfg     Config
	log     *slog.Logger
	leading atomic.Bool
	pid     atomic.Uint32
}

var _ Elector = (*PG)(nil)

// NewPG returns an elector for name that connects like pool (same server, user and search_path). The lock lives
// on a connection of its own, never one of the pool's.
func NewPG(pool *pgxpool.Pool, name string, cfg Config) *PG {
	return newPG(pool.Config().ConnConfig.Copy(), name, cfg)
}

// NewPGURL returns an elector for name that connects to url.
func NewPGURL(url, name string, cfg Config) (*PG, error) {
	c, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("leader: %w", err)
	}
	return newPG(c, name, cfg), nil
}

func newPG(c *pgx.ConnConfig, name string, cfg Config) *PG {
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c.RuntimeParams["application_name"] = "lodestone leader " + name
	return &PG{conn: c, name: name, cfg: cfg, log: cfg.Logger.With("election", name)}
}

// Key is the advisory-lock key of the election name in schema. Advisory locks are per database, so the schema is
// part of the key: deployments (and test runs) in different schemas of one database elect separately.
func Key(name, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("lodestone/leader/" + name + "/" + schema))
	return int64(h.Sum64())
}

// IsLeader implements Elector.
func (p *PG) IsLeader() bool { return p.leading.Load() }

// PID returns the server process id of the election connection, 0 before the first connection.
func (p *PG) PID() uint32 { return p.pid.Load() }

// Run implements Elector. Connection failures are logged and retried every Retry; Run returns only when ctx ends.
func (p *PG) Run(ctx context.Context, jobs ...Job) error {
	for {
		err := p.session(ctx, jobs)
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("leader election connection failed; retrying", "err", err, "retry_in", p.cfg.Retry)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.cfg.Retry):
		}
	}
}

// session holds one connection: it tries for the lock every Retry and leads once it has it. It returns when the
// connection fails or ctx ends; closing the connection releases the lock.
func (p *PG) session(ctx context.Context, jobs []Job) error {
	conn, err := pgx.ConnectConfig(ctx, p.conn)
	if err != nil {
		return fmt.Errorf("leader: connect: %w", err)
	}
	defer conn.Close(context.Background())
	p.pid.Store(conn.PgConn().PID())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("leader: read current schema: %w", err)
	}
	key := Key(p.name, schema)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			return fmt.Errorf("leader: try lock: %w", err)
		}
		if ok {
			return p.lead(ctx, conn, jobs)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.cfg.Retry):
		}
	}
}

// lead runs jobs until the lock connection fails or ctx ends, then stops them and waits for them.
func (p *PG) lead(ctx context.Context, conn *pgx.Conn, jobs []Job) error {
	p.log.Info("took leadership; running periodic jobs", "jobs", len(jobs))
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	p.leading.Store(true)
	go func() {
		defer close(done)
		runJobs(jctx, jobs, p.log)
	}()
	err := p.watch(ctx, conn)
	p.leading.Store(false)
	cancel()
	<-done
	if ctx.Err() == nil {
		p.log.Warn("lost leadership; periodic jobs stopped", "err", err)
	}
	return err
}

// watch returns when the connection fails or ctx ends. It keeps a read pending on the connection, so a server
// that terminates the session is noticed at once, and pings every Retry to notice a connection gone silent.
func (p *PG) watch(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, p.cfg.Retry)
		_, err := conn.WaitForNotification(wctx)
		timedOut := wctx.Err() != nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			continue // a notification nobody asked for; keep watching
		case !timedOut || conn.IsClosed():
			return fmt.Errorf("leader: lock connection: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.Retry)
		err = conn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("leader: lock connection: %w", err)
		}
	}
}
