package ingest

import (
	"context"
	"sync"

	"github.com/lodestone-fleet/lodestone"
)

// KeyLinker makes a heartbeat's device key and the DeviceInfo id that sent it one device
// (lodestone.DeviceRegistry.LinkDeviceKey).
type KeyLinker interface {
	LinkDeviceKey(ctx context.Context, deviceID string, key uint32) (bool, error)
}

// linkedPair is a device and a key its heartbeats carried, checked once per process.
type linkedPair struct {
	device string
	key    uint32
}

// linkSeen remembers the pairs already checked, so the store is asked once per pair, not on every post.
type linkSeen struct {
	mu   sync.Mutex
	seen map[linkedPair]struct{}
}

// first reports whether p has not been checked yet and marks it; the set is bounded by clearing it.
func (l *linkSeen) first(p linkedPair) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[p]; ok {
		return false
	}
	if l.seen == nil || len(l.seen) >= 100_000 {
		l.seen = make(map[linkedPair]struct{})
	}
	l.seen[p] = struct{}{}
	return true
}

// link asks the store to link each device in the stored batches to the keys its heartbeats carried. A failure
// costs nothing stored: it is logged and tried again on a later post.
func (s *Service) link(ctx context.Context, batches []*lodestone.DeviceBatch) {
	if s.cfg.Linker == nil {
		return
	}
	for _, b := range batches {
		for i := range b.Heartbeats {
			key := b.Heartbeats[i].DeviceKey
			if key == 0 || b.DeviceID == lodestone.DeviceKeyID(key) {
				continue
			}
			p := linkedPair{b.DeviceID, key}
			if !s.linked.first(p) {
				continue
			}
			ok, err := s.cfg.Linker.LinkDeviceKey(ctx, b.DeviceID, key)
			if err != nil {
				s.linked.forget(p)
				s.log.Warn("ingest: linking a device key to its device", "device", b.DeviceID,
					"key", lodestone.DeviceKeyID(key), "err", err)
				continue
			}
			if ok {
				s.log.Info("ingest: device key linked to the device that reported it; its placeholder is gone",
					"device", b.DeviceID, "key", lodestone.DeviceKeyID(key))
			}
		}
	}
}

func (l *linkSeen) forget(p linkedPair) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.seen, p)
}
