package lodestone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Audit target kinds, the TargetKind of an entry.
const (
	AuditUser        = "user"
	AuditToken       = "token"      // an API token
	AuditDeviceKey   = "device_key" // a device's ingest key
	AuditOTLPToken   = "otlp_token"
	AuditDevice      = "device"
	AuditGroup       = "group"
	AuditGroupMember = "group_member" // target "<group id>/<device_id>"
	AuditFirmware    = "firmware"
	AuditOTATarget   = "ota_target" // target: the device_id
	AuditCampaign    = "campaign"
	AuditCrashIssue  = "crash_issue"
	AuditELF         = "elf"
	AuditRetention   = "retention"
	AuditAlertRule   = "alert_rule"
	AuditBackup      = "backup"
	AuditLogTarget   = "audit_log"
)

// ActionAuditPrune is the entry a prune of old audit entries leaves: its After holds the last pruned entry's id
// and hash ({"through_id":…,"last_hash":…}), so the oldest retained entry still links to something verifiable.
const ActionAuditPrune = "audit.prune"

// auditIntent is an action a caller declared for the store writes it makes with a context.
type auditIntent struct {
	action string
	mu     sync.Mutex
	done   bool
}

type auditIntentKey struct{}

// WithAudit declares that the writes made with the returned context carry out one operator action named action
// ("campaign.activate"): the first store write records it under that name, and the later writes of the same
// action record nothing. Without a declaration every store write made for an operator records its own entry,
// named by the store ("campaign.status"). An outer declaration stands: the entry point knows best what the
// operator asked for, so a service declaring its own action inside it changes nothing.
func WithAudit(ctx context.Context, action string) context.Context {
	if _, ok := ctx.Value(auditIntentKey{}).(*auditIntent); ok {
		return ctx
	}
	return context.WithValue(ctx, auditIntentKey{}, &auditIntent{action: action})
}

// AuditFor returns the entry a store records for a write made with ctx, with the actor, the request and the
// action (the declared one, else def) filled in; the store adds the target, the images and the time. It is nil
// when the write is no operator action: no principal (ingest, background work), a device, or a declared action
// whose entry an earlier write already took.
func AuditFor(ctx context.Context, def string) *AuditEntry {
	p := PrincipalFromContext(ctx)
	if p == nil {
		return nil
	}
	kind := p.ActorKind()
	if kind == ActorDevice {
		return nil
	}
	action := def
	if in, ok := ctx.Value(auditIntentKey{}).(*auditIntent); ok {
		in.mu.Lock()
		done := in.done
		in.done = true
		in.mu.Unlock()
		if done {
			return nil
		}
		action = in.action
	}
	r := AuditRequestFromContext(ctx)
	e := &AuditEntry{ActorKind: kind, Actor: p.Name, Action: action, ClientAddr: r.ClientAddr,
		RequestID: r.RequestID, Via: r.Via}
	if kind == ActorToken && p.TokenID != 0 {
		e.ActorID = fmt.Sprint(p.TokenID)
	}
	return e
}

// RecordAudit appends an entry for an action that changes no database row (a backup download, an MCP read, the
// start of a retention run) to log, for the caller ctx carries; after, when not nil, is marshalled as the after
// image and must hold no secret. It records nothing when ctx carries no operator (see AuditFor) or log is nil.
// Changes to rows need no call: the store records them in their own transaction.
func RecordAudit(ctx context.Context, log AuditLog, action, targetKind, target string, after any) error {
	if log == nil {
		return nil
	}
	e := AuditFor(ctx, action)
	if e == nil {
		return nil
	}
	e.TargetKind, e.Target = targetKind, target
	if after != nil {
		b, err := json.Marshal(after)
		if err != nil {
			return fmt.Errorf("audit %s: %w", action, err)
		}
		e.After = b
	}
	return log.AppendAudit(ctx, e)
}

// SystemContext returns ctx acting as lodestone itself (ActorSystem) for the job named name ("retention"), so
// what a scheduled job changes is audited like an operator's change.
func SystemContext(ctx context.Context, name string) context.Context {
	return NewContextWithPrincipal(ctx, &Principal{Name: name, Kind: ActorSystem})
}

