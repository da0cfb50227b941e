package auditsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/store/schema"
)

// A target's image is one JSON object built by the database from the columns listed here, read in the write's
// transaction. The lists are the whole of what may enter the log: no password hash, token hash or hint, firmware
// URL (which may carry a signed query) or key material is named, so none can leak into an entry.
type imageSpec struct {
	from   string   // FROM … WHERE …, with one ? per key part
	fields []string // pairs of JSON name and SQL expression
	key    func(target string) ([]any, bool)
}

func intKey(target string) ([]any, bool) {
	id, err := strconv.ParseInt(target, 10, 64)
	return []any{id}, err == nil
}

func textKey(target string) ([]any, bool) { return []any{target}, true }

// memberKey splits "<group id>/<device_id>".
func memberKey(target string) ([]any, bool) {
	g, dev, ok := strings.Cut(target, "/")
	id, err := strconv.ParseInt(g, 10, 64)
	return []any{id, dev}, ok && err == nil
}

var images = map[string]imageSpec{
	lodestone.AuditUser: {from: `FROM users WHERE name = ?`, key: textKey,
		fields: []string{"name", "name", "role", "role", "created_at", "created_at", "updated_at", "updated_at",
			"disabled_at", "disabled_at"}},
	lodestone.AuditToken:     tokenImage,
	lodestone.AuditDeviceKey: tokenImage,
	lodestone.AuditOTLPToken: {from: `FROM otlp_tokens WHERE id = ?`, key: intKey,
		fields: []string{"id", "id", "name", "name", "project", "project", "source_prefix", "source_prefix",
			"created_by", "created_by", "created_at", "created_at", "revoked_at", "revoked_at"}},
	lodestone.AuditDevice: {from: `FROM devices d WHERE d.device_id = ?`, key: textKey,
		fields: []string{"device_id", "d.device_id", "name", "d.name", "firmware_version", "d.firmware_version",
			"provisioned_by", "d.provisioned_by", "provisioned_at", "d.provisioned_at", "tags", "{tags}"}},
	lodestone.AuditGroup: {from: `FROM device_groups g WHERE g.id = ?`, key: intKey,
		fields: []string{"id", "g.id", "name", "g.name", "description", "g.description",
			"device_count", "(SELECT count(*) FROM device_group_members m WHERE m.group_id = g.id)"}},
	lodestone.AuditGroupMember: {from: `FROM device_group_members m JOIN devices d ON d.id = m.device_id
		WHERE m.group_id = ? AND d.device_id = ?`, key: memberKey,
		fields: []string{"group_id", "m.group_id", "device_id", "d.device_id", "added_at", "m.added_at"}},
	lodestone.AuditFirmware: {from: `FROM firmware_artifacts WHERE id = ?`, key: intKey,
		fields: []string{"id", "id", "version", "version", "build_id", "build_id", "sha256", "sha256", "size", "size",
			"filename", "filename", "signer", "signer", "notes", "notes", "origin", "origin", "fuota_path",
			"fuota_path", "approved_at", "approved_at", "approved_by", "approved_by", "created_at", "created_at"}},
	lodestone.AuditOTATarget: {from: `FROM ota_targets WHERE device_id = ?`, key: textKey,
		fields: []string{"device_id", "device_id", "target_version", "target_version", "target_build_id",
			"target_build_id", "firmware_id", "firmware_id", "from_version", "from_version", "campaign_id",
			"campaign_id", "origin", "origin", "created_at", "created_at"}},
	lodestone.AuditCampaign: {from: `FROM ota_campaigns WHERE id = ?`, key: intKey,
		fields: []string{"id", "id", "name", "name", "firmware_id", "firmware_id", "target_version",
			"target_version", "strategy", "strategy", "target_group_id", "target_group_id", "target_tags",
			"target_tags", "rollout_percent", "rollout_percent", "failure_threshold", "failure_threshold", "waves",
			"waves", "status", "status", "wave", "wave", "halt_reason", "halt_reason", "started_at", "started_at"}},
	lodestone.AuditCrashIssue: {from: `FROM crash_groups WHERE id = ?`, key: intKey,
		fields: []string{"id", "id", "title", "title", "state", "state", "resolved_version", "resolved_version",
			"merged_into", "merged_into", "regression", "regression", "occurrence_count", "occurrence_count"}},
	lodestone.AuditELF: {from: `FROM elfs WHERE id = ?`, key: intKey,
		fields: []string{"id", "id", "version", "version", "build_id", "build_id", "filename", "filename",
			"size", "size", "created_at", "created_at"}},
}

