package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lodestone-fleet/lodestone"
)

// BatchEvents appends the live events of one committed batch to dst, with ferrite's event names and data shapes
// (spec §2.11). ferrite emits them in body order; a batch keeps order only within each kind, so they come in the
// order of an SDK upload session: reboots, faults, metrics, heartbeats.
func BatchEvents(dst []lodestone.Event, b *lodestone.DeviceBatch) []lodestone.Event {
	ev := func(typ string, data []byte) lodestone.Event {
		return lodestone.Event{Type: typ, DeviceID: b.DeviceID, Time: b.ReceivedAt, Data: json.RawMessage(data)}
	}
	dev := appendString(make([]byte, 0, 64), b.DeviceID)
	start := func(n int) []byte {
		d := make([]byte, 0, len(dev)+n)
		d = append(d, `{"device_id":`...)
		return append(d, dev...)
	}
	for i := range b.Reboots {
		d := append(start(16), `,"reason":`...)
		d = strconv.AppendUint(d, uint64(b.Reboots[i].Reason), 10)
		dst = append(dst, ev(lodestone.EventReboot, append(d, '}')))
	}
	for i := range b.Faults {
		f := &b.Faults[i]
		d := append(start(48), `,"fault_type":`...)
		d = strconv.AppendUint(d, uint64(f.FaultType), 10)
		d = append(d, `,"pc":"0x`...)
		d = appendHex32(d, f.Registers.PC)
		dst = append(dst, ev(lodestone.EventFault, append(d, `"}`...)))
	}
	for i := range b.Metrics {
		m := &b.Metrics[i]
		d := append(start(len(m.Key)+64), `,"key":`...)
		d = appendString(d, m.Key)
		d = append(d, `,"value":`...)
		d = appendString(d, m.ValueJSON())
		dst = append(dst, ev(lodestone.EventMetric, append(d, '}')))
	}
	for i := range b.Heartbeats {
		d := append(start(40), `,"uptime_ticks":`...)
		d = strconv.AppendUint(d, b.Heartbeats[i].UptimeTicks, 10)
		dst = append(dst, ev(lodestone.EventHeartbeat, append(d, '}')))
	}
	return dst
}

// DeviceOfflineEvent is lodestone's device_offline event: {"device_id":...}.
func DeviceOfflineEvent(deviceID string) lodestone.Event {
	d := append([]byte(`{"device_id":`), appendString(nil, deviceID)...)
	return lodestone.Event{Type: lodestone.EventDeviceOffline, DeviceID: deviceID, Data: append(d, '}')}
}

// appendHex32 writes v as eight uppercase hex digits, ferrite's "0x%08X".
func appendHex32(d []byte, v uint32) []byte {
	const digits = "0123456789ABCDEF"
	for shift := 28; shift >= 0; shift -= 4 {
		d = append(d, digits[v>>uint(shift)&0xF])
	}
	return d
}

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, so the text is valid JSON everywhere,
// PostgreSQL's json type included.
func appendString(d []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = string([]rune(s)) // each invalid byte becomes U+FFFD
	}
	const hex = "0123456789abcdef"
	d = append(d, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			d = append(d, '\\', c)
		case c < 0x20:
			d = append(d, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			d = append(d, c)
		}
	}
	return append(d, '"')
}

// publisher sends the events of committed batches from its own goroutine, so neither the writer nor the clients
// it answers wait for subscribers or for a shared bus.
type publisher struct {
	pub     lodestone.EventPublisher
	demand  lodestone.EventDemand // pub, when it can tell that nobody wants events; else nil
	log     *slog.Logger
	pending chan []*lodestone.DeviceBatch
	done    chan struct{}
	once    sync.Once
	lost    atomic.Uint64 // batches skipped because the publisher was behind
}

func newPublisher(pub lodestone.EventPublisher, log *slog.Logger) *publisher {
	p := &publisher{pub: pub, log: log, pending: make(chan []*lodestone.DeviceBatch, 256),
		done: make(chan struct{})}
	p.demand, _ = pub.(lodestone.EventDemand)
	go p.run()
	return p
}

// committed hands over batches that are durable. It never blocks: if the publisher is that far behind, the
// events of these batches are dropped (the data is stored; only its live notification is lost).
func (p *publisher) committed(batches []*lodestone.DeviceBatch) {
	select {
	case p.pending <- batches:
	default:
		p.lost.Add(uint64(len(batches)))
	}
}

// lossLogEvery spaces the warnings about lost events, which under overload would otherwise come with every commit.
const lossLogEvery = 10 * time.Second

func (p *publisher) run() {
	defer close(p.done)
	var evs []lodestone.Event
	var failed int
	var lastErr error
	var lastLog time.Time
	var groups [][]*lodestone.DeviceBatch
	wanted := true
	linger := time.NewTimer(0)
	<-linger.C
	for first := range p.pending {
		groups = append(groups[:0], first)
		if p.demand != nil {
			if !wanted {
				// Nobody wanted the last ones: gather for a moment, so one question covers many commits.
				linger.Reset(demandLinger)
			gather:
				for {
					select {
					case g, ok := <-p.pending:
						if !ok {
							break gather
						}
						groups = append(groups, g)
					case <-linger.C:
						break gather
					}
				}
				if !linger.Stop() {
					select {
					case <-linger.C:
					default:
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			wanted = p.demand.Wanted(ctx)
			cancel()
			if !wanted {
				continue
			}
		}
		for _, batches := range groups {
			evs, failed, lastErr = p.publish(evs, batches, failed, lastErr)
		}
		lost := p.lost.Swap(0)
		if (failed > 0 || lost > 0) && time.Since(lastLog) >= lossLogEvery {
			p.log.Warn("live events lost (the stored data is not affected)", "failed_events", failed,
				"skipped_batches", lost, "err", lastErr)
			failed, lastErr, lastLog = 0, nil, time.Now()
		} else if lost > 0 {
			p.lost.Add(lost) // reported with the next warning
		}
	}
	if lost := p.lost.Load(); failed > 0 || lost > 0 {
		p.log.Warn("live events lost (the stored data is not affected)", "failed_events", failed,
			"skipped_batches", lost, "err", lastErr)
	}
}

// demandLinger is how long the publisher gathers commits before it asks again whether anyone wants events, after
// nobody did.
const demandLinger = 20 * time.Millisecond

// publish builds and publishes the events of batches, counting failures.
func (p *publisher) publish(evs []lodestone.Event, batches []*lodestone.DeviceBatch, failed int, lastErr error) (
	[]lodestone.Event, int, error) {
	for _, b := range batches {
		evs = BatchEvents(evs[:0], b)
		for _, e := range evs {
			if err := p.pub.Publish(context.Background(), e); err != nil {
				failed++
				lastErr = err
			}
		}
	}
	return evs, failed, lastErr
}

// close publishes what is pending and stops.
func (p *publisher) close() {
	p.once.Do(func() { close(p.pending) })
	<-p.done
}