// ComputeHash returns the hex SHA-256 that chains e: it covers every field but Hash, PrevHash included, with the
// time at millisecond precision as stored.
func (e *AuditEntry) ComputeHash() string {
	b, _ := json.Marshal([]any{e.ID, e.Time.UnixMilli(), e.ActorKind, e.Actor, e.ActorID, e.Action, e.TargetKind,
		e.Target, string(e.Before), string(e.After), e.ClientAddr, e.RequestID, e.Via, e.PrevHash})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AuditHead is the newest entry as the chain head records it; a deleted newest entry shows against it.
type AuditHead struct {
	ID   int64  `json:"id"`
	Hash string `json:"hash"`
}

// AuditVerification is the outcome of checking the chain.
type AuditVerification struct {
	OK      bool   `json:"ok"`
	Checked int64  `json:"checked"`  // entries read
	FirstID int64  `json:"first_id"` // the oldest retained entry
	LastID  int64  `json:"last_id"`  // the newest entry
	BadID   int64  `json:"bad_id,omitempty"`
	Problem string `json:"problem,omitempty"` // what is wrong with entry BadID, the oldest entry found wrong
}

// auditPrune is the After of an ActionAuditPrune entry.
type auditPrune struct {
	ThroughID int64  `json:"through_id"`
	LastHash  string `json:"last_hash"`
}

// AuditPruneAfter is the After image of the entry a prune through entry id (whose hash was hash) leaves.
func AuditPruneAfter(throughID int64, lastHash string) json.RawMessage {
	b, _ := json.Marshal(auditPrune{ThroughID: throughID, LastHash: lastHash})
	return b
}

// VerifyAuditChain reads the whole log newest first, page by page, and checks that every entry's hash matches its
// content, that ids run without a gap, that each entry names its predecessor's hash, that the oldest retained
// entry is the first ever or one a prune entry accounts for, and, when head is given (read before the walk), that
// the entry it names is there with its hash. It reports the oldest entry found wrong.
func VerifyAuditChain(ctx context.Context, log AuditLog, head *AuditHead) (*AuditVerification, error) {
	v := &AuditVerification{}
	bad := func(id int64, format string, args ...any) {
		v.BadID, v.Problem = id, fmt.Sprintf(format, args...) // walking down, the last one set is the oldest
	}
	prunes := map[int64]string{} // through_id -> last_hash
	var newer *AuditEntry
	before := int64(0)
	for {
		page, err := log.FindAudit(ctx, AuditFilter{BeforeID: before, Limit: MaxListLimit})
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			v.Checked++
			if newer == nil {
				v.LastID = e.ID
				if head != nil && e.ID < head.ID {
					bad(e.ID, "the chain head names entry %d, but the newest entry is %d (newer entries deleted)",
						head.ID, e.ID)
				}
			} else {
				switch {
				case newer.ID != e.ID+1:
					bad(newer.ID, "entries %d to %d are missing", e.ID+1, newer.ID-1)
				case newer.PrevHash != e.Hash:
					bad(newer.ID, "its prev_hash does not match the hash of entry %d", e.ID)
				}
			}
			// Entries appended after the head was read are newer than it; the head's own entry must match it.
			if head != nil && e.ID == head.ID && e.Hash != head.Hash {
				bad(e.ID, "its hash is not the one the chain head names")
			}
			if e.ComputeHash() != e.Hash {
				bad(e.ID, "its content does not match its hash (the row was edited)")
			}
			if e.Action == ActionAuditPrune && e.TargetKind == AuditLogTarget {
				var p auditPrune
				if json.Unmarshal(e.After, &p) == nil {
					prunes[p.ThroughID] = p.LastHash
				}
			}
			newer = e
		}
		if len(page) < MaxListLimit {
			break
		}
		before = page[len(page)-1].ID
	}
	if newer == nil {
		if head != nil && head.ID != 0 {
			bad(head.ID, "the log is empty but the chain head names entry %d", head.ID)
		}
		v.OK = v.BadID == 0
		return v, nil
	}
	v.FirstID = newer.ID
	if newer.ID == 1 {
		if newer.PrevHash != "" {
			bad(newer.ID, "the first entry names a predecessor")
		}
	} else if h, ok := prunes[newer.ID-1]; !ok || h != newer.PrevHash {
		bad(newer.ID, "entries before it are missing and no %s entry accounts for them", ActionAuditPrune)
	}
	v.OK = v.BadID == 0
	return v, nil
}

// AuditStore is the audit log as a backend keeps it: the log, its chain head and its retention.
type AuditStore interface {
	AuditLog
	// AuditHead returns the newest entry as the chain head records it (zero when the log is empty).
	AuditHead(ctx context.Context) (AuditHead, error)
	// PruneAudit deletes the entries older than before, except the newest one, and records the prune as an
	// ActionAuditPrune entry in the same transaction, so the chain stays verifiable. It returns how many it
	// deleted; a prune that deletes nothing records nothing.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
}
