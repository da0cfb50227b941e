// Package ingest turns ferrite chunk streams into domain records: it decodes, decrypts and decompresses chunks,
// attributes each one to its device, and stores the result through a group-commit writer.
package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/chunk"
)

// Config tunes the ingest service.
type Config struct {
	// Cipher decrypts chunks flagged encrypted; nil means encrypted chunks are rejected.
	Cipher *chunk.Cipher
	// AddrWindow is how long a client address stays attributed to the device it identified last; 0 disables.
	AddrWindow time.Duration
	// MaxErrors caps the error strings in one response; the rest are counted.
	MaxErrors int
	// Linker, if set, links a heartbeat's device key to the DeviceInfo id that sent it (README "One device, one
	// identity").
	Linker KeyLinker
}

// Service ingests chunk streams.
type Service struct {
	w      *Writer
	cfg    Config
	log    *slog.Logger
	recent *recentDevices
	linked linkSeen
	now    func() time.Time
	pool   sync.Pool

	requests atomic.Uint64
	chunks   atomic.Uint64
}

// NewService returns a service that stores through w.
func NewService(w *Writer, cfg Config, log *slog.Logger) *Service {
	if cfg.MaxErrors <= 0 {
		cfg.MaxErrors = 100
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Service{w: w, cfg: cfg, log: log, recent: newRecentDevices(cfg.AddrWindow, 100_000), now: time.Now}
	s.pool.New = func() any { return &decodeBuf{} }
	return s
}

type decodeBuf struct {
	frames  []chunk.Frame
	bad     []chunk.BadSpan
	metrics []chunk.Metric
}

// Request is one body of concatenated chunks and what is known about its sender.
type Request struct {
	Body           []byte
	HeaderDeviceID string // X-Device-Id, already validated; "" when absent
	// KeyDevice is the device whose own key authenticated the request, "" for the fleet's ingest key (gateways
	// post many devices in one body). A device key speaks only for its device: a DeviceInfo naming another one
	// refuses the whole request with EFORBIDDEN, as a mismatched X-Device-Id does, and nothing is stored.
	KeyDevice  string
	RemoteAddr string // client IP, for attribution of headerless per-chunk clients
	Conn       *Conn  // the client connection's attribution state; may be nil
}

// Result is what happened to a request's chunks.
type Result struct {
	ChunksReceived int      // well-framed chunks found in the body
	Stored         int      // chunks whose data was stored
	Errors         []string // every problem, one line each
	// Reported names the devices whose DeviceInfo was stored, with what they said they run (for OTA: install
	// confirmation and the update offer in the answer). Filled only after the data is committed.
	Reported []lodestone.DeviceBatch
}

// Counters reports requests and chunks ingested since start.
func (s *Service) Counters() (requests, chunks uint64) { return s.requests.Load(), s.chunks.Load() }

// Ingest decodes and stores one request. Problems with the data itself are in Result.Errors, and the rest of the
// body is stored. The error refuses the whole request: EINVALID for a bad X-Device-Id, EFORBIDDEN for a device
// key speaking for another device (nothing is stored), and EUNAVAILABLE only when storage failed or is overloaded
// or no key decrypts the body's encrypted chunks (the client should retry).
func (s *Service) Ingest(ctx context.Context, req Request) (Result, error) {
	now := s.now().UTC()
	if req.HeaderDeviceID != "" {
		if err := checkText("X-Device-Id", req.HeaderDeviceID, false); err != nil {
			return Result{}, lodestone.Errorf(lodestone.EINVALID, "%v", err)
		}
	}
	if req.KeyDevice != "" {
		if req.HeaderDeviceID != "" && req.HeaderDeviceID != req.KeyDevice {
			return Result{}, lodestone.Errorf(lodestone.EFORBIDDEN, "this device key belongs to device %q, not %q",
				req.KeyDevice, req.HeaderDeviceID)
		}
		req.HeaderDeviceID = req.KeyDevice
	}
	cur := req.HeaderDeviceID
	if cur == "" {
		cur = req.Conn.get()
	}
	if cur == "" {
		cur = s.recent.get(req.RemoteAddr, now)
	}
	p := s.parse(req.Body, cur, req.KeyDevice, now)
	res := &p.res
	s.requests.Add(1)
	s.chunks.Add(uint64(res.ChunksReceived))
	if p.foreign != "" {
		return Result{ChunksReceived: res.ChunksReceived}, lodestone.Errorf(lodestone.EFORBIDDEN,
			"this device key belongs to device %q, but the DeviceInfo at byte %d names %q: nothing was stored",
			req.KeyDevice, p.foreignAt, p.foreign)
	}
	if p.needKey {
		// A configuration gap, not bad data: refuse the whole request so that gateways keep it and retry, and
		// nothing is stored twice when they do.
		s.log.Error("encrypted chunks received but CHUNK_ENCRYPTION_KEY is not set; requests are refused with 503",
			"remote", req.RemoteAddr)
		return Result{ChunksReceived: res.ChunksReceived}, ErrNoKey
	}
	if len(res.Errors) > 0 {
		s.log.Debug("ingest request with bad chunks", "remote", req.RemoteAddr, "chunks", res.ChunksReceived,
			"stored", res.Stored, "errors", len(res.Errors), "first", res.Errors[0])
	}
	if len(p.batches) > 0 {
		batches, err := s.write(ctx, p)
		if err != nil {
			return Result{ChunksReceived: res.ChunksReceived}, err
		}
		s.link(ctx, batches)
		if p.cur != "" {
			req.Conn.set(p.cur)
			s.recent.set(req.RemoteAddr, p.cur, now)
		}
		for _, b := range batches {
			if b.Info != nil {
				res.Reported = append(res.Reported, lodestone.DeviceBatch{DeviceID: b.DeviceID, Info: b.Info})
			}
		}
	}
	return *res, nil
}

// write stores the request's batches and returns those that were stored. The store refusing data (EINVALID)
// means validation let through something it cannot hold: then each device's batch is stored on its own, so that
// one device's data cannot cost the others theirs, and each refused one is reported as that device's error rather
// than failing the request. Any other error is the store's (overload, a failure) and fails the request, which
// the client retries.
func (s *Service) write(ctx context.Context, p *processor) ([]*lodestone.DeviceBatch, error) {
	err := s.w.Write(ctx, p.batches)
	if err == nil {
		return p.batches, nil
	}
	if lodestone.ErrorCode(err) != lodestone.EINVALID {
		return nil, err
	}
	var kept []*lodestone.DeviceBatch
	for _, b := range p.batches {
		if len(p.batches) > 1 {
			if err = s.w.Write(ctx, []*lodestone.DeviceBatch{b}); err == nil {
				kept = append(kept, b)
				continue
			}
			if lodestone.ErrorCode(err) != lodestone.EINVALID {
				return nil, err
			}
		}
		s.log.Warn("ingest: the store refused a device's data that passed validation", "device", b.DeviceID,
			"err", err)
		n := p.storedFor[b.DeviceID]
		p.res.Stored -= n
		p.errorf("device %q: %d chunk(s) not stored: %s", b.DeviceID, n, lodestone.ErrorMessage(err))
	}
	return kept, nil
}

// Parse turns a body into the batches Ingest would store, without storing them. Chunks before the first DeviceInfo
// belong to device (which may be empty). It is how the load generator measures the store alone.
func (s *Service) Parse(body []byte, device string, now time.Time) ([]*lodestone.DeviceBatch, Result) {
	p := s.parse(body, device, "", now)
	return p.batches, p.res
}

// ErrNoKey refuses a request that holds encrypted chunks while no key is configured.
var ErrNoKey = lodestone.Errorf(lodestone.EUNAVAILABLE,
	"encrypted chunks but this server has no CHUNK_ENCRYPTION_KEY: nothing was stored, retry once it is configured")

// parse decodes body into batches, which copy everything they keep from body and the decode buffers.
func (s *Service) parse(body []byte, device, keyDevice string, now time.Time) *processor {
	buf := s.pool.Get().(*decodeBuf)
	defer s.pool.Put(buf)
	buf.frames, buf.bad = chunk.DecodeStream(body, buf.frames[:0], buf.bad[:0])

	p := &processor{s: s, buf: buf, now: now, cur: device, keyDevice: keyDevice,
		res: Result{ChunksReceived: len(buf.frames)}}
	for _, b := range buf.bad {
		p.errorf("undecodable %v", b.Error())
	}
	for i := range buf.frames {
		p.frame(&buf.frames[i])
	}
	if p.unattributed > 0 {
		p.errorf("%d chunk(s) belong to no device (first at byte %d): send a DeviceInfo chunk first or set the "+
			"X-Device-Id header", p.unattributed, p.firstUnattributed)
	}
	if p.dropped > 0 {
		p.res.Errors = append(p.res.Errors, fmt.Sprintf("... and %d more error(s)", p.dropped))
	}
	return p
}

// processor holds the state of one request while its frames are turned into batches.
type processor struct {
	s       *Service
	buf     *decodeBuf
	now     time.Time
	res     Result
	cur     string
	batches []*lodestone.DeviceBatch
	byID    map[string]*lodestone.DeviceBatch

	unattributed      int
	firstUnattributed int
	dropped           int
	needKey           bool // an encrypted chunk arrived and there is no key

	storedFor map[string]int // chunks stored per device, to correct Stored when a device's batch is refused
	keyDevice string         // see Request.KeyDevice
	foreign   string         // the first device a DeviceInfo named other than keyDevice
	foreignAt int
}

func (p *processor) stored() {
	p.res.Stored++
	if p.storedFor == nil {
		p.storedFor = make(map[string]int, 1)
	}
	p.storedFor[p.cur]++
}

func (p *processor) errorf(format string, args ...any) {
	if len(p.res.Errors) >= p.s.cfg.MaxErrors {
		p.dropped++
		return
	}
	p.res.Errors = append(p.res.Errors, fmt.Sprintf(format, args...))
}

// batch returns the batch of the current device, creating it on first use.
func (p *processor) batch() *lodestone.DeviceBatch {
	if b, ok := p.byID[p.cur]; ok {
		return b
	}
	if p.byID == nil {
		p.byID = make(map[string]*lodestone.DeviceBatch, 1)
	}
	b := &lodestone.DeviceBatch{DeviceID: p.cur, ReceivedAt: p.now}
	p.byID[p.cur] = b
	p.batches = append(p.batches, b)
	return b
}

func (p *processor) frame(f *chunk.Frame) {
	ch := f.Chunk
	if ch.Flags&chunk.FlagEncrypted != 0 {
		if p.s.cfg.Cipher == nil {
			p.needKey = true
			p.errorf("chunk seq=%d type=%s at byte %d is encrypted but no CHUNK_ENCRYPTION_KEY is configured",
				ch.Seq, ch.Type, f.Offset)
			return
		}
		var err error
		if ch, err = p.s.cfg.Cipher.Decrypt(ch); err != nil {
			// ferrite's wording, so existing tooling still matches it.
			p.errorf("failed to decrypt chunk seq=%d type=%s", ch.Seq, ch.Type)
			return
		}
	}
	if ch.Flags&chunk.FlagCompressed != 0 {
		var err error
		if ch, err = chunk.Decompress(ch); err != nil {
			p.errorf("failed to decompress chunk seq=%d type=%s: %v", ch.Seq, ch.Type, err)
			return
		}
	}
	if ch.Type == chunk.TypeDeviceInfo {
		di, err := chunk.ParseDeviceInfo(ch.Payload)
		var infoErr error
		if err == nil {
			err, infoErr = checkDeviceInfo(di)
		}
		if err != nil {
			// The chunks after it belong to a device we cannot name; never give them to the previous one.
			p.cur = ""
			p.errorf("chunk seq=%d type=DeviceInfo at byte %d: %v", ch.Seq, f.Offset, err)
			return
		}
		if p.keyDevice != "" && di.DeviceID != p.keyDevice {
			if p.foreign == "" {
				p.foreign, p.foreignAt = di.DeviceID, f.Offset
			}
			p.cur = ""
			return
		}
		p.cur = di.DeviceID
		if infoErr != nil {
			// The device is known, so its other chunks are kept; only what it says it runs is not.
			p.errorf("chunk seq=%d type=DeviceInfo at byte %d: %v", ch.Seq, f.Offset, infoErr)
			return
		}
		p.batch().Info = &lodestone.DeviceInfo{FirmwareVersion: di.FirmwareVersion, BuildID: di.BuildID}
		p.stored()
		return
	}
	if p.cur == "" {
		if p.unattributed == 0 {
			p.firstUnattributed = f.Offset
		}
		p.unattributed++
		return
	}
	if err := p.record(ch); err != nil {
		p.errorf("chunk seq=%d type=%s at byte %d: %v", ch.Seq, ch.Type, f.Offset, err)
	}
}

// record parses one attributed chunk into the current device's batch.
func (p *processor) record(ch chunk.Chunk) error {
	switch ch.Type {
	case chunk.TypeHeartbeat:
		h, err := chunk.ParseHeartbeat(ch.Payload)
		if err != nil {
			return err
		}
		b := p.batch()
		b.Heartbeats = append(b.Heartbeats, lodestone.Heartbeat{UptimeTicks: h.UptimeTicks, FreeStack: h.FreeStack,
			MetricsCount: h.MetricsCount, FramesLost: h.FramesLost, DeviceKey: h.DeviceKey})
	case chunk.TypeMetrics:
		var err error
		p.buf.metrics, err = chunk.ParseMetrics(p.buf.metrics[:0], ch.Payload)
		var badKeys int
		var firstBad error
		for i, m := range p.buf.metrics {
			if kerr := checkMetricKey(m.Key); kerr != nil {
				if badKeys++; firstBad == nil {
					firstBad = fmt.Errorf("entry %d: %w", i+1, kerr)
				}
				continue
			}
			b := p.batch()
			b.Metrics = append(b.Metrics, metric(m))
		}
		if firstBad != nil {
			// The other entries are kept.
			dropped := fmt.Errorf("%d metric(s) dropped, first %w", badKeys, firstBad)
			if err != nil {
				return fmt.Errorf("%w; %w", err, dropped)
			}
			return dropped
		}
		if err != nil {
			// The entries before a truncated one are kept.
			return err
		}
	case chunk.TypeFaultRecord:
		f, err := chunk.ParseFault(ch.Payload)
		if err != nil {
			return err
		}
		b := p.batch()
		b.Faults = append(b.Faults, fault(f))
	case chunk.TypeRebootReason:
		r, err := chunk.ParseReboot(ch.Payload)
		if err != nil {
			return err
		}
		b := p.batch()
		b.Reboots = append(b.Reboots, lodestone.Reboot{Reason: r.Reason, Extra: r.Extra,
			BootSequence: r.BootSequence, UptimeBeforeReboot: r.UptimeBeforeReboot})
	case chunk.TypeTraceFragment:
		t, err := chunk.ParseTraceFragment(ch.Payload)
		if err == nil {
			err = checkTraceFragment(t)
		}
		if err != nil {
			return err
		}
		b := p.batch()
		// Copy: the body buffer is reused once the request ends.
		b.TraceFragments = append(b.TraceFragments, lodestone.TraceFragment{Offset: t.Offset,
			Data: bytes.Clone(t.Data), Last: ch.Flags&chunk.FlagLast != 0})
	case chunk.TypeOtaRequest:
		o, err := chunk.ParseOtaRequest(ch.Payload)
		if err != nil {
			return err
		}
		b := p.batch()
		b.OtaRequests = append(b.OtaRequests, lodestone.OtaRequest{BuildID: o.BuildID,
			MaxChunkSize: o.MaxChunkSize, OtaCapable: o.OtaCapable})
	default:
		return fmt.Errorf("unsupported chunk type")
	}
	p.stored()
	return nil
}

func metric(m chunk.Metric) lodestone.Metric {
	out := lodestone.Metric{Key: m.Key, Type: lodestone.MetricType(m.Type), Ticks: m.Ticks}
	switch m.Type {
	case chunk.MetricCounter:
		out.Value = float64(m.Counter())
	case chunk.MetricGauge:
		out.Value = float64(m.Gauge())
	case chunk.MetricHistogram:
		out.Value, out.Max = float64(m.HistogramMin()), float64(m.HistogramMax())
	default:
		out.Raw = append([]byte(nil), m.Value[:]...)
	}
	return out
}

func fault(f chunk.Fault) lodestone.Fault {
	return lodestone.Fault{
		FaultType: f.Type,
		Registers: lodestone.Registers{R0: f.R0, R1: f.R1, R2: f.R2, R3: f.R3, R12: f.R12, LR: f.LR, PC: f.PC,
			XPSR: f.XPSR, R4: f.R4_11[0], R5: f.R4_11[1], R6: f.R4_11[2], R7: f.R4_11[3], R8: f.R4_11[4],
			R9: f.R4_11[5], R10: f.R4_11[6], R11: f.R4_11[7], SP: f.SP},
		Stack: f.Stack, CFSR: f.CFSR, HFSR: f.HFSR, MMFAR: f.MMFAR, BFAR: f.BFAR,
	}
}

// Contact records that a device made contact outside a chunk upload (a hawkBit DDI poll): it is created on first
// contact, its last contact is updated, and info, when given, is the firmware it now runs. It goes through the
// same group-commit writer as telemetry.
func (s *Service) Contact(ctx context.Context, deviceID string, info *lodestone.DeviceInfo, at time.Time) error {
	return s.w.Write(ctx, []*lodestone.DeviceBatch{{DeviceID: deviceID, ReceivedAt: at, Info: info}})
}
