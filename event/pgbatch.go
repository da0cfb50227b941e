package event

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/lodestone-fleet/lodestone"
)

// A row of the events table holds one batch written by a PGBus: up to MaxBatch events, encoded as a JSON array.
// One row per batch instead of one per event keeps the database's work per batch, not per event, which is what
// matters at ingest rates.

const batchBits = 12

// MaxBatch is the most events one row of the events table holds: the low 12 bits of an event id are the event's
// index within its row, the rest is the row's id. Ids so increase with rows and within each row.
const MaxBatch = 1 << batchBits

func eventID(row int64, index int) int64 { return row<<batchBits | int64(index) }

func rowOf(id int64) int64 { return id >> batchBits }

// wireEvent is an event as a row stores it; the id comes from the row and the event's place in it.
type wireEvent struct {
	Type     string          `json:"type"`
	DeviceID string          `json:"device_id"`
	Time     time.Time       `json:"time"`
	Data     json.RawMessage `json:"data"`
}

// encodeBatch appends batch to buf as a JSON array of wireEvents. Data goes in byte for byte (Publish checked that
// it is JSON), so subscribers get the text that was published, less any whitespace around it; json.Marshal would
// compact it and escape HTML.
func encodeBatch(buf []byte, batch []lodestone.Event) []byte {
	buf = append(buf, '[')
	for i, e := range batch {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"type":`...)
		buf = appendJSONString(buf, e.Type)
		buf = append(buf, `,"device_id":`...)
		buf = appendJSONString(buf, e.DeviceID)
		buf = append(buf, `,"time":"`...)
		buf = e.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `","data":`...)
		buf = append(buf, e.Data...)
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// appendJSONString appends s quoted; types and device ids are plain ASCII, the rest goes through encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// selectRows reads rows by id; see PGBus.read.
const selectRows = `SELECT id, count, data FROM events WHERE id >= $1 AND id <= $2 ORDER BY id LIMIT $3`

// A read returns at most pageRows rows, and stops after the row that brings it to pageEvents events, which
// bounds both its memory and the burst handed to subscribers at once.
const (
	pageRows   = 64
	pageEvents = 1000
)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// read returns the events with after < id <= upTo of a page of rows starting at row fromRow, oldest first;
// lastRow, the id of the last row read (0 if none); and more, whether the page was full so that later rows may
// follow. Pages are counted in rows and in the events of those rows, not in the events that pass the filter. A
// row that cannot be decoded is logged and skipped rather than stalling every reader behind it.
func (b *PGBus) read(ctx context.Context, q querier, fromRow, after, upTo int64) (evs []lodestone.Event,
	lastRow int64, more bool, err error) {
	rows, err := q.Query(ctx, selectRows, fromRow, rowOf(upTo), pageRows)
	if err != nil {
		return nil, 0, false, fmt.Errorf("event: read events after %d: %w", after, err)
	}
	defer rows.Close()
	n, events := 0, 0
	for events < pageEvents && rows.Next() {
		var count int
		var data []byte // fresh for each row: its events keep slices of it
		if err := rows.Scan(&lastRow, &count, &data); err != nil {
			return nil, 0, false, fmt.Errorf("event: read events after %d: %w", after, err)
		}
		n++
		events += count
		if evs, err = decodeRow(evs, lastRow, count, data, after, upTo); err != nil {
			b.log.Error("skipping an unreadable row of the events table", "row", lastRow, "err", err)
		}
	}
	rows.Close() // reads and discards what the page stopped before
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("event: read events after %d: %w", after, err)
	}
	return evs, lastRow, n == pageRows || events >= pageEvents, nil
}

// decodeRow appends the events of a row with after < id <= upTo to evs. Their Data are slices of data.
func decodeRow(evs []lodestone.Event, row int64, count int, data []byte, after, upTo int64) ([]lodestone.Event,
	error) {
	if count < 1 || count > MaxBatch {
		return evs, fmt.Errorf("row says it holds %d events", count)
	}
	batch, ok := decodeFast(data, count)
	if !ok {
		batch = nil
		if err := json.Unmarshal(data, &batch); err != nil {
			return evs, fmt.Errorf("decode: %w", err)
		}
	}
	if len(batch) != count {
		return evs, fmt.Errorf("row holds %d events, says %d", len(batch), count)
	}
	for i, w := range batch {
		if id := eventID(row, i); id > after && id <= upTo {
			evs = append(evs, lodestone.Event{ID: id, Type: w.Type, DeviceID: w.DeviceID, Time: w.Time.UTC(),
				Data: w.Data})
		}
	}
	return evs, nil
}

// newest returns the id of the newest event in the table, 0 if it is empty.
func newest(ctx context.Context, q querier) (int64, error) {
	var row int64
	var count int
	err := q.QueryRow(ctx, `SELECT id, count FROM events ORDER BY id DESC LIMIT 1`).Scan(&row, &count)
	if err == pgx.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("event: read newest event id: %w", err)
	}
	return eventID(row, count-1), nil
}

// decodeFast parses the layout encodeBatch writes, several times faster than encoding/json, which matters because
// every replica decodes every event. ok is false for anything else (strings with escapes, a row written by other
// means), which then goes through encoding/json.
func decodeFast(data []byte, count int) (batch []wireEvent, ok bool) {
	p := parser{b: data, ok: true}
	batch = make([]wireEvent, 0, count)
	p.lit("[")
	for p.ok && len(batch) < count {
		if len(batch) > 0 {
			p.lit(",")
		}
		var w wireEvent
		p.lit(`{"type":`)
		w.Type = p.str()
		p.lit(`,"device_id":`)
		w.DeviceID = p.str()
		p.lit(`,"time":`)
		t, err := time.Parse(time.RFC3339Nano, p.str())
		p.ok = p.ok && err == nil
		w.Time = t
		p.lit(`,"data":`)
		w.Data = p.value()
		p.lit("}")
		batch = append(batch, w)
	}
	p.lit("]")
	return batch, p.ok && p.i == len(p.b)
}

// parser reads the JSON that encodeBatch writes; any surprise clears ok, after which every call is a no-op.
type parser struct {
	b  []byte
	i  int
	ok bool
}

func (p *parser) lit(s string) {
	if p.ok && len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return
	}
	p.ok = false
}

// str reads a string without escapes.
func (p *parser) str() string {
	if !p.ok || p.i >= len(p.b) || p.b[p.i] != '"' {
		p.ok = false
		return ""
	}
	for j := p.i + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			p.ok = false
			return ""
		case '"':
			s := string(p.b[p.i+1 : j])
			p.i = j + 1
			return s
		}
	}
	p.ok = false
	return ""
}

// value reads one JSON value, which Publish checked, up to the comma or bracket that ends it.
func (p *parser) value() json.RawMessage {
	start, depth := p.i, 0
	for ; p.ok && p.i < len(p.b); p.i++ {
		switch p.b[p.i] {
		case '"':
			for p.i++; p.i < len(p.b) && p.b[p.i] != '"'; p.i++ {
				if p.b[p.i] == '\\' {
					p.i++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return bytes.TrimSpace(p.b[start:p.i:p.i]) // as encoding/json would
			}
			depth--
		case ',':
			if depth == 0 {
				return bytes.TrimSpace(p.b[start:p.i:p.i]) // as encoding/json would
			}
		}
	}
	p.ok = false
	return nil
}
