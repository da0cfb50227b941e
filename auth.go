package lodestone

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
}

// Allows reports whether p holds at least role need.
func (p *Principal) Allows(need Role) bool { return p != nil && p.Role >= need }
