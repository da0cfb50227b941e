package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/lodestone-fleet/lodestone"
	"github.com/lodestone-fleet/lodestone/httpapi"
)

type adminTokensView struct {
	API             []*lodestone.Token
	OTLP            []*lodestone.OTLPToken
	Roles           []string
	HasAPI, HasOTLP bool
}

func (c *Console) adminTokens(w http.ResponseWriter, r *request) error {
	v := adminTokensView{Roles: roleNames}
	var err error
	if cs := c.cfg.Credentials; cs != nil {
		v.HasAPI = true
		if v.API, err = cs.FindTokens(r.ctx(), lodestone.TokenFilter{Kind: lodestone.TokenAPI}); err != nil {
			return err
		}
	}
	if s := c.cfg.Admin.OTLPTokens; s != nil {
		v.HasOTLP = true
		if v.OTLP, err = s.FindOTLPTokens(r.ctx()); err != nil {
			return err
		}
	}
	c.adminPage(w, r, http.StatusOK, "admin_tokens", "tokens", "Tokens", v)
	return nil
}

// issue stores a new API token or device key and shows its secret once; the store keeps only its hash.
func (c *Console) issue(w http.ResponseWriter, r *request, prefix string, t *lodestone.Token, v secretView) error {
	cs, err := c.credentials()
	if err != nil {
		return err
	}
	secret, hint := httpapi.NewSecret(prefix)
	t.Hint, t.Hash, t.CreatedAt, t.CreatedBy = hint, httpapi.HashToken(secret), time.Now().UTC(), r.user.Name
	if err := cs.CreateToken(r.ctx(), t); err != nil {
		return c.done(w, r, v.Back, "", err)
	}
	v.Name, v.Secret = t.Name, secret
	c.showSecret(w, r, v)
	return nil
}

func (c *Console) adminCreateToken(w http.ResponseWriter, r *request) error {
	const back = "/ui/admin/tokens"
	name := strings.TrimSpace(r.PostFormValue("name"))
	role, err := formRole(r)
	if err == nil && !httpapi.ValidName(name) {
		err = lodestone.Errorf(lodestone.EINVALID, "a token name is 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	return c.issue(w, r, httpapi.TokenPrefix, &lodestone.Token{Kind: lodestone.TokenAPI, Name: name, Role: role},
		secretView{What: "API token", Sub: "tokens", Back: back,
			Use: "Send it as Authorization: Bearer <token>; it acts as a " + role.String() + "."})
}

func (c *Console) adminRevokeToken(w http.ResponseWriter, r *request) error {
	return c.revoke(w, r, "id", lodestone.TokenFilter{Kind: lodestone.TokenAPI}, "/ui/admin/tokens", "API token")
}

// revoke marks a token revoked if f selects it, and makes this replica refuse it at once.
func (c *Console) revoke(w http.ResponseWriter, r *request, param string, f lodestone.TokenFilter, back, what string) error {
	cs, err := c.credentials()
	if err != nil {
		return err
	}
	id, err := formID(r, param)
	if err == nil {
		err = cs.RevokeToken(r.ctx(), id, f, time.Now().UTC())
	}
	if err == nil {
		c.forget()
	}
	return c.done(w, r, back, "Revoked the "+what+"; it is refused from now on.", err)
}

func (c *Console) adminCreateOTLPToken(w http.ResponseWriter, r *request) error {
	const back = "/ui/admin/tokens"
	s := c.cfg.Admin.OTLPTokens
	if s == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not keep OTLP tokens")
	}
	name, project := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("project"))
	prefix := strings.TrimSpace(r.PostFormValue("source_prefix"))
	if prefix == "" {
		prefix = project + "/" // detritus' default: the whole project
	}
	var err error
	switch {
	case !httpapi.ValidName(name):
		err = lodestone.Errorf(lodestone.EINVALID, "a token name is 1-64 letters, digits, '.', '_', '-' or '@'")
	case !httpapi.ValidName(project):
		err = lodestone.Errorf(lodestone.EINVALID, "a project is 1-64 letters, digits, '.', '_', '-' or '@'")
	case len(prefix) > 256 || !strings.HasPrefix(prefix, project+"/"):
		err = lodestone.Errorf(lodestone.EINVALID, "the source prefix must start with %q and be at most 256 characters",
			project+"/")
	}
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	secret, hint := httpapi.NewSecret(httpapi.OTLPTokenPrefix)
	t := &lodestone.OTLPToken{Name: name, Project: project, SourcePrefix: prefix, Hint: hint,
		Hash: httpapi.HashToken(secret), CreatedBy: r.user.Name, CreatedAt: time.Now().UTC()}
	if err := s.CreateOTLPToken(r.ctx(), t); err != nil {
		return c.done(w, r, back, "", err)
	}
	c.showSecret(w, r, secretView{What: "OTLP token", Name: name, Secret: secret, Sub: "tokens", Back: back,
		Use: "Give it to OpenTelemetry exporters or detritus clients as Authorization: Bearer <token>; it accepts " +
			"records of sources starting with " + prefix + "."})
	return nil
}

