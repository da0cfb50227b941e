package event

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodestone-fleet/lodestone"
)

// PGConfig tunes a PGBus.
type PGConfig struct {
	RingSize int // events kept in memory for resuming subscribers; default DefaultRingSize
	Buffer   int // per-subscriber buffer in events; default DefaultBuffer
	// BufferBytes bounds the event data a subscriber may have waiting; default DefaultBufferBytes.
	BufferBytes int
	QueueSize   int           // published events waiting to be written; default 16384
	MaxBatch    int           // events written per transaction (one row); default 1000, at most MaxBatch
	Linger      time.Duration // how long the writer waits for more events before writing a batch; default 20 ms
	Backoff     time.Duration // first wait before the listener reconnects; default 100 ms, doubling to 5 s
	// Grace is how long after a replica's last subscriber left events are still stored for resuming clients;
	// default DefaultGrace. See interest.
	Grace  time.Duration
	Logger *slog.Logger
}

// DefaultGrace is PGConfig.Grace's default: well past any client's reconnect delay.
const DefaultGrace = 15 * time.Minute

// PGBus is the event bus of replicas that share one PostgreSQL database. Publish queues the event; a writer
// inserts each batch of queued events as one row of the events table and NOTIFYs in the same transaction. An
// event's id is its row's id << 12 | its index in the row (see MaxBatch). Every replica keeps one connection
// LISTENing; on a notification it reads the new rows by id and hands their events to its local subscribers, so
// every replica delivers the same events with the same ids in the same order. When that connection drops, the
// listener reconnects and reads every row it missed.
//
// Inserts take an EXCLUSIVE lock on the table for the length of their short transaction, so rows become visible
// in id order and a reader that has seen row N has seen every row below it.
type PGBus struct {
	pool    *pgxpool.Pool
	ownPool bool
	listen  *pgx.ConnConfig
	channel string
	cfg     PGConfig
	log     *slog.Logger
	h       *hub

	interest *interest

	qmu     sync.RWMutex // guards qclosed against sends on a closed queue
	qclosed bool
	queue   chan lodestone.Event
	written chan struct{}
	// writeCtx bounds every database call of the writer and its retry waits; Shutdown ends it at its deadline, so
	// a database that cannot be reached costs a stopping process no more than its deadline.
	writeCtx  context.Context
	stopWrite context.CancelFunc

	stopListen context.CancelFunc
	listenDone chan struct{}
	holdDone   chan struct{}
	lastRow    int64 // newest row the listener has read; only the listener touches it

	dropped  atomic.Uint64
	unwanted atomic.Uint64 // published while no replica wanted events stored
}

var (
	_ lodestone.EventBus    = (*PGBus)(nil)
	_ lodestone.EventDemand = (*PGBus)(nil)
)

// OpenPGURL connects to the database at url (its search_path selects the schema) and opens a bus on a pool of
// its own, closed by Close.
func OpenPGURL(ctx context.Context, url string, cfg PGConfig) (*PGBus, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("event: connect: %w", err)
	}
	b, err := OpenPG(ctx, pool, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b.ownPool = true
	return b, nil
}

// OpenPG opens a bus that writes and replays through pool and listens on a dedicated connection configured like
// the pool's. The events table must exist (store/schema/postgres, 00020_events.sql). Close does not close pool.
func OpenPG(ctx context.Context, pool *pgxpool.Pool, cfg PGConfig) (*PGBus, error) {
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = DefaultBufferBytes
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 16384
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	cfg.MaxBatch = min(cfg.MaxBatch, MaxBatch)
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("event: read current schema: %w", err)
	}
	b := &PGBus{pool: pool, cfg: cfg, log: cfg.Logger, channel: Channel(schema),
		queue: make(chan lodestone.Event, cfg.QueueSize), written: make(chan struct{}),
		listenDone: make(chan struct{}), holdDone: make(chan struct{}), interest: newInterest(cfg.Grace)}
	b.writeCtx, b.stopWrite = context.WithCancel(context.Background())
	b.listen = pool.Config().ConnConfig.Copy()
	b.listen.RuntimeParams["application_name"] = ListenerName(schema)

	// LISTEN before reading the newest id: anything committed later is announced, anything earlier is below it.
	conn, err := b.connect(ctx)
	if err != nil {
		b.stopWrite()
		return nil, err
	}
	last, err := newest(ctx, conn)
	if err != nil {
		b.stopWrite()
		conn.Close(context.Background())
		return nil, err
	}
	b.h = newHub(cfg.RingSize, cfg.Buffer, cfg.BufferBytes, last)
	b.lastRow = rowOf(last)

	lctx, cancel := context.WithCancel(context.Background())
	b.stopListen = cancel
	go b.run(lctx, conn)
	go func() {
		defer close(b.holdDone)
		b.keepHolding(lctx)
	}()
	go b.write()
	return b, nil
}

