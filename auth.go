package lodestone

import "context"

// Role is what a user or API token may do. Roles are ordered: each includes the ones below it.
type Role int

const (
	RoleNone        Role = iota
	RoleViewer           // reads devices, telemetry, crashes, logs
	RoleProvisioner      // also registers devices, uploads ELF files and firmware, manages OTA
	RoleAdmin            // also manages users, tokens, retention and backups
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleProvisioner:
		return "provisioner"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole parses a role name as ferrite spells them.
func ParseRole(s string) (Role, bool) {
	switch s {
	case "viewer":
		return RoleViewer, true
	case "provisioner":
		return RoleProvisioner, true
	case "admin":
		return RoleAdmin, true
	}
	return RoleNone, false
}

// Principal is who made a request: a person or token with a role, or a device authenticated by its key.
type Principal struct {
	Name     string // user name, token name or device id
	Role     Role
	DeviceID string // set when a device authenticated with its own key
	// Kind names the caller for the audit log: ActorUser, ActorToken, ActorFUOTA, ActorDevice or ActorSystem.
	// Empty is read as ActorDevice when DeviceID is set, else ActorUser.
	Kind    string
	TokenID int64 // the API token's id when Kind is ActorToken
}

// ActorKind is p's Kind, defaulted as the field says.
func (p *Principal) ActorKind() string {
	switch {
	case p.Kind != "":
		return p.Kind
	case p.DeviceID != "":
		return ActorDevice
	}
	return ActorUser
}

type principalKey struct{}

// NewContextWithPrincipal returns ctx carrying p, the authenticated caller of the work ctx belongs to. Every entry
// point (API, console, MCP) sets it, so what acts on the caller's behalf (audit, authorization) reads one value.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the caller ctx carries, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// Allows reports whether p holds at least role need.
func (p *Principal) Allows(need Role) bool { return p != nil && p.Role >= need }