func (c *Console) adminRevokeOTLPToken(w http.ResponseWriter, r *request) error {
	s := c.cfg.Admin.OTLPTokens
	if s == nil {
		return lodestone.Errorf(lodestone.EUNAVAILABLE, "this server does not keep OTLP tokens")
	}
	id, err := formID(r, "id")
	if err == nil {
		err = s.RevokeOTLPToken(r.ctx(), id, time.Now().UTC())
	}
	return c.done(w, r, "/ui/admin/tokens", "Revoked the OTLP token; exporters using it are refused from now on.", err)
}

type adminKeysView struct {
	Keys   []*lodestone.Token
	Device string
}

// adminKeys lists every device's keys, or one device's.
func (c *Console) adminKeys(w http.ResponseWriter, r *request) error {
	cs, err := c.credentials()
	if err != nil {
		return err
	}
	dev := strings.TrimSpace(r.URL.Query().Get("device"))
	if len(dev) > 128 {
		return lodestone.Errorf(lodestone.EINVALID, "a device id is at most 128 characters")
	}
	keys, err := cs.FindTokens(r.ctx(), lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: dev})
	if err != nil {
		return err
	}
	c.adminPage(w, r, http.StatusOK, "admin_keys", "keys", "Device keys", adminKeysView{Keys: keys, Device: dev})
	return nil
}

// createKey issues a key for a device by its device_id; the device need not have reported yet, so a key can be
// flashed at the factory before first contact.
func (c *Console) createKey(w http.ResponseWriter, r *request, dev, back string) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "default"
	}
	var err error
	switch {
	case dev == "" || len(dev) > 128 || !printableASCII(dev):
		err = lodestone.Errorf(lodestone.EINVALID, "device id must be 1-128 visible ASCII characters")
	case !httpapi.ValidName(name):
		err = lodestone.Errorf(lodestone.EINVALID, "a key name is 1-64 letters, digits, '.', '_', '-' or '@'")
	}
	if err != nil {
		return c.done(w, r, back, "", err)
	}
	return c.issue(w, r, httpapi.DeviceKeyPrefix, &lodestone.Token{Kind: lodestone.TokenDevice, Name: name,
		DeviceID: dev}, secretView{What: "device key", Sub: "keys", Back: back,
		Use: "Flash it into " + dev + "; it sends it as X-API-Key on ingest, and may post only as " + dev + "."})
}

func (c *Console) adminCreateKey(w http.ResponseWriter, r *request) error {
	return c.createKey(w, r, strings.TrimSpace(r.PostFormValue("device_id")), "/ui/admin/keys")
}

func (c *Console) adminRevokeKey(w http.ResponseWriter, r *request) error {
	return c.revoke(w, r, "id", lodestone.TokenFilter{Kind: lodestone.TokenDevice}, "/ui/admin/keys", "device key")
}

func (c *Console) deviceCreateKey(w http.ResponseWriter, r *request) error {
	dev := r.PathValue("id")
	return c.createKey(w, r, dev, "/ui/devices/"+pathEscape(dev)+"#keys")
}

func (c *Console) deviceRevokeKey(w http.ResponseWriter, r *request) error {
	dev := r.PathValue("id")
	return c.revoke(w, r, "key", lodestone.TokenFilter{Kind: lodestone.TokenDevice, DeviceID: dev},
		"/ui/devices/"+pathEscape(dev)+"#keys", "device key")
}
