package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
)

// The live tail reads the log table forward by id. Each look reads at most tailPages pages of its device or
// project; a tail that falls further behind than that moves on, and at most tailMaxRows rows go to the browser
// per look (it says how many matching records it left out), so one busy fleet cannot make a browser tab draw
// thousands of rows a second.
const (
	tailPages       = 5
	tailMaxRows     = 500 // rows in one message
	tailWriteWithin = 30 * time.Second
)

type tailMessage struct {
	Rows    []logRow `json:"rows"`
	Skipped int      `json:"skipped,omitempty"`
}

// logsTail streams the records of the explorer's query stored after a cursor, as Server-Sent Events: it polls
// the store by id (LogScanner) rather than listening to the ingest path, so it sees what any replica committed
// and asks nothing of the writer. Each message's id is the cursor, so the browser's EventSource resumes where it
// was (Last-Event-ID); a paused page reconnects with after=.
func (c *Console) logsTail(w http.ResponseWriter, r *request) error {
	d := c.cfg.Logs
	if d.Scanner == nil || d.Head == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "the live log tail is not available on this server")
	}
	lq, err := parseLogQuery(r.URL.Query(), c.now())
	if err != nil {
		return err
	}
	cursor := int64(-1)
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return lodestone.Errorf(lodestone.EINVALID, "after must be a log record id (0 or more)")
		}
		cursor = n
		break
	}
	ctx := r.ctx()
	if cursor < 0 {
		if cursor, err = d.Head.LastLogID(ctx); err != nil {
			return err
		}
	}
	release, err := c.streams.open(r.sess.Hash)
	if err != nil {
		return err
	}
	defer release()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Every write has its own deadline: a client that stops reading ends the stream and frees its slot.
	send := func(b []byte) bool {
		rc.SetWriteDeadline(time.Now().Add(tailWriteWithin))
		_, err := w.Write(b)
		return err == nil && rc.Flush() == nil
	}
	if !send([]byte("retry: 2000\n\n")) {
		return nil
	}
	every := d.TailEvery
	if every <= 0 {
		every = time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	lower := strings.ToLower(lq.Text)
	t := tailer{scan: d.Scanner, head: d.Head, q: lq, lower: lower, settled: cursor, sent: map[int64]bool{}}
	lastSent := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		before := t.settled
		msg, err := t.poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("console log tail", "err", err)
			continue // try again at the next tick
		}
		var out []byte
		switch {
		case len(msg.Rows) > 0:
			raw, _ := json.Marshal(msg)
			out = append(out, "id: "+strconv.FormatInt(t.settled, 10)+"\nevent: logs\ndata: "...)
			out = append(out, raw...)
			out = append(out, "\n\n"...)
		case t.settled != before:
			// Records went by that the query leaves out: move the browser's resume point past them.
			out = []byte("id: " + strconv.FormatInt(t.settled, 10) + "\n\n")
		case time.Since(lastSent) >= keepAlive:
			out = []byte(":\n\n")
		}
		if out != nil {
			if !send(out) {
				return nil
			}
			lastSent = time.Now()
		}
	}
}

// tailLag is how many looks a record id stays open to records committed late with a lower id: PostgreSQL writers
// commit in parallel, so id 100 can become visible after id 120. Below the head seen tailLag looks ago the table
// is taken as settled; above it, ids already sent are remembered so a second look sends them once.
const tailLag = 3

// tailer follows the log table for one tail.
type tailer struct {
	scan    lodestone.LogScanner
	head    lodestone.LogHead
	q       logQuery
	lower   string
	settled int64          // every record with an id up to this was looked at
	heads   []int64        // the heads of the last looks, oldest first
	sent    map[int64]bool // ids above settled already sent
}

// poll reads the records after the settled id that match the query and were not sent yet. The store filters by
// device; the rest of the query is applied here.
func (t *tailer) poll(ctx context.Context) (tailMessage, error) {
	var msg tailMessage
	head, err := t.head.LastLogID(ctx)
	if err != nil {
		return msg, err
	}
	after, caughtUp := t.settled, false
	for range tailPages {
		// Only the device goes to the store: with it alone SQLite reads the primary key from the cursor on, where a
		// project would make it read the project's whole index of (source, time) every look.
		recs, err := t.scan.ScanLogs(ctx, lodestone.LogScan{DeviceID: t.q.f.DeviceID, AfterID: after,
			Limit: lodestone.MaxListLimit})
		if err != nil {
			return msg, err
		}
		for _, rec := range recs {
			if !t.sent[rec.ID] && t.q.match(rec, t.lower) {
				msg.Rows = append(msg.Rows, newLogRow(rec))
				t.sent[rec.ID] = true
			}
		}
		if len(recs) > 0 {
			after = recs[len(recs)-1].ID
		}
		if len(recs) < lodestone.MaxListLimit {
			caughtUp = true
			break
		}
	}
	t.heads = append(t.heads, head)
	if caughtUp {
		// Everything up to the head of tailLag looks ago had that long to commit.
		if len(t.heads) > tailLag {
			t.heads = t.heads[1:]
			t.settled = max(t.settled, t.heads[0])
		}
	} else {
		// Behind by more than one look can read: move on from what was read, late commits or not.
		t.settled, t.heads = after, nil
	}
	for id := range t.sent {
		if id <= t.settled {
			delete(t.sent, id)
		}
	}
	if len(msg.Rows) > tailMaxRows {
		msg.Skipped = len(msg.Rows) - tailMaxRows
		msg.Rows = msg.Rows[msg.Skipped:]
	}
	return msg, nil
}

// exportPage is how many records the export reads at a time.
const exportPage = lodestone.MaxListLimit

// logsExport streams the explorer's query as NDJSON, one record per line in the API's shape (GET /logs), newest
// first like the page. It pages by record time (keyset), never by a growing offset, so a large export costs what
// it reads; records sharing one timestamp beyond a page are paged by offset within that timestamp.
func (c *Console) logsExport(w http.ResponseWriter, r *request) error {
	if c.cfg.Logs.Logs == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not keep OTLP logs")
	}
	lq, err := parseLogQuery(r.URL.Query(), c.now())
	if err != nil {
		return err
	}
	ctx := r.ctx()
	f := lq.f
	f.Limit = exportPage
	page, err := c.cfg.Logs.Logs.FindLogs(ctx, f)
	if err != nil {
		return err // nothing written yet: an error page
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", `attachment; filename="lodestone-logs-`+c.now().UTC().Format("20060102T150405Z")+`.ndjson"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	var edgeTime time.Time // the last page ended at this record time and id: what is at or above it is written
	var edgeID int64
	haveEdge := false
	for {
		for _, rec := range page {
			if haveEdge && rec.Time.Equal(edgeTime) && rec.ID >= edgeID {
				continue
			}
			if err := enc.Encode(rec.JSON()); err != nil {
				return nil // the client went away
			}
		}
		rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if bw.Flush() != nil || rc.Flush() != nil {
			return nil
		}
		if len(page) < exportPage {
			return nil
		}
		last := page[len(page)-1]
		if haveEdge && last.Time.Equal(edgeTime) {
			f.Offset += len(page) // a whole page at one timestamp: step through it
		} else {
			edgeTime, edgeID, haveEdge = last.Time, last.ID, true
			f.Until, f.Offset = last.Time.Add(time.Nanosecond), 0
		}
		if page, err = c.cfg.Logs.Logs.FindLogs(ctx, f); err != nil {
			if ctx.Err() == nil {
				c.log.Error("console log export", "err", err)
			}
			// The download must not look complete: end the connection without the final chunk.
			panic(http.ErrAbortHandler)
		}
	}
}