// Channel is the NOTIFY channel of the bus in schema. Channels are per database, so the name carries the schema
// and buses in different schemas of one database stay apart.
func Channel(schema string) string {
	c := "lodestone_events_" + schema
	if len(c) > 63 { // NAMEDATALEN - 1
		h := fnv.New64a()
		h.Write([]byte(schema))
		c = fmt.Sprintf("lodestone_events_%016x", h.Sum64())
	}
	return c
}

// Replicas returns how many replicas share this bus's schema now: each holds one listener connection.
func (b *PGBus) Replicas(ctx context.Context) (int, error) {
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name = $1`, b.listen.RuntimeParams["application_name"]).Scan(&n); err != nil {
		return 0, fmt.Errorf("event: count replicas: %w", err)
	}
	return n, nil
}

// ListenerName is the application_name of the listener connection of the bus in schema, for pg_stat_activity.
func ListenerName(schema string) string { return "lodestone events listener " + schema }

// Publish queues e for writing and returns without waiting for the database. A full queue (the database is
// down or far too slow) drops the event and returns an EUNAVAILABLE error.
func (b *PGBus) Publish(ctx context.Context, e lodestone.Event) error {
	if err := check(&e, time.Now); err != nil {
		return err
	}
	b.qmu.RLock()
	defer b.qmu.RUnlock()
	if b.qclosed {
		return errClosed
	}
	select {
	case b.queue <- e:
		return nil
	default:
		b.dropped.Add(1)
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "event queue is full")
	}
}

// Subscribe implements lodestone.EventBus. A subscriber resuming from an id older than the memory ring is first
// sent the rows in between from the table.
func (b *PGBus) Subscribe(ctx context.Context, afterID int64) (<-chan lodestone.Event, error) {
	if err := b.hold(ctx); err != nil {
		return nil, err
	}
	if afterID > b.h.lastID() {
		// Either another replica's listener is ahead of this one (the events will arrive), or the id was never
		// issued (then wait for nothing: send live events).
		last, err := newest(ctx, b.pool)
		if err != nil {
			return nil, err
		}
		if afterID > last {
			afterID = 0
		}
	}
	return b.h.subscribe(ctx, afterID, b.replay, func(err error) {
		b.log.Error("event replay failed; ending the subscription", "err", err)
	})
}

// LastID returns the id of the newest event delivered on this replica.
func (b *PGBus) LastID() int64 { return b.h.lastID() }

// Subscribers returns how many subscriptions are live on this replica.
func (b *PGBus) Subscribers() int { return b.h.subscribers() }

// Unwanted returns how many events were not stored because no replica had a subscriber within the grace period.
func (b *PGBus) Unwanted() uint64 { return b.unwanted.Load() }

// Dropped returns how many events were lost because the queue was full or the database kept failing.
func (b *PGBus) Dropped() uint64 { return b.dropped.Load() }

// Trim deletes events older than maxAge and all but the newest keep events, and returns how many it deleted;
// zero disables either rule. Both work on whole rows: a row goes when its newest event is older than maxAge, or
// when the rows after it hold keep events or more, so at least keep events stay. The leader calls it; subscribers
// resuming from a trimmed id get what is left.
func (b *PGBus) Trim(ctx context.Context, maxAge time.Duration, keep int) (int64, error) {
	var n int64
	if maxAge > 0 {
		var d int64
		if err := b.pool.QueryRow(ctx, trimByAge, time.Now().Add(-maxAge)).Scan(&d); err != nil {
			return n, fmt.Errorf("event: trim by age: %w", err)
		}
		n += d
	}
	if keep > 0 {
		var d int64
		if err := b.pool.QueryRow(ctx, trimByCount, keep).Scan(&d); err != nil {
			return n, fmt.Errorf("event: trim by count: %w", err)
		}
		n += d
	}
	if _, err := b.pool.Exec(ctx, trimListeners); err != nil {
		return n, fmt.Errorf("event: trim listeners: %w", err)
	}
	return n, nil
}

const trimByAge = `
WITH d AS (DELETE FROM events WHERE time < $1 RETURNING count)
SELECT coalesce(sum(count), 0) FROM d`

// trimByCount deletes the newest row whose newer rows hold at least $1 events, and every row before it.
const trimByCount = `
WITH d AS (
	DELETE FROM events WHERE id <= (
		SELECT id FROM (
			SELECT id, sum(count) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) - count AS newer FROM events) w
		WHERE newer >= $1 ORDER BY id DESC LIMIT 1)
	RETURNING count)
