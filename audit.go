package lodestone

import (
	"context"
	"encoding/json"
	"time"
)

// Audit actor kinds: who did it.
const (
	ActorUser   = "user"   // a signed-in user (Basic, session or OIDC)
	ActorToken  = "token"  // an API token
	ActorDevice = "device" // a device with its own key (DDI feedback, FUOTA device calls are not operator actions)
	ActorFUOTA  = "fuota"  // the FUOTA management login
	ActorSystem = "system" // lodestone itself: retention runs, campaign health gate, scheduled backups
)

// Audit channels: where the action came in.
const (
	ViaAPI     = "api"
	ViaConsole = "console"
	ViaMCP     = "mcp"
	ViaCLI     = "cli"
)

// AuditEntry is one operator action, recorded append-only. Before and After are JSON snapshots of the target
// without secrets. Hash chains the entry to the previous one (PrevHash) so an edited or deleted row is evident.
type AuditEntry struct {
	ID         int64
	Time       time.Time
	ActorKind  string // ActorUser, ActorToken, ActorDevice, ActorFUOTA, ActorSystem
	Actor      string // user name, token name, device id or FUOTA login
	ActorID    string // token id when ActorKind is ActorToken; empty otherwise
	Action     string // dotted verb, for example "group.create", "campaign.pause", "crash_issue.resolve"
	TargetKind string // "group", "device", "campaign", …
	Target     string // the target's id
	Before     json.RawMessage
	After      json.RawMessage
	ClientAddr string
	RequestID  string
	Via        string // ViaAPI, ViaConsole, ViaMCP, ViaCLI
	PrevHash   string
	Hash       string
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	Actor  string // empty: any
	Action string // empty: any; a trailing ".*" matches a prefix ("campaign.*")
	Target string // empty: any
	// TargetKind narrows Target to one kind of target ("group"); empty: any.
	TargetKind string
	Since      time.Time
	Until      time.Time
	BeforeID   int64 // keyset pagination: entries with ID < BeforeID; 0: from the newest
	Limit      int   // 0: backend default
}

// AuditLog records operator actions. Stores record the entries a change carries in its context (see
// WithAudit) in the same transaction as the change; Append is for actions that touch no database row (an
// MCP read, a backup download).
type AuditLog interface {
	AppendAudit(ctx context.Context, e *AuditEntry) error
	FindAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
}

// AuditRequest is what an entry point knows about the caller of the work a context belongs to.
type AuditRequest struct {
	ClientAddr string
	RequestID  string
	Via        string
}

type auditRequestKey struct{}

// NewContextWithAuditRequest returns ctx carrying the caller's address, request id and channel.
func NewContextWithAuditRequest(ctx context.Context, r AuditRequest) context.Context {
	return context.WithValue(ctx, auditRequestKey{}, r)
}

// AuditRequestFromContext returns what NewContextWithAuditRequest stored, or the zero value.
func AuditRequestFromContext(ctx context.Context) AuditRequest {
	r, _ := ctx.Value(auditRequestKey{}).(AuditRequest)
	return r
}