var tokenImage = imageSpec{from: `FROM tokens WHERE id = ?`, key: intKey,
	fields: []string{"id", "id", "kind", "kind", "name", "name", "role", "role", "device_id", "device_id",
		"created_by", "created_by", "created_at", "created_at", "revoked_at", "revoked_at"}}

// imageQuery builds the query of one image in dialect d: a single row that is NULL when the target is missing.
func imageQuery(d schema.Dialect, spec imageSpec) string {
	var b strings.Builder
	b.WriteString(`SELECT (SELECT `)
	if d == schema.Postgres {
		b.WriteString(`json_build_object(`)
	} else {
		b.WriteString(`json_object(`)
	}
	for i := 0; i < len(spec.fields); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		expr := spec.fields[i+1]
		if expr == "{tags}" {
			expr = `(SELECT group_concat(tag, ',') FROM (SELECT tag FROM device_tags t WHERE t.device_id = d.id
				ORDER BY tag))`
			if d == schema.Postgres {
				expr = `(SELECT string_agg(tag, ',' ORDER BY tag) FROM device_tags t WHERE t.device_id = d.id)`
			}
		}
		b.WriteString("'" + spec.fields[i] + "', " + expr)
	}
	b.WriteString(")")
	if d == schema.Postgres {
		b.WriteString("::text")
	}
	b.WriteString(" " + spec.from + ")")
	return schema.Rebind(d, b.String())
}

// image returns the JSON image of the target, or nil when it does not exist (before a create, after a delete)
// or its kind has no image.
func image(ctx context.Context, tx Tx, d schema.Dialect, kind, target string) (json.RawMessage, error) {
	spec, ok := images[kind]
	if !ok {
		return nil, nil
	}
	args, ok := spec.key(target)
	if !ok {
		return nil, nil
	}
	var v sql.NullString
	if err := tx.QueryRow(ctx, imageQuery(d, spec), args...).Scan(&v); err != nil {
		return nil, fmt.Errorf("audit: read %s %s: %w", kind, target, err)
	}
	if !v.Valid {
		return nil, nil
	}
	return json.RawMessage(v.String), nil
}

// TokenAction names the action verb on a token of kind k and the token's target kind: API tokens and device keys
// are told apart in the log.
func TokenAction(k lodestone.TokenKind, verb string) (action, kind string) {
	if k == lodestone.TokenDevice {
		return "device_key." + verb, lodestone.AuditDeviceKey
	}
	return "token." + verb, lodestone.AuditToken
}

// RegisteredID is the device_id a registration names.
func RegisteredID(r lodestone.DeviceRegistration) string {
	if r.DeviceID != "" {
		return r.DeviceID
	}
	return lodestone.DeviceKeyID(r.Key)
}

// RegisteredAfter is the after image of a bulk registration: the devices registered and the ones refused.
func RegisteredAfter(out []lodestone.RegisterResult) []byte {
	var img struct {
		Registered []string `json:"registered"`
		Refused    []string `json:"refused"`
	}
	img.Registered, img.Refused = []string{}, []string{}
	for _, r := range out {
		switch {
		case r.Err == nil && r.Device != nil:
			img.Registered = append(img.Registered, r.Device.DeviceID)
		case r.Err != nil:
			img.Refused = append(img.Refused, r.Err.Error())
		}
	}
	b, _ := json.Marshal(img)
	return b
}