SELECT coalesce(sum(count), 0) FROM d`

// Close writes what is queued, stops the listener and ends every subscription. With the database unreachable it
// may take a while: each batch is tried a few times; Shutdown bounds that.
func (b *PGBus) Close() error { return b.Shutdown(context.Background()) }

// Shutdown is Close with a deadline: it writes what is queued until ctx ends, then gives up on the batch in flight
// and drops the rest (counted in Dropped), and returns once every goroutine of the bus has stopped.
func (b *PGBus) Shutdown(ctx context.Context) error {
	b.qmu.Lock()
	if !b.qclosed {
		b.qclosed = true
		close(b.queue)
	}
	b.qmu.Unlock()
	select {
	case <-b.written:
	case <-ctx.Done():
		b.stopWrite()
		<-b.written
	}
	b.stopWrite()
	b.stopListen()
	<-b.listenDone
	<-b.holdDone
	b.h.close()
	if b.ownPool {
		// pgx cancels a query cut short on a connection of its own, waiting up to 15 s for a server that does not
		// answer; past the deadline that finishes in the background.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			b.pool.Close()
		}()
		select {
		case <-closed:
		case <-ctx.Done():
		}
	}
	return nil
}

// write inserts queued events in batches until the queue closes.
func (b *PGBus) write() {
	defer close(b.written)
	batch := make([]lodestone.Event, 0, b.cfg.MaxBatch)
	var buf []byte
	linger := time.NewTimer(0)
	<-linger.C
	for e := range b.queue {
		batch = append(batch[:0], e)
		// Wait a moment for more: under load one transaction then carries many events instead of a few, which is
		// most of what publishing costs the database. A live event arrives at most Linger later.
		linger.Reset(b.cfg.Linger)
	drain:
		for len(batch) < b.cfg.MaxBatch {
			select {
			case e, ok := <-b.queue:
				if !ok {
					break drain
				}
				batch = append(batch, e)
			case <-linger.C:
				break drain
			}
		}
		if !linger.Stop() {
			select {
			case <-linger.C:
			default:
			}
		}
		if b.writeCtx.Err() != nil {
			b.drop(batch, nil)
			continue
		}
		ctx, cancel := context.WithTimeout(b.writeCtx, 5*time.Second)
		wanted := b.Wanted(ctx)
		cancel()
		if !wanted {
			b.unwanted.Add(uint64(len(batch)))
			continue
		}
		buf = encodeBatch(buf[:0], batch)
		b.writeBatch(batch, buf)
	}
}

// writeBatch retries a failing insert a few times, then drops the batch: live events are worth a retry, not a
// stalled queue.
func (b *PGBus) writeBatch(batch []lodestone.Event, data []byte) {
	delay := b.cfg.Backoff
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.writeCtx, 30*time.Second)
		err := b.insert(ctx, batch, data)
		cancel()
		if err == nil {
			return
		}
		if attempt == 5 || b.writeCtx.Err() != nil {
			b.drop(batch, err)
			return
		}
		b.log.Warn("writing events failed; retrying", "events", len(batch), "attempt", attempt, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-b.writeCtx.Done():
			t.Stop()
		}
		delay *= 2
	}
}

// drop counts and logs a batch that will not be written; err is nil when shutdown's deadline passed before it was
// tried.
func (b *PGBus) drop(batch []lodestone.Event, err error) {
	b.dropped.Add(uint64(len(batch)))
	if err == nil || b.writeCtx.Err() != nil {
		b.log.Error("events dropped: shutdown's deadline passed before they were written", "events", len(batch),
			"err", err)
		return
	}
	b.log.Error("events dropped: cannot write them to PostgreSQL", "events", len(batch), "err", err)
}

// insertBatch adds a batch as one row and announces its newest event id (batchBits is 12); NOTIFY is delivered at
// commit.
const insertBatch = `
WITH ins AS (INSERT INTO events (time, count, data) VALUES ($1, $2, $3) RETURNING id, count)
SELECT pg_notify($4, ((id << 12) | (count - 1))::text) FROM ins`

// insert writes batch, encoded as data. The row's time is the newest event time, so trimming by age never
// deletes an event younger than the limit.
func (b *PGBus) insert(ctx context.Context, batch []lodestone.Event, data []byte) error {
	newest := batch[0].Time
	for _, e := range batch[1:] {
		if e.Time.After(newest) {
			newest = e.Time
		}
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		// Serialises writers (only writers) so that rows commit in id order; see PGBus. Live events need not wait
		// for the WAL flush: telemetry they describe is committed durably in its own transaction, and a crash of
		// the database may lose only the last moments of the event stream.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; LOCK TABLE events IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertBatch, newest, len(batch), string(data), b.channel)
		return err
	})
	if err != nil {
		return fmt.Errorf("event: insert %d events: %w", len(batch), err)
	}
	return nil
}

// replay sends stored events for a resuming subscriber, a page of rows at a time. The first page starts at the
// row of the first event wanted, which may be partly before it.
func (b *PGBus) replay(ctx context.Context, after, upTo int64, send func(lodestone.Event) bool) error {
	from := rowOf(after + 1)
	for {
		page, lastRow, more, err := b.read(ctx, b.pool, from, after, upTo)
		if err != nil {
			return err
		}
		for _, e := range page {
			if !send(e) {
				return nil
			}
		}
		if !more {
			return nil
		}
		from = lastRow + 1
	}
}

// connect opens the listener connection and LISTENs.
func (b *PGBus) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, b.listen)
	if err != nil {
		return nil, fmt.Errorf("event: connect listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.channel}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("event: listen: %w", err)
	}
	return conn, nil
}

// run follows notifications until ctx ends, reconnecting with backoff whenever the connection fails.
func (b *PGBus) run(ctx context.Context, conn *pgx.Conn) {
	defer close(b.listenDone)
	backoff := b.cfg.Backoff
	for {
		if conn != nil {
			err := b.follow(ctx, conn)
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			b.log.Warn("event listener lost its connection; reconnecting", "err", err)
			backoff = b.cfg.Backoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		c, err := b.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			b.log.Warn("event listener cannot reconnect", "err", err, "retry_in", backoff)
			continue
		}
		conn = c
	}
}

// follow reads everything after the newest delivered id, then again on each notification that announces more.
// Reading on (re)connect, after LISTEN, is what makes a dropped connection lose nothing.
func (b *PGBus) follow(ctx context.Context, conn *pgx.Conn) error {
	for {
		if err := b.catchUp(ctx, conn); err != nil {
			return err
		}
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return err
			}
			id, err := strconv.ParseInt(n.Payload, 10, 64)
			if err != nil {
				break // not ours to parse: read whatever is new
			}
			if id <= b.h.lastID() {
				continue
			}
			// With no subscriber on this replica, step past the announced events without reading them: every
			// replica would otherwise read back every event the cluster publishes. A subscriber that arrives later
			// and resumes from an earlier id is served from the table.
			if b.h.skipTo(id) {
				b.lastRow = rowOf(id)
				continue
			}
			break
		}
	}
}

// catchUp delivers the events of every row after the newest one read. A row is written whole, so it is never
// read twice.
func (b *PGBus) catchUp(ctx context.Context, conn *pgx.Conn) error {
	for {
		page, lastRow, more, err := b.read(ctx, conn, b.lastRow+1, eventID(b.lastRow, MaxBatch-1), 1<<62)
		if err != nil {
			return err
		}
		for _, e := range page {
			b.h.deliver(e)
		}
		if lastRow > 0 {
			b.lastRow = lastRow
		}
		if !more {
			return nil
		}
	}
}
